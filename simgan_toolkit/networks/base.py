"""Abstract refiner and discriminator: the contracts the trainer relies on."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor, nn


class Refiner(nn.Module, ABC):
    """Maps synthetic images to refined images of the same shape.

    ``forward(x: (N, C, H, W), noise: (N, K, H, W) | None) -> (N, C, H, W)``. A refiner must
    be fully convolutional without striding or pooling (the paper's argument for label
    preservation); ``noise_channels`` is K, the number of random input maps it expects
    (0 for the paper's deterministic refiner).
    """

    noise_channels: int = 0

    @abstractmethod
    def forward(self, x: Tensor, noise: Tensor | None = None) -> Tensor:  # noqa: D102
        ...

    def sample_noise(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor | None:
        """Random input maps for ``x``: (N, K, H, W) standard normal, or None if K = 0."""
        if self.noise_channels == 0:
            return None
        n, _, h, w = x.shape
        return torch.randn(n, self.noise_channels, h, w, generator=generator, device=x.device, dtype=x.dtype)


class Discriminator(nn.Module, ABC):
    """Scores images as real or refined.

    ``forward(x: (N, C, H, W)) -> (N, 2, h, w)``: two-class logits per patch (class 1 =
    refined, class 0 = real). A global discriminator returns h = w = 1.
    """

    @abstractmethod
    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        ...
