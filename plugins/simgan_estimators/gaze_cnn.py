"""The gaze estimator of Shrivastava et al. (2017).

conv3x3 32 -> conv3x3 32 -> conv3x3 64 -> maxpool3x3 s2 -> conv3x3 80 -> conv3x3 192 ->
maxpool2x2 s2 -> FC (9600 inputs for 35x55 images) -> FC 1000 -> FC output_dim.
Convolutions are unpadded, which is what makes a 35x55 input flatten to 192 x 5 x 10 = 9600.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from simgan_toolkit.estimation import Estimator


def _conv(cin: int, cout: int, batch_norm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.ReLU(inplace=True))
    return layers


class GazeCNN(Estimator):
    """(N, C, H, W) -> (N, output_dim).

    Args:
        image_spec: the task's :class:`~simgan_toolkit.task.ImageSpec` (channels, H, W).
        output_dim: 3 for a gaze vector.
        width_mult: scales every convolution's width (1.0 = the paper).
        hidden: size of the hidden fully connected layer (paper: 1000).
        batch_norm: batch normalisation after each convolution (not in the paper; trains
            faster and more stably in short CPU budgets).
    """

    def __init__(self, image_spec: Any, output_dim: int, width_mult: float = 1.0, hidden: int = 1000, batch_norm: bool = False) -> None:
        super().__init__()
        w = [max(1, round(c * width_mult)) for c in (32, 32, 64, 80, 192)]
        self.trunk = nn.Sequential(
            *_conv(image_spec.channels, w[0], batch_norm),
            *_conv(w[0], w[1], batch_norm),
            *_conv(w[1], w[2], batch_norm),
            nn.MaxPool2d(3, stride=2),
            *_conv(w[2], w[3], batch_norm),
            *_conv(w[3], w[4], batch_norm),
            nn.MaxPool2d(2, stride=2),
        )
        with torch.no_grad():
            flat = self.trunk(torch.zeros(1, image_spec.channels, image_spec.height, image_spec.width)).numel()
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(flat, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, output_dim))

    def features(self, x: Tensor) -> Tensor:
        """The convolutional trunk's output (N, 192*width_mult, 5, 10 for 35x55 input)."""
        return self.trunk(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.trunk(x))
