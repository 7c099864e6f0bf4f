"""Joint heatmaps: Gaussian targets, sub-pixel decoding, and the PCK metric.

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


def _parabola_offset(left: Tensor, centre: Tensor, right: Tensor) -> Tensor:
    """Vertex offset of the parabola through three equally spaced log-values, in [-1, 1].

    Exact for a Gaussian peak (its logarithm is a parabola); 0 where the three values do not
    form a maximum.
    """
    denom = 2 * centre - left - right
    offset = (right - left) / (2 * denom.clamp(min=1e-12))
    return torch.where(denom > 1e-12, offset.clamp(-1, 1), torch.zeros_like(offset))


def decode_heatmaps(heatmaps: Tensor, eps: float = 1e-6) -> Tensor:
    """Sub-pixel joint positions: (N, J, h, w) -> (N, J, 2) (u, v) heatmap pixels.

    The arg-max, refined along each axis by the vertex of a parabola through the logarithm of
    the peak and its two neighbours (exact for Gaussian peaks, which is what the estimator is
    trained to output). At the heatmap border the arg-max is kept as is.
    """
    n, j, h, w = heatmaps.shape
    flat = heatmaps.reshape(n * j, h, w)
    peak = flat.flatten(1).argmax(dim=1)
    pv, pu = peak // w, peak % w
    logs = flat.clamp(min=eps).log()
    idx = torch.arange(n * j, device=heatmaps.device)

    def at(v: Tensor, u: Tensor) -> Tensor:
        return logs[idx, v.clamp(0, h - 1), u.clamp(0, w - 1)]

    centre = at(pv, pu)
    du = _parabola_offset(at(pv, pu - 1), centre, at(pv, pu + 1))
    dv = _parabola_offset(at(pv - 1, pu), centre, at(pv + 1, pu))
    du = torch.where((pu > 0) & (pu < w - 1), du, torch.zeros_like(du))
    dv = torch.where((pv > 0) & (pv < h - 1), dv, torch.zeros_like(dv))
    return torch.stack([pu.to(heatmaps.dtype) + du, pv.to(heatmaps.dtype) + dv], dim=1).reshape(n, j, 2)


def pck_curve(errors: Tensor, max_px: int = 20) -> Tensor:
    """Percentage of joints with error <= d for d = 0..max_px. (N, J) errors -> (max_px + 1,)."""
    thresholds = torch.arange(max_px + 1, device=errors.device, dtype=errors.dtype)
    return (errors.flatten()[None, :] <= thresholds[:, None]).float().mean(dim=1) * 100
