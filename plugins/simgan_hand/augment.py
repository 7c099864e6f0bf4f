"""Estimator augmentation for depth crops: rotation, scale and shift that move the joints too.

The paper trains its hand estimator with +/-20 degree rotations and crop changes; an
augmentation that moved the image but not the labels would teach the estimator wrong joints.
"""

from __future__ import annotations

import kornia
import torch
from torch import Tensor


def random_affine(
    n: int, size: int, generator: torch.Generator, max_degrees: float = 20.0, scale: tuple[float, float] = (0.9, 1.1),
    max_shift_px: float = 10.0,
) -> Tensor:
    """(N, 2, 3) affine matrices (crop pixels -> crop pixels) about the crop centre."""
    device = generator.device
    u = torch.rand(n, 4, generator=generator, device=device)
    angle = (u[:, 0] * 2 - 1) * max_degrees
    s = scale[0] + u[:, 1] * (scale[1] - scale[0])
    shift = (u[:, 2:] * 2 - 1) * max_shift_px
    centre = torch.full((n, 2), (size - 1) / 2, device=device)
    matrix = kornia.geometry.transform.get_rotation_matrix2d(centre, angle, torch.stack([s, s], dim=1))
    matrix[:, :, 2] += shift
    return matrix


def rescale_affine(matrix: Tensor, factor: float) -> Tensor:
    """The (N, 2, 3) pixel-space ``matrix`` of a crop, expressed for the same crop resized by
    ``factor`` (pixel centres: ``x_small = (x + 0.5) * factor - 0.5``)."""
    n = matrix.shape[0]
    offset = 0.5 * factor - 0.5
    scale = torch.tensor([[factor, 0.0, offset], [0.0, factor, offset], [0.0, 0.0, 1.0]], dtype=matrix.dtype, device=matrix.device)
    bottom = torch.tensor([0.0, 0.0, 1.0], dtype=matrix.dtype, device=matrix.device).expand(n, 1, 3)
    full = torch.cat([matrix, bottom], dim=1)
    return (scale @ full @ torch.linalg.inv(scale))[:, :2]


def warp_sample(
    images: Tensor, joints_uvd: Tensor, matrix: Tensor, background: float = 1.0, crop_size: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Apply (N, 2, 3) ``matrix`` to (N, 1, S, S) depth crops and their (N, J, 3) joints.

    ``matrix`` and the joints' (u, v) are in pixels of a ``crop_size`` crop (default: S). When
    the images are a resized copy (S != ``crop_size``, e.g. at an estimator's input size), the
    warp is rescaled to them and the joints stay in ``crop_size`` pixels. Pixels that come from
    outside the crop get ``background`` (the far value). Joint depths are unchanged (an in-plane
    warp does not move anything in depth).
    """
    size = images.shape[-1]
    crop_size = crop_size or size
    image_matrix = matrix if size == crop_size else rescale_affine(matrix, size / crop_size)
    warped = kornia.geometry.transform.warp_affine(
        images - background, image_matrix, (size, size), mode="bilinear", padding_mode="zeros", align_corners=True
    ) + background
    uv1 = torch.cat([joints_uvd[..., :2], torch.ones_like(joints_uvd[..., :1])], dim=-1)  # (N, J, 3)
    uv = torch.einsum("nij,nkj->nki", matrix, uv1)
    return warped, torch.cat([uv, joints_uvd[..., 2:]], dim=-1)


def rotation_matrix(angle_degrees: float, size: int, n: int = 1, device: torch.device | str = "cpu") -> Tensor:
    """A pure rotation by ``angle_degrees`` about the crop centre as an (N, 2, 3) matrix for
    :func:`warp_sample` (positive: counter-clockwise as displayed, row 0 at the top)."""
    centre = torch.full((n, 2), (size - 1) / 2, device=device)
    return kornia.geometry.transform.get_rotation_matrix2d(
        centre, torch.full((n,), float(angle_degrees), device=device), torch.ones(n, 2, device=device)
    )
