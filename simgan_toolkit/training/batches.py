"""Training batches: random mini-batches drawn with replacement, optionally randomly cropped.

Indices and crop offsets come from one CPU generator (saved in checkpoints) and reach the
device without a host sync.
"""

from __future__ import annotations

import torch
from torch import Tensor

from simgan_toolkit.training.history_buffer import to_device_async


def random_crops(images: Tensor, size: int, generator: torch.Generator) -> Tensor:
    """One random ``size`` x ``size`` crop per image: (N, C, H, W) -> (N, C, size, size).

    Offsets are drawn on the CPU ``generator`` (uniform over valid positions) and reach the
    device without a host sync.
    """
    n, c, h, w = images.shape
    if size > h or size > w:
        raise ValueError(f"train.crop_size {size} is larger than the images ({h}x{w})")
    oy = to_device_async(torch.randint(h - size + 1, (n,), generator=generator), images.device)
    ox = to_device_async(torch.randint(w - size + 1, (n,), generator=generator), images.device)
    span = torch.arange(size, device=images.device)
    rows = (oy[:, None] + span)[:, None, :, None]  # (N, 1, size, 1)
    cols = (ox[:, None] + span)[:, None, None, :]  # (N, 1, 1, size)
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    chans = torch.arange(c, device=images.device)[None, :, None, None]
    return images[batch, chans, rows, cols]


class BatchSampler:
    """Draws (B, C, H, W) mini-batches from (N, C, H, W) images, cropped to (B, C, S, S) when
    ``crop_size`` = S is set; ``generator`` is the CPU generator of indices and offsets."""

    def __init__(self, batch_size: int, crop_size: int | None, generator: torch.Generator) -> None:
        self.batch_size = batch_size
        self.crop_size = crop_size
        self.generator = generator

    def draw(self, images: Tensor) -> Tensor:
        """A random mini-batch of ``images``, drawn with replacement (and cropped)."""
        idx = torch.randint(len(images), (self.batch_size,), generator=self.generator)
        batch = images[to_device_async(idx, images.device)]
        return random_crops(batch, self.crop_size, self.generator) if self.crop_size else batch
