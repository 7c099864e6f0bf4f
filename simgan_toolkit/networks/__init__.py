"""Refiner and discriminator networks."""

from simgan_toolkit.networks.base import Discriminator, Refiner
from simgan_toolkit.networks.discriminator import (
    GlobalDiscriminator,
    LocalDiscriminator,
    parse_layers,
)
from simgan_toolkit.networks.refiner import ResidualBlock, ResNetRefiner

__all__ = [
    "Discriminator",
    "GlobalDiscriminator",
    "LocalDiscriminator",
    "Refiner",
    "ResNetRefiner",
    "ResidualBlock",
    "parse_layers",
]
