"""Stacked hourglass network for joint heatmaps (Newell et al., 2016), as the paper's hand estimator.

Input images are resized to ``input_size``; a stride-4 stem brings them to ``input_size / 4``;
each hourglass stack predicts one heatmap per joint, and later stacks refine earlier ones
(intermediate supervision). Heatmaps are resized to ``heatmap_size`` if that differs.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from simgan_toolkit.estimation import Estimator

from simgan_estimators.inputs import resize_square


class Residual(nn.Module):
    """Pre-activation bottleneck: (N, cin, H, W) -> (N, cout, H, W)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        mid = max(1, cout // 2)
        self.body = nn.Sequential(
            nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.Conv2d(cin, mid, 1),
            nn.BatchNorm2d(mid), nn.ReLU(inplace=True), nn.Conv2d(mid, mid, 3, padding=1),
            nn.BatchNorm2d(mid), nn.ReLU(inplace=True), nn.Conv2d(mid, cout, 1),
        )
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + self.skip(x)


class Hourglass(nn.Module):
    """Recursive encoder-decoder of ``depth`` levels; keeps (N, width, H, W) (H, W divisible by 2**depth)."""

    def __init__(self, depth: int, width: int) -> None:
        super().__init__()
        self.skip = Residual(width, width)
        self.down = Residual(width, width)
        self.inner: nn.Module = Hourglass(depth - 1, width) if depth > 1 else Residual(width, width)
        self.up = Residual(width, width)

    def forward(self, x: Tensor) -> Tensor:
        low = self.up(self.inner(self.down(F.max_pool2d(x, 2))))
        return self.skip(x) + F.interpolate(low, size=x.shape[-2:], mode="nearest")


class StackedHourglass(Estimator):
    """(N, C, H, W) -> heatmaps (N, output_dim, heatmap_size, heatmap_size).

    In training mode the output is (N, stacks, output_dim, h, w), every stack's heatmaps, so
    the loss can supervise each stack (intermediate supervision); in eval mode only the last,
    the declared output (the training-mode exception :class:`Estimator` allows).

    Args:
        image_spec: the task's image spec.
        output_dim: number of joints J.
        stacks: hourglass stacks (paper: 2).
        width: feature maps inside the hourglasses (Newell et al.: 256).
        depth: down-sampling levels per hourglass (4 for 64x64 maps).
        input_size: images are resized to this square size first; must be divisible by 4 * 2**depth.
        heatmap_size: side of the output heatmaps (paper: 64).
    """

    def __init__(
        self, image_spec: Any, output_dim: int, stacks: int = 2, width: int = 256, depth: int = 4,
        input_size: int = 256, heatmap_size: int = 64,
    ) -> None:
        super().__init__()
        if input_size % (4 * 2**depth):
            raise ValueError(f"hourglass input_size {input_size} must be divisible by 4 * 2**depth = {4 * 2**depth}")
        self.input_size, self.heatmap_size, self.stacks = input_size, heatmap_size, stacks
        self.stem = nn.Sequential(
            nn.Conv2d(image_spec.channels, width // 4, 7, stride=2, padding=3), nn.BatchNorm2d(width // 4), nn.ReLU(inplace=True),
            Residual(width // 4, width // 2), nn.MaxPool2d(2), Residual(width // 2, width // 2), Residual(width // 2, width),
        )
        self.hourglasses = nn.ModuleList(Hourglass(depth, width) for _ in range(stacks))
        self.features_out = nn.ModuleList(
            nn.Sequential(Residual(width, width), nn.Conv2d(width, width, 1), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
            for _ in range(stacks)
        )
        self.heads = nn.ModuleList(nn.Conv2d(width, output_dim, 1) for _ in range(stacks))
        self.merge_features = nn.ModuleList(nn.Conv2d(width, width, 1) for _ in range(stacks - 1))
        self.merge_heatmaps = nn.ModuleList(nn.Conv2d(output_dim, width, 1) for _ in range(stacks - 1))

    def resize_input(self, x: Tensor) -> Tensor:
        """(N, C, H, W) -> (N, C, input_size, input_size), antialiased; a no-op at that size.

        The estimator training loop calls it once on the whole training set, so per-step
        augmentation runs at the input size instead of the task's full image size.
        """
        return resize_square(x, self.input_size)

    def features(self, x: Tensor) -> Tensor:
        """Stem features (N, width, input_size/4, input_size/4)."""
        return self.stem(self.resize_input(x))

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)
        outputs = []
        for i in range(self.stacks):
            feat = self.features_out[i](self.hourglasses[i](x))
            heatmaps = self.heads[i](feat)
            outputs.append(heatmaps)
            if i < self.stacks - 1:
                x = x + self.merge_features[i](feat) + self.merge_heatmaps[i](heatmaps)
        if outputs[0].shape[-1] != self.heatmap_size:
            outputs = [F.interpolate(h, size=(self.heatmap_size, self.heatmap_size), mode="bilinear", align_corners=False) for h in outputs]
        return torch.stack(outputs, dim=1) if self.training else outputs[-1]
