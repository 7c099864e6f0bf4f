"""Label and pixel conventions shared by the gaze dataset loaders.

Every loader returns gaze in the MPIIGaze / OpenCV camera convention of
:mod:`simgan_gaze.eye_model` (x right, y down, z forward; an eye looking at the camera has
``z < 0``; ``pitch = asin(-y)`` > 0 looks up, ``yaw = atan2(-x, -z)`` > 0 looks towards the
image left). The conversions into that convention live here so that each one is written once:

- UnityEyes ``look_vec`` is in Unity camera space (x right, **y up**, z forward): only ``y``
  changes sign (data-formats.md 1.4, checked against GazeML's procedure).
- A horizontally mirrored eye image (MPIIGaze right eyes flipped to look like left eyes) has its
  gaze ``x`` and its head-pose yaw negated.
- uint8 intensities map to ``[-1, 1]`` as ``x / 127.5 - 1`` (SimGAN implementations do the same).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from simgan_gaze.eye_model import vector_to_pitch_yaw
from simgan_toolkit.data.loader import DatasetLoader
from simgan_toolkit.errors import DataError

#: Image size every gaze loader returns (H, W), as in the SimGAN gaze experiments.
EYE_HEIGHT, EYE_WIDTH = 35, 55


class EyeCropLoader(DatasetLoader):
    """Base of the gaze loaders: (C, 35, 55) eye crops, C = 3 when ``self.rgb`` else 1."""

    rgb: bool = False

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (3 if self.rgb else 1, EYE_HEIGHT, EYE_WIDTH)


#: Gaze vectors shorter than this cannot be normalised; a file holding one is broken.
_MIN_NORM = 1e-6


def unity_to_camera(look_vec: Tensor) -> Tensor:
    """UnityEyes ``look_vec`` (N, 3) or (N, 4) (w dropped) -> (N, 3) OpenCV-convention vectors.

    Unity camera space has y up, OpenCV's has y down; x and z agree, so only y changes sign.
    The result is not normalised (see :func:`gaze_labels`).
    """
    if look_vec.ndim != 2 or look_vec.shape[1] not in (3, 4):
        raise ValueError(f"look_vec must have shape (N, 3) or (N, 4), got {tuple(look_vec.shape)}")
    v = look_vec[:, :3].to(torch.float64)
    return torch.stack([v[:, 0], -v[:, 1], v[:, 2]], dim=1)


def gaze_labels(gaze: Tensor, source: str) -> dict[str, Tensor]:
    """``{"gaze": (N, 3) unit vectors, "pitch_yaw": (N, 2) radians}`` from (N, 3) gaze vectors.

    Args:
        gaze: (N, 3) camera-convention gaze vectors of any positive length.
        source: the file the vectors come from, named in the error for a zero-length vector.
    """
    norms = gaze.norm(dim=1)
    if bool((norms < _MIN_NORM).any()) or not bool(torch.isfinite(gaze).all()):
        bad = int(torch.nonzero((norms < _MIN_NORM) | ~torch.isfinite(norms))[0])
        raise DataError(f"{source}: gaze vector {bad} is zero or not finite: {gaze[bad].tolist()}")
    unit = gaze / norms[:, None]
    return {"gaze": unit.float(), "pitch_yaw": vector_to_pitch_yaw(unit).float()}


def mirror_gaze(gaze: Tensor) -> Tensor:
    """(N, 3) gaze of horizontally mirrored images: x negated, so yaw is negated and pitch kept."""
    return gaze * gaze.new_tensor([-1.0, 1.0, 1.0])


def pose_pitch_yaw(rodrigues: Tensor) -> Tensor:
    """MPIIGaze head pose (N, 3) Rodrigues vectors -> (N, 2) ``(pitch, yaw)`` radians.

    Follows the published MPIIGaze readers: with ``c`` the third column of the rotation matrix,
    ``pitch = asin(c_y)`` and ``yaw = atan2(c_x, c_z)``.
    """
    from kornia.geometry.conversions import axis_angle_to_rotation_matrix

    c = axis_angle_to_rotation_matrix(rodrigues.to(torch.float64))[:, :, 2]
    pitch = torch.asin(c[:, 1].clamp(-1.0, 1.0))
    yaw = torch.atan2(c[:, 0], c[:, 2])
    return torch.stack([pitch, yaw], dim=1).float()


def intensities_to_unit_range(pixels: Tensor) -> Tensor:
    """0..255 intensities (any shape, any dtype) -> float32 in ``[-1, 1]`` (``x / 127.5 - 1``)."""
    return (pixels.float() / 127.5 - 1.0).clamp(-1.0, 1.0)


def resize_eyes(images: Tensor) -> Tensor:
    """(N, C, h, w) float images -> (N, C, 35, 55), antialiased when shrinking (e.g. 36x60)."""
    if images.shape[0] == 0:
        return images.new_zeros(0, images.shape[1], EYE_HEIGHT, EYE_WIDTH)
    return F.interpolate(
        images, size=(EYE_HEIGHT, EYE_WIDTH), mode="bilinear", align_corners=False, antialias=True
    )


def as_channels(gray: Tensor, rgb: bool) -> Tensor:
    """(N, 1, H, W) grayscale -> itself, or (N, 3, H, W) with the value in every channel."""
    return gray.expand(-1, 3, -1, -1).contiguous() if rgb else gray
