"""Feature transforms psi for the self-regularisation loss ``||psi(R(x)) - psi(x)||_1``.

Each transform is a function plus a thin ``nn.Module`` (the kornia pattern). All take
(N, C, H, W) and are differentiable with respect to their input; none has trainable
parameters during SimGAN training.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Literal

import kornia
import torch
from torch import Tensor, nn

from simgan_toolkit.errors import ConfigError, PluginError


def _check_images(x: Tensor) -> None:
    if x.ndim != 4:
        raise ValueError(f"feature transforms expect (N, C, H, W) images, got shape {tuple(x.shape)}")


def channel_mean(x: Tensor) -> Tensor:
    """Mean over colour channels: (N, C, H, W) -> (N, 1, H, W)."""
    _check_images(x)
    return x.mean(dim=1, keepdim=True)


def image_gradients(x: Tensor, mode: Literal["sobel", "diff"] = "sobel", normalized: bool = True) -> Tensor:
    """Horizontal and vertical derivatives per channel, via ``kornia.filters.spatial_gradient``.

    (N, C, H, W) -> (N, 2C, H, W), ordered (d/dx, d/dy) per channel. Borders are replicated,
    so a constant image has zero gradient everywhere.
    """
    _check_images(x)
    n, c, h, w = x.shape
    return kornia.filters.spatial_gradient(x, mode=mode, order=1, normalized=normalized).reshape(n, 2 * c, h, w)


class FeatureTransform(nn.Module, ABC):
    """psi: (N, C, H, W) -> (N, C', H', W'). Fixed (no parameters are trained through it)."""

    @abstractmethod
    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        ...


class Identity(FeatureTransform):
    """psi(x) = x, the paper's main setting."""

    def forward(self, x: Tensor) -> Tensor:
        _check_images(x)
        return x


class ChannelMean(FeatureTransform):
    """psi(x) = mean over colour channels; see :func:`channel_mean`."""

    def forward(self, x: Tensor) -> Tensor:
        return channel_mean(x)


class ImageGradients(FeatureTransform):
    """psi(x) = image derivatives; see :func:`image_gradients`."""

    def __init__(self, mode: Literal["sobel", "diff"] = "sobel", normalized: bool = True) -> None:
        super().__init__()
        self.mode = mode
        self.normalized = normalized

    def forward(self, x: Tensor) -> Tensor:
        return image_gradients(x, self.mode, self.normalized)


class Learned(FeatureTransform):
    """psi(x) = features of a frozen network, e.g. an estimator trained on synthetic labels.

    Args:
        network: a module with a ``features(x)`` method, as every estimator has (it is part of
            :class:`simgan_toolkit.estimation.Estimator`). Its parameters are frozen and it is
            kept in eval mode; gradients still flow to ``x``.

    Raises:
        PluginError: ``network`` has no ``features`` method.
    """

    def __init__(self, network: nn.Module) -> None:
        if not callable(getattr(network, "features", None)):
            raise PluginError(
                f"feature transform 'learned': {type(network).__name__} has no features(x) method; "
                "every estimator needs one (see simgan_toolkit.estimation.Estimator)"
            )
        super().__init__()
        self.network = network.eval()
        for p in self.network.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> Learned:
        # The frozen network keeps its batch-norm statistics whatever the trainer asks for.
        super().train(mode)
        self.network.eval()
        return self

    def forward(self, x: Tensor) -> Tensor:
        _check_images(x)
        return self.network.features(x)


def load_learned(checkpoint: str | Path, registry: Any) -> Learned:
    """Build a :class:`Learned` transform from an estimator checkpoint written by the toolkit.

    The checkpoint is a dict with ``estimator`` (registered name), ``options`` (factory
    kwargs) and ``state_dict``; see :func:`simgan_toolkit.estimation.save_estimator`.
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise ConfigError(f"feature.checkpoint: file {str(path)!r} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
        network = registry.create("estimator", payload["estimator"], **payload["options"])
        network.load_state_dict(payload["state_dict"])
    except ConfigError:
        raise
    except Exception as exc:  # unpickling garbage raises many types; all mean "not a checkpoint"
        raise ConfigError(
            f"feature.checkpoint: {str(path)!r} is not a toolkit estimator checkpoint "
            f"(expected keys estimator, options, state_dict matching the network): {exc}"
        ) from None
    return Learned(network)
