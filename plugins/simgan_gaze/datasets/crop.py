"""Scale-normalised eye crops: an affine map from a full frame to a 35x55 patch, applied to the
pixels and to the landmarks alike.

Pixel coordinates are ``(x = column, y = row)`` with pixel centres at integer coordinates, the
convention of the gaze task's ``pupil_centre`` label. A crop is a scale-and-translation matrix
``M`` (2, 3) with ``dst = M @ (x, y, 1)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

#: Crop width as a multiple of the corner-to-corner eye width (GazeML's UnityEyes recipe).
EYE_WIDTH_MARGIN = 1.5


def eye_crop_matrix(
    inner_corner: Tensor, outer_corner: Tensor, centre: Tensor, out_hw: tuple[int, int]
) -> Tensor:
    """Matrix (2, 3) mapping a frame to an ``out_hw`` crop centred on the eye.

    The crop box is ``W = 1.5 * |inner.x - outer.x|`` pixels wide and ``W * oh / ow`` high,
    centred on ``centre``; it is scaled by ``s = ow / W`` so that the box's edges land on the
    output's pixel edges (``centre`` lands on ``((ow - 1) / 2, (oh - 1) / 2)``).

    Args:
        inner_corner: (2,) inner eye corner ``(x, y)`` in frame pixels.
        outer_corner: (2,) outer eye corner ``(x, y)`` in frame pixels.
        centre: (2,) crop centre ``(x, y)`` in frame pixels.
        out_hw: output ``(height, width)``.

    Raises:
        ValueError: the two corners have (almost) the same x, so no scale can be derived.
    """
    oh, ow = out_hw
    box_width = EYE_WIDTH_MARGIN * float((inner_corner[0] - outer_corner[0]).abs())
    if box_width < 1e-3:
        raise ValueError(f"eye corners {inner_corner.tolist()} and {outer_corner.tolist()} have the same x")
    s = ow / box_width
    cx, cy = float(centre[0]), float(centre[1])
    return torch.tensor(
        [[s, 0.0, (ow - 1) / 2 - s * cx], [0.0, s, (oh - 1) / 2 - s * cy]], dtype=torch.float64
    )


def transform_points(points: Tensor, matrix: Tensor) -> Tensor:
    """Apply ``matrix`` (2, 3) to (K, 2) points ``(x, y)``; returns (K, 2) in the same dtype."""
    m = matrix.to(points.dtype)
    return points @ m[:, :2].T + m[:, 2]


def crop_affine(image: Tensor, matrix: Tensor, out_hw: tuple[int, int]) -> Tensor:
    """Resample ``image`` (C, H, W) float through a scale+translation ``matrix`` into (C, oh, ow).

    Shrinking a frame by bilinear sampling alone aliases (a 800x600 UnityEyes eye is ~4x wider
    than the crop), so the source is first blurred with a Gaussian of
    ``sigma = (1/s - 1) / 2`` (scikit-image's anti-aliasing rule). Only the region around the
    crop box is blurred, which keeps the cost independent of the frame size. Outside the frame
    the output is 0.
    """
    from kornia.filters import gaussian_blur2d
    from kornia.geometry.transform import warp_affine

    c, h, w = image.shape
    oh, ow = out_hw
    m = matrix.to(torch.float64)
    s = math.sqrt(abs(float(m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0])))
    sigma = max(0.0, (1.0 / s - 1.0) / 2.0)
    radius = math.ceil(3.0 * sigma)

    # Source-space bounding box of the output, plus the blur radius and a bilinear neighbour.
    corners = torch.tensor([[-0.5, -0.5], [ow - 0.5, -0.5], [-0.5, oh - 0.5], [ow - 0.5, oh - 0.5]], dtype=torch.float64)
    inverse = torch.linalg.inv(torch.cat([m, m.new_tensor([[0.0, 0.0, 1.0]])]))[:2]
    src = transform_points(corners, inverse)
    margin = radius + 2
    x0 = max(0, math.floor(float(src[:, 0].min())) - margin)
    x1 = min(w, math.ceil(float(src[:, 0].max())) + margin + 1)
    y0 = max(0, math.floor(float(src[:, 1].min())) - margin)
    y1 = min(h, math.ceil(float(src[:, 1].max())) + margin + 1)
    if x0 >= x1 or y0 >= y1:  # the crop lies entirely outside the frame
        return image.new_zeros(c, oh, ow)
    region = image[None, :, y0:y1, x0:x1]
    if radius > 0:
        region = gaussian_blur2d(region, 2 * radius + 1, (sigma, sigma), border_type="replicate")
    # Shift the matrix so it reads from the region instead of the full frame.
    shifted = m.clone()
    shifted[:, 2] += m[:, :2] @ m.new_tensor([float(x0), float(y0)])
    out = warp_affine(
        region, shifted[None].to(region.dtype), dsize=(oh, ow), mode="bilinear",
        padding_mode="zeros", align_corners=True,
    )
    return out[0]
