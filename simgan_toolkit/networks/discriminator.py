"""Local (per-patch) and global discriminators built from a compact layer spec.

A spec is a list of strings, one per layer:

- ``"conv{k}s{s}-{c}"``: k x k convolution, stride s, c output maps (``"conv3-32"`` = stride 1);
- ``"pool{k}s{s}"``: k x k max-pooling with stride s.

Convolutions are padded by k // 2; every convolution but the last is followed by an optional
normalisation (:data:`Norm`) and a LeakyReLU (a linear discriminator, or a ReLU on the logits, were bugs of
public ports). The last layer must be a convolution with 2 maps: real/refined logits.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from simgan_toolkit.networks.base import Discriminator

#: Normalisations after each hidden convolution. ``group`` (GroupNorm, up to 8 groups) normalises
#: each image on its own but hides absolute intensity from D; it also makes each patch's features
#: relative to its own image, which let a gaze D learn in hundreds of steps what the plain one
#: needed thousands for, but left the refiner free to repaint lids and pupils (docs/gaze.md).
#: ``batch`` normalises over the
#: batch, so D's verdict on a refined image depends on what shares its batch; the trainer
#: therefore shows it a real batch beside the refined one in the refiner step as in its own
#: step (``SimGANTrainer._discriminate_refined``).
Norm = Literal["none", "batch", "group"]

_CONV = re.compile(r"^conv(\d+)(?:s(\d+))?-(\d+)$")
_POOL = re.compile(r"^pool(\d+)(?:s(\d+))?$")


def parse_layers(
    spec: Sequence[str], in_channels: int, width_mult: float = 1.0, norm: Norm = "none"
) -> nn.Sequential:
    """Build the layers of ``spec``; hidden widths are scaled by ``width_mult`` (the last stays 2).

    Raises:
        ValueError: naming the offending layer string.
    """
    if not spec:
        raise ValueError("discriminator layers must not be empty")
    layers: list[nn.Module] = []
    channels = in_channels
    for i, item in enumerate(spec):
        last = i == len(spec) - 1
        if m := _CONV.match(item):
            k, s, c = int(m[1]), int(m[2] or 1), int(m[3])
            out = c if last else max(1, round(c * width_mult))
            layers.append(nn.Conv2d(channels, out, k, stride=s, padding=k // 2))
            channels = out
            if not last:
                if norm == "batch":
                    layers.append(nn.BatchNorm2d(out))
                elif norm == "group":
                    layers.append(nn.GroupNorm(group_count(out), out))
                layers.append(nn.LeakyReLU(0.2, inplace=True))
        elif m := _POOL.match(item):
            if last:
                raise ValueError(f"discriminator layer {i} ({item!r}): the last layer must be a convolution")
            k, s = int(m[1]), int(m[2] or 1)
            layers.append(nn.MaxPool2d(k, stride=s))
        else:
            raise ValueError(
                f"discriminator layer {i}: cannot parse {item!r}; expected 'conv{{k}}s{{s}}-{{c}}' or 'pool{{k}}s{{s}}'"
            )
    if channels != 2:
        raise ValueError(f"the last discriminator layer must output 2 maps (real/refined), got {channels}")
    return nn.Sequential(*layers)


def group_count(channels: int, most: int = 8) -> int:
    """The largest GroupNorm group count up to ``most`` that divides ``channels``."""
    return next(g for g in range(min(most, channels), 0, -1) if channels % g == 0)


class LocalDiscriminator(Discriminator):
    """Fully convolutional: (N, C, H, W) -> (N, 2, h, w) logits, one pair per image patch."""

    def __init__(
        self,
        in_channels: int,
        layers: Sequence[str],
        width_mult: float = 1.0,
        norm: Norm = "none",
        image_height: int | None = None,
        image_width: int | None = None,
    ) -> None:
        # image_height/image_width are accepted and unused: a local discriminator works at any
        # size. Anything else is an error (a misspelt option must not be silently ignored).
        super().__init__()
        self.net = parse_layers(layers, in_channels, width_mult, norm)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class GlobalDiscriminator(Discriminator):
    """One decision per whole image, for the local-vs-global ablation.

    The same convolutional trunk as :class:`LocalDiscriminator`, then a linear layer over the
    whole flattened patch map, so every logit depends on every pixel.
    (N, C, H, W) -> (N, 2, 1, 1). Needs the image size at construction.
    """

    def __init__(
        self,
        in_channels: int,
        image_height: int,
        image_width: int,
        layers: Sequence[str],
        width_mult: float = 1.0,
        norm: Norm = "none",
    ) -> None:
        super().__init__()
        self.trunk = parse_layers(layers, in_channels, width_mult, norm)
        with torch.no_grad():
            # eval(): sizing the head must not touch batch-norm running statistics.
            h_out, w_out = self.trunk.eval()(torch.zeros(1, in_channels, image_height, image_width)).shape[-2:]
        self.trunk.train()
        self.head = nn.Linear(2 * h_out * w_out, 2)

    def forward(self, x: Tensor) -> Tensor:
        logits = self.head(torch.flatten(self.trunk(x), 1))
        return logits[:, :, None, None]
