"""What a trainer trains, built from the config: refiner R, discriminator D, feature transform
psi and loss, as one :class:`SimGANNetworks`."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def _settings_checked(kind: str, name: str) -> Iterator[None]:
    """Around a network factory call: a factory that rejects its settings (an unknown or invalid
    ``options`` entry) is a configuration error naming the config section, not a traceback."""
    try:
        yield
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[{kind}] {name!r} rejected its settings: {exc}") from None


def _discriminator(config: RunConfig, registry: Registry, spec: ImageSpec) -> Any:
    """The configured discriminator for images of ``spec``, on the CPU."""
    # With crop training the discriminator only ever sees crops: a global one is sized for them.
    with _settings_checked("discriminator", config.discriminator.name):
        return registry.create(
            "discriminator", config.discriminator.name, in_channels=spec.channels,
            image_height=config.train.crop_size or spec.height, image_width=config.train.crop_size or spec.width,
            **config.discriminator.factory_options(),
        )


def _refiner(registry: Registry, spec: dict[str, Any]) -> Any:
    """The refiner of ``spec`` (:func:`refiner_spec`), on the CPU."""
    with _settings_checked("refiner", spec["name"]):
        return registry.create("refiner", spec["name"], **spec["options"])


def check_network_settings(config: RunConfig, registry: Registry, image_spec: ImageSpec) -> None:
    """Build the configured refiner and discriminator once on the CPU, inside a forked RNG (the
    run's random streams untouched), so that a bad ``[refiner]`` or ``[discriminator]`` setting
    fails in seconds with a :class:`ConfigError` instead of after the data and estimator stages."""
    r_spec = refiner_spec(config, image_spec)
    with torch.random.fork_rng(devices=[]):
        _refiner(registry, r_spec)
        _discriminator(config, registry, image_spec)


def build_simgan_networks(
    config: RunConfig, registry: Registry, task: Task, device: torch.device, synthetic_estimator: nn.Module | None = None,
) -> SimGANNetworks:
    """Refiner, discriminator, psi and loss of ``config``, on ``device``; weights seeded by ``config.seed``.

    ``synthetic_estimator`` backs ``feature.name = "learned"`` when no checkpoint is given.
    """
    spec = task.image_spec
    r_spec = refiner_spec(config, spec)
    torch.manual_seed(config.seed)
    refiner = to_device(_refiner(registry, r_spec), device, config.channels_last)
    discriminator = to_device(_discriminator(config, registry, spec), device, config.channels_last)
    psi = to_device(build_feature_transform(config, registry, synthetic_estimator), device, config.channels_last)
    loss_name, loss = select_loss(registry, config.train.loss, device)
    return SimGANNetworks(refiner, discriminator, psi, loss, r_spec, loss_name)  # type: ignore[arg-type]
