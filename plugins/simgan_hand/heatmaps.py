"""Joint heatmaps: Gaussian maps, soft-argmax decoding, and the PCK metric.

Coordinates: pixel centres at integers. A crop coordinate u in [0, S-1] maps to heatmap
coordinate (u + 0.5) * h / S - 0.5 for an h-pixel heatmap, and back by the inverse.
"""

from __future__ import annotations

import torch
from torch import Tensor


def crop_to_heatmap(uv: Tensor, crop_size: int, heatmap_size: int) -> Tensor:
    """(..., 2) crop pixels -> heatmap pixels."""
    return (uv + 0.5) * (heatmap_size / crop_size) - 0.5


def heatmap_to_crop(uv: Tensor, crop_size: int, heatmap_size: int) -> Tensor:
    """(..., 2) heatmap pixels -> crop pixels."""
    return (uv + 0.5) * (crop_size / heatmap_size) - 0.5


def gaussian_heatmaps(uv: Tensor, size: int, sigma: float) -> Tensor:
    """Target heatmaps: (N, J, 2) (u, v) heatmap pixels -> (N, J, size, size), peak 1 at each joint."""
    grid = torch.arange(size, device=uv.device, dtype=uv.dtype)
    du = grid.view(1, 1, 1, size) - uv[..., 0, None, None]
    dv = grid.view(1, 1, size, 1) - uv[..., 1, None, None]
    return torch.exp(-(du**2 + dv**2) / (2 * sigma**2))


def soft_argmax(heatmaps: Tensor) -> Tensor:
    """Expected joint positions under a softmax over each heatmap (integral regression).

    (N, J, h, w) logits -> (N, J, 2) (u, v) heatmap pixels. Differentiable, so the estimator
    can be trained on joint coordinates directly (Sun et al., 2018), which learns far faster
    than matching Gaussian target maps at the small heatmap sizes a CPU budget allows.
    """
    n, j, h, w = heatmaps.shape
    prob = torch.softmax(heatmaps.reshape(n, j, h * w).float(), dim=-1).reshape(n, j, h, w)
    u = (prob.sum(dim=2) * torch.arange(w, device=prob.device, dtype=prob.dtype)).sum(dim=-1)
    v = (prob.sum(dim=3) * torch.arange(h, device=prob.device, dtype=prob.dtype)).sum(dim=-1)
    return torch.stack([u, v], dim=-1)


def pck_curve(errors: Tensor, max_px: int = 20) -> Tensor:
    """Percentage of joints with error <= d for d = 0..max_px. (N, J) errors -> (max_px + 1,)."""
    thresholds = torch.arange(max_px + 1, device=errors.device, dtype=errors.dtype)
    return (errors.flatten()[None, :] <= thresholds[:, None]).float().mean(dim=1) * 100
