"""Parametric eye geometry and the gaze-angle conventions shared by the simulator and target.

Coordinate conventions
----------------------
Camera space is OpenCV's: x to the right, y down, z forward (away from the camera). An eye that
looks roughly at the camera therefore has a gaze vector with ``z < 0``. Gaze angles follow
MPIIGaze::

    gaze  = (-cos(pitch) * sin(yaw), -sin(pitch), -cos(pitch) * cos(yaw))
    pitch = asin(-g_y)          # > 0: the eye looks UP
    yaw   = atan2(-g_x, -g_z)   # > 0: the eye looks towards the image LEFT (smaller column)

Image space is ``(x = column, y = row)`` with pixel centres at integer coordinates, so x runs
over ``[0, W-1]`` and y over ``[0, H-1]``. The projection is orthographic: a point at camera-space
offset ``(dx, dy, dz)`` from the eyeball centre lands ``(dx, dy)`` pixels from the eyeball
centre's pixel. The pupil centre sits ``eyeball_radius`` along the gaze direction, so its image
position is ``centre + eyeball_radius * (g_x, g_y)``; that is the pupil-centre label.

The eyelids are two curves in an "opening frame" centred on ``opening_centre`` and rotated by
``roll``: ``u`` along the eye's long axis, ``v`` perpendicular to it (down is positive). With
``t = u / opening_half_width``::

    v_upper(t) = -A_up * (1 - t^2) * (1 + lid_skew * t)
    v_lower(t) = +A_lo * (1 - t^2) * (1 - lid_skew * t)

where the apex heights ``A_up``/``A_lo`` follow the vertical gaze (the upper lid rides up when
the eye looks up and drops when it looks down, the lower lid follows more weakly), as real
eyelids do.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from simgan_toolkit.sampling import TensorBatch, check_count, check_generator

#: Reference image size the sampled geometry is designed for (MPIIGaze-like eye crops).
REFERENCE_HEIGHT = 35
REFERENCE_WIDTH = 55

#: Gaze ranges in degrees, roughly those of MPIIGaze / UnityEyes eye crops.
PITCH_RANGE_DEG = (-25.0, 20.0)
YAW_RANGE_DEG = (-35.0, 35.0)

#: How strongly the lid apexes follow the pupil's vertical displacement (fraction of it).
UPPER_LID_FOLLOW = 0.8
LOWER_LID_FOLLOW = 0.5
#: Lids never close completely in the sampled distribution; keeps every eye an eye.
MIN_LID_APEX_PX = 1.5

# Iris colour palette (sRGB in [0, 1]): dark brown, brown, hazel, green, blue, grey.
_IRIS_PALETTE = (
    (0.22, 0.12, 0.06),
    (0.38, 0.23, 0.11),
    (0.45, 0.36, 0.18),
    (0.30, 0.40, 0.26),
    (0.30, 0.44, 0.60),
    (0.42, 0.46, 0.50),
)
# Skin tones are interpolated between a light and a dark end point (sRGB in [0, 1]).
_SKIN_LIGHT = (0.93, 0.76, 0.66)
_SKIN_DARK = (0.36, 0.23, 0.16)


@dataclass
class EyeParams(TensorBatch):
    """Per-image eye geometry and appearance; every field has the batch as first dimension.

    Lengths are in pixels of the image the parameters were sampled for; angles in radians;
    colours are sRGB in ``[0, 1]``.

    Attributes:
        pitch: (N,) vertical gaze angle, > 0 looks up.
        yaw: (N,) horizontal gaze angle, > 0 looks towards the image left.
        centre: (N, 2) eyeball centre in the image, ``(x, y)``.
        eyeball_radius: (N,) distance from the eyeball's rotation centre to the pupil centre.
        opening_centre: (N, 2) centre of the almond-shaped eye opening, ``(x, y)``.
        opening_half_width: (N,) half the corner-to-corner length of the eye opening.
        upper_lid_height: (N,) upper-lid apex height above the opening centre at zero pitch.
        lower_lid_height: (N,) lower-lid apex depth below the opening centre at zero pitch.
        lid_skew: (N,) asymmetry of the lid curves (moves the apex towards one corner).
        roll: (N,) in-plane rotation of the eyelids (head roll), radians.
        iris_radius: (N,) iris radius.
        pupil_radius: (N,) pupil radius.
        iris_colour: (N, 3) iris albedo.
        skin_colour: (N, 3) skin albedo.
        sclera_brightness: (N,) albedo of the white of the eye.
        pupil_brightness: (N,) albedo of the pupil.
    """

    pitch: Tensor
    yaw: Tensor
    centre: Tensor
    eyeball_radius: Tensor
    opening_centre: Tensor
    opening_half_width: Tensor
    upper_lid_height: Tensor
    lower_lid_height: Tensor
    lid_skew: Tensor
    roll: Tensor
    iris_radius: Tensor
    pupil_radius: Tensor
    iris_colour: Tensor
    skin_colour: Tensor
    sclera_brightness: Tensor
    pupil_brightness: Tensor

    def pitch_yaw(self) -> Tensor:
        """(N, 2) gaze as ``(pitch, yaw)`` radians."""
        return torch.stack([self.pitch, self.yaw], dim=1)

    def gaze_vector(self) -> Tensor:
        """(N, 3) unit gaze vectors in camera space."""
        return pitch_yaw_to_vector(self.pitch_yaw())


def pitch_yaw_to_vector(pitch_yaw: Tensor) -> Tensor:
    """Convert ``(pitch, yaw)`` radians, shape (N, 2), to unit gaze vectors, shape (N, 3)."""
    if pitch_yaw.ndim != 2 or pitch_yaw.shape[1] != 2:
        raise ValueError(f"pitch_yaw must have shape (N, 2), got {tuple(pitch_yaw.shape)}")
    pitch, yaw = pitch_yaw[:, 0], pitch_yaw[:, 1]
    cp = torch.cos(pitch)
    return torch.stack([-cp * torch.sin(yaw), -torch.sin(pitch), -cp * torch.cos(yaw)], dim=1)


def vector_to_pitch_yaw(gaze: Tensor) -> Tensor:
    """Convert gaze vectors, shape (N, 3) (normalised here), to ``(pitch, yaw)`` radians (N, 2)."""
    if gaze.ndim != 2 or gaze.shape[1] != 3:
        raise ValueError(f"gaze must have shape (N, 3), got {tuple(gaze.shape)}")
    g = torch.nn.functional.normalize(gaze, dim=1)
    pitch = torch.asin((-g[:, 1]).clamp(-1.0, 1.0))
    yaw = torch.atan2(-g[:, 0], -g[:, 2])
    return torch.stack([pitch, yaw], dim=1)


def angular_error_degrees(a: Tensor, b: Tensor) -> Tensor:
    """Angle in degrees between corresponding rows of two (N, 3) direction batches; (N,)."""
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] != 3:
        raise ValueError(f"expected two (N, 3) tensors, got {tuple(a.shape)} and {tuple(b.shape)}")
    cos = torch.nn.functional.cosine_similarity(a, b, dim=1, eps=1e-8)
    # Clamp: rounding can push |cos| a hair past 1, where acos is NaN.
    return torch.rad2deg(torch.acos(cos.clamp(-1.0, 1.0)))


def pupil_centre_px(params: EyeParams) -> Tensor:
    """(N, 2) image position ``(x, y)`` of the pupil centre: orthographic gaze projection."""
    g = params.gaze_vector()
    return params.centre + params.eyeball_radius[:, None] * g[:, :2]


def lid_apex_heights(params: EyeParams) -> tuple[Tensor, Tensor]:
    """Gaze-dependent lid apex heights ``(A_up, A_lo)``, each (N,), in pixels (both > 0).

    The pupil's vertical image displacement ``eyeball_radius * g_y`` drags the lids along:
    looking down (g_y > 0) lowers the upper lid, looking up raises it.
    """
    dy = params.eyeball_radius * pitch_yaw_to_vector(params.pitch_yaw())[:, 1]
    upper = (params.upper_lid_height - UPPER_LID_FOLLOW * dy).clamp_min(MIN_LID_APEX_PX)
    lower = (params.lower_lid_height + LOWER_LID_FOLLOW * dy).clamp_min(MIN_LID_APEX_PX)
    return upper, lower


def lid_curves(params: EyeParams, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Lid offsets ``v`` and slopes ``dv/du`` at normalised positions ``t`` (opening frame).

    Args:
        params: eye parameters for N images.
        t: (N, ...) normalised position along the opening, ``u / opening_half_width``.

    Returns:
        ``(v_upper, dv_upper/du, v_lower, dv_lower/du)``, each shaped like ``t``.
    """
    extra = (1,) * (t.ndim - 1)
    a_up, a_lo = lid_apex_heights(params)
    a_up, a_lo = a_up.view(-1, *extra), a_lo.view(-1, *extra)
    s = params.lid_skew.view(-1, *extra)
    w = params.opening_half_width.view(-1, *extra)
    base = 1.0 - t * t
    v_up = -a_up * base * (1.0 + s * t)
    v_lo = a_lo * base * (1.0 - s * t)
    # d/dt of (1 - t^2)(1 + s t) = s - 2t - 3 s t^2; divide by w for d/du.
    dv_up = -a_up * (s - 2.0 * t - 3.0 * s * t * t) / w
    dv_lo = a_lo * (-s - 2.0 * t + 3.0 * s * t * t) / w
    return v_up, dv_up, v_lo, dv_lo


def opening_frame_to_image(params: EyeParams, u: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    """Map opening-frame coordinates ``(u, v)`` (N, ...) to image ``(x, y)`` (N, ...)."""
    extra = (1,) * (u.ndim - 1)
    c, s = torch.cos(params.roll).view(-1, *extra), torch.sin(params.roll).view(-1, *extra)
    ox = params.opening_centre[:, 0].view(-1, *extra)
    oy = params.opening_centre[:, 1].view(-1, *extra)
    return ox + c * u - s * v, oy + s * u + c * v


def _uniform(n: int, low: float, high: float, g: torch.Generator, dev: torch.device) -> Tensor:
    """(n,) samples from U(low, high)."""
    return low + (high - low) * torch.rand(n, generator=g, device=dev)


def sample_eye_params(
    n: int,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
    *,
    height: int = REFERENCE_HEIGHT,
    width: int = REFERENCE_WIDTH,
) -> EyeParams:
    """Draw N random eyes; the same distribution feeds the simulator and the target domain.

    Lengths are designed for 35x55 crops and scaled by ``min(height/35, width/55)`` for other
    sizes, with the eye centred in the image.

    Args:
        n: number of eyes (> 0).
        generator: random generator on ``device``.
        device: where the returned tensors live.
        height: image height in pixels.
        width: image width in pixels.

    Returns:
        EyeParams with N entries.
    """
    check_count(n)
    dev = check_generator(generator, device)
    if height < 8 or width < 8:
        raise ValueError(f"image size must be at least 8x8, got {height}x{width}")
    g = generator
    k = min(height / REFERENCE_HEIGHT, width / REFERENCE_WIDTH)

    def u(low: float, high: float) -> Tensor:
        return _uniform(n, low, high, g, dev)

    pitch = torch.deg2rad(u(*PITCH_RANGE_DEG))
    yaw = torch.deg2rad(u(*YAW_RANGE_DEG))
    centre = torch.stack(
        [(width - 1) / 2 + k * u(-2.5, 2.5), (height - 1) / 2 + k * u(-1.5, 1.5)], dim=1
    )
    eyeball_radius = k * u(12.5, 15.5)
    opening_centre = centre + k * torch.stack([u(-1.0, 1.0), u(-1.0, 1.0)], dim=1)
    opening_half_width = k * u(17.0, 21.0)
    upper_lid_height = k * u(5.5, 8.0)
    lower_lid_height = k * u(5.0, 7.0)
    lid_skew = u(-0.15, 0.15)
    roll = torch.deg2rad(u(-8.0, 8.0))
    # Iris ~ 11.7 mm across on an eye whose pupil sits ~13 mm from its rotation centre.
    iris_radius = eyeball_radius * u(0.42, 0.50)
    pupil_radius = iris_radius * u(0.28, 0.45)

    palette = torch.tensor(_IRIS_PALETTE, device=dev)
    idx = torch.randint(0, palette.shape[0], (n,), generator=g, device=dev)
    iris_colour = (palette[idx] * (0.8 + 0.4 * torch.rand(n, 3, generator=g, device=dev))).clamp(
        0.0, 1.0
    )
    tone = u(0.0, 1.0)[:, None]
    light, dark = torch.tensor(_SKIN_LIGHT, device=dev), torch.tensor(_SKIN_DARK, device=dev)
    skin_colour = light + tone * (dark - light)
    skin_colour = (skin_colour * (0.92 + 0.16 * torch.rand(n, 3, generator=g, device=dev))).clamp(
        0.0, 1.0
    )
    sclera_brightness = u(0.75, 0.95)
    pupil_brightness = u(0.02, 0.06)
    return EyeParams(
        pitch=pitch,
        yaw=yaw,
        centre=centre,
        eyeball_radius=eyeball_radius,
        opening_centre=opening_centre,
        opening_half_width=opening_half_width,
        upper_lid_height=upper_lid_height,
        lower_lid_height=lower_lid_height,
        lid_skew=lid_skew,
        roll=roll,
        iris_radius=iris_radius,
        pupil_radius=pupil_radius,
        iris_colour=iris_colour,
        skin_colour=skin_colour,
        sclera_brightness=sclera_brightness,
        pupil_brightness=pupil_brightness,
    )

