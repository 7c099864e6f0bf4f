"""The toolkit's own components, registered through the public hooks like any plugin.

Heavy imports happen inside the factories so that loading plugins stays cheap.
"""

from __future__ import annotations

from typing import Any

from simgan_toolkit.plugin import Register, hookimpl


def _resnet_refiner(**kwargs: Any) -> Any:
    from simgan_toolkit.networks import ResNetRefiner

    return ResNetRefiner(**kwargs)


def _local_discriminator(**kwargs: Any) -> Any:
    from simgan_toolkit.networks import LocalDiscriminator

    return LocalDiscriminator(**kwargs)


def _global_discriminator(**kwargs: Any) -> Any:
    from simgan_toolkit.networks import GlobalDiscriminator

    return GlobalDiscriminator(**kwargs)


@hookimpl
def simgan_register_networks(register: Register) -> None:
    register.refiner("resnet", _resnet_refiner, description="fully convolutional ResNet, no striding or pooling (paper)")
    register.discriminator("local", _local_discriminator, description="per-patch real/refined probability map (paper)")
    register.discriminator("global", _global_discriminator, description="one decision per image (ablation)")


def _identity(**_: Any) -> Any:
    from simgan_toolkit.features import Identity

    return Identity()


def _channel_mean(**_: Any) -> Any:
    from simgan_toolkit.features import ChannelMean

    return ChannelMean()


def _gradients(mode: str = "sobel", normalized: bool = True, **_: Any) -> Any:
    from simgan_toolkit.features import ImageGradients

    return ImageGradients(mode=mode, normalized=normalized)  # type: ignore[arg-type]


def _learned(network: Any = None, checkpoint: str | None = None, registry: Any = None, **_: Any) -> Any:
    from simgan_toolkit.errors import ConfigError
    from simgan_toolkit.features import Learned, load_learned

    if network is not None:
        return Learned(network)
    if checkpoint is not None:
        return load_learned(checkpoint, registry)
    raise ConfigError("feature.name = 'learned' needs feature.checkpoint (an estimator checkpoint) or a network")


@hookimpl
def simgan_register_feature_transforms(register: Register) -> None:
    register.feature_transform("identity", _identity, description="psi(x) = x (paper's main setting)")
    register.feature_transform("channel_mean", _channel_mean, description="mean of the colour channels")
    register.feature_transform("gradients", _gradients, description="image derivatives (kornia spatial_gradient)")
    register.feature_transform("learned", _learned, description="features of a frozen estimator network")


def _reference_loss() -> Any:
    from simgan_toolkit.losses import SimGANLoss

    return SimGANLoss()


@hookimpl
def simgan_register_losses(register: Register) -> None:
    register.loss("reference", _reference_loss, description="pure PyTorch, runs everywhere", priority=0)
