"""The paper's refiner: a fully convolutional ResNet with no striding or pooling."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from simgan_toolkit.networks.base import Refiner


class ResidualBlock(nn.Module):
    """Two ``kernel_size`` convolutions with ``width`` maps and an identity skip.

    (N, width, H, W) -> (N, width, H, W); padding keeps H and W.
    """

    def __init__(self, width: int, kernel_size: int = 3, padding_mode: str = "zeros") -> None:
        super().__init__()
        pad = kernel_size // 2
        self.conv1 = nn.Conv2d(width, width, kernel_size, padding=pad, padding_mode=padding_mode)
        self.conv2 = nn.Conv2d(width, width, kernel_size, padding=pad, padding_mode=padding_mode)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(x + self.conv2(self.act(self.conv1(x))))


class ResNetRefiner(Refiner):
    """Conv(k, width) -> ``blocks`` x ResidualBlock -> 1x1 conv to ``in_channels``.

    Eyes (paper): k=3, width=64, blocks=4. Hands: k=7, blocks=10.

    Args:
        in_channels: image channels C.
        width: feature maps in every layer.
        blocks: number of residual blocks.
        kernel_size: odd size of every spatial filter.
        output: ``"tanh"`` (the paper's layout: the 1x1 conv's output squashed to [-1, 1]) or
            ``"residual"`` (``clamp(x + 1x1conv(.))``, last layer zero-initialised, so the
            refiner starts as the identity and self-regularisation pretraining converges in
            far fewer steps; useful on a CPU budget).
        noise_channels: extra standard-normal input maps. The paper's refiner has none, which
            makes it deterministic: it cannot produce *random* sensor noise on flat synthetic
            regions. With K > 0 it can model a noise distribution (the paper's future work).
        padding_mode: border padding of every spatial convolution (``zeros``, ``replicate``,
            ``reflect``). Zero padding tells the refiner where the border is, and adversarial
            training then paints frames along it that the target does not have.

    Shapes: (N, C, H, W) -> (N, C, H, W) for any H, W.
    """

    def __init__(
        self,
        in_channels: int,
        width: int = 64,
        blocks: int = 4,
        kernel_size: int = 3,
        output: Literal["tanh", "residual"] = "tanh",
        noise_channels: int = 0,
        padding_mode: Literal["zeros", "replicate", "reflect"] = "zeros",
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"refiner kernel_size must be odd to keep H and W, got {kernel_size}")
        if output not in ("tanh", "residual"):
            raise ValueError(f"refiner output must be 'tanh' or 'residual', got {output!r}")
        self.in_channels = in_channels
        self.noise_channels = noise_channels
        self.output = output
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels + noise_channels, width, kernel_size, padding=kernel_size // 2, padding_mode=padding_mode),
            nn.ReLU(inplace=True),
        )
        self.blocks = nn.Sequential(*[ResidualBlock(width, kernel_size, padding_mode) for _ in range(blocks)])
        self.head = nn.Conv2d(width, in_channels, 1)
        if output == "residual":
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def forward(self, x: Tensor, noise: Tensor | None = None) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"refiner expects (N, {self.in_channels}, H, W), got {tuple(x.shape)}")
        if self.noise_channels:
            if noise is None:
                noise = self.sample_noise(x)
            inp = torch.cat([x, noise], dim=1)
        else:
            inp = x
        out = self.head(self.blocks(self.stem(inp)))
        if self.output == "residual":
            return (x + out).clamp(-1.0, 1.0)
        return torch.tanh(out)
