"""Refiner and discriminator networks."""

from simgan_toolkit.networks.base import Discriminator, Refiner
from simgan_toolkit.networks.discriminator import (
    EYE_LAYERS,
    HAND_LAYERS,
    GlobalDiscriminator,
    LocalDiscriminator,
    parse_layers,
)
from simgan_toolkit.networks.refiner import ResidualBlock, ResNetRefiner

__all__ = [
    "EYE_LAYERS",
    "HAND_LAYERS",
    "Discriminator",
    "GlobalDiscriminator",
    "LocalDiscriminator",
    "Refiner",
    "ResNetRefiner",
    "ResidualBlock",
    "parse_layers",
]
