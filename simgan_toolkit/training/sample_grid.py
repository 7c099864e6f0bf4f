"""Sample grids: the picture a person looks at to judge refinement.

Columns: synthetic | refined | real | |refined - synthetic| (the difference amplified so
small edits are visible). Multi-channel images other than RGB show their first channel.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch import Tensor
from torchvision.utils import make_grid

from simgan_toolkit.io import atomic_path


def _displayable(x: Tensor, value_range: tuple[float, float]) -> Tensor:
    lo, hi = value_range
    x = x.detach().float().cpu()
    if x.shape[1] not in (1, 3):
        x = x[:, :1]
    return ((x - lo) / (hi - lo)).clamp(0, 1)


def sample_grid(
    synthetic: Tensor, refined: Tensor, real: Tensor, value_range: tuple[float, float] = (-1.0, 1.0), diff_gain: float = 4.0
) -> Tensor:
    """Grid image (3, H', W') in [0, 1]; one row per sample, four columns as described above.

    Args:
        synthetic, refined: (n, C, H, W) paired images.
        real: (m, C, H, W) unpaired real images; the first n are shown (repeated if m < n).
    """
    n = synthetic.shape[0]
    real = real[torch.arange(n) % real.shape[0]]
    syn = _displayable(synthetic, value_range)
    ref = _displayable(refined, value_range)
    rea = _displayable(real, value_range)
    diff = ((ref - syn).abs() * diff_gain).clamp(0, 1)
    columns = torch.stack([syn, ref, rea, diff], dim=1).flatten(0, 1)  # row-major: sample by sample
    if columns.shape[1] == 1:
        columns = columns.expand(-1, 3, -1, -1)
    return make_grid(columns, nrow=4, padding=2, pad_value=1.0)


def save_sample_grid(grid: Tensor, path: str | Path, scale: int = 3) -> None:
    """Write a grid from :func:`sample_grid` as PNG, upscaled ``scale`` times (nearest), atomically."""
    array = (grid.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    image = Image.fromarray(array)
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
