"""What a trainer trains, built from the config: refiner R, discriminator D, feature transform
psi and loss, as one :class:`SimGANNetworks`."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from simgan_toolkit.config import RunConfig
from simgan_toolkit.environment import to_device
from simgan_toolkit.errors import ConfigError, PluginError
from simgan_toolkit.features import FeatureTransform, Learned
from simgan_toolkit.losses import SimGANLoss
from simgan_toolkit.networks import Discriminator, Refiner

if TYPE_CHECKING:
    from simgan_toolkit.plugin import Registry
    from simgan_toolkit.task import ImageSpec, Task


@dataclass
class SimGANNetworks:
    """The parts a :class:`~simgan_toolkit.training.SimGANTrainer` trains and trains with.

    ``refiner_spec`` (``{"name": ..., "options": {...}}``) is stored in checkpoints so that
    ``refine`` can rebuild the refiner; :func:`refiner_spec` makes it from a config.
    """

    refiner: Refiner
    discriminator: Discriminator
    feature_transform: FeatureTransform
    loss: SimGANLoss
    refiner_spec: dict[str, Any]
    loss_name: str = ""


def refiner_spec(config: RunConfig, image_spec: ImageSpec) -> dict[str, Any]:
    """The registry name and factory options of ``config``'s refiner for images of ``image_spec``."""
    return {"name": config.refiner.name, "options": {"in_channels": image_spec.channels, **config.refiner.factory_options()}}


def select_loss(registry: Registry, name: str, device: torch.device) -> tuple[str, SimGANLoss]:
    """The loss implementation named, or with ``auto`` the available one of highest priority."""
    if name == "auto":
        candidates = [e for e in registry.entries("loss") if e.available(device)]
        if not candidates:
            raise PluginError(f"no registered loss implementation is available on {device}")
        entry = max(candidates, key=lambda e: e.priority)
    else:
        entry = registry.get("loss", name)
        if not entry.available(device):
            raise ConfigError(f"train.loss: {name!r} (plugin {entry.plugin!r}) is not available on {device}")
    return entry.name, entry.factory()


def build_feature_transform(config: RunConfig, registry: Registry, synthetic_estimator: nn.Module | None) -> FeatureTransform:
    """psi from the config; ``learned`` without a checkpoint uses this run's synthetic estimator."""
    if config.feature.name == "learned" and config.feature.checkpoint is None:
        if synthetic_estimator is None:
            raise ConfigError("feature.name = 'learned' without feature.checkpoint needs 'synthetic' in estimator.train_on")
        return Learned(copy.deepcopy(synthetic_estimator))
    return registry.create(
        "feature_transform", config.feature.name, checkpoint=config.feature.checkpoint, registry=registry, **config.feature.options
    )


def build_simgan_networks(
    config: RunConfig, registry: Registry, task: Task, device: torch.device, synthetic_estimator: nn.Module | None = None,
) -> SimGANNetworks:
    """Refiner, discriminator, psi and loss of ``config``, on ``device``; weights seeded by ``config.seed``.

    ``synthetic_estimator`` backs ``feature.name = "learned"`` when no checkpoint is given.
    """
    spec = task.image_spec
    r_spec = refiner_spec(config, spec)
    torch.manual_seed(config.seed)
    refiner = to_device(registry.create("refiner", r_spec["name"], **r_spec["options"]), device, config.channels_last)
    # With crop training the discriminator only ever sees crops: a global one is sized for them.
    d_height = config.train.crop_size or spec.height
    d_width = config.train.crop_size or spec.width
    discriminator = registry.create(
        "discriminator", config.discriminator.name, in_channels=spec.channels, image_height=d_height, image_width=d_width,
        **config.discriminator.factory_options(),
    )
    discriminator = to_device(discriminator, device, config.channels_last)
    psi = to_device(build_feature_transform(config, registry, synthetic_estimator), device, config.channels_last)
    loss_name, loss = select_loss(registry, config.train.loss, device)
    return SimGANNetworks(refiner, discriminator, psi, loss, r_spec, loss_name)  # type: ignore[arg-type]
