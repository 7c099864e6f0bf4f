"""Clean synthetic eye renderer: what a simple simulator produces.

The render is a flat-shaded layer stack: skin, an almond eye opening bounded by two eyelid
curves, a white sclera with Lambertian shading of the eyeball, a foreshortened iris ellipse with
a darker limbal ring, and a dark pupil ellipse; iris and pupil are clipped by the lids. Edges are
anti-aliased with a sigmoid of an (approximate) signed distance. Nothing else: no texture, no
lashes, no reflections, no optics or sensor effects; ``target.py`` adds those.

All work is batched over images; :func:`eye_layers` exposes the geometry masks so the target
renderer reuses exactly the same geometry (and therefore the same labels).
"""

from __future__ import annotations

from dataclasses import dataclass

import kornia
import torch
from torch import Tensor

from simgan_gaze.eye_model import (
    REFERENCE_HEIGHT,
    REFERENCE_WIDTH,
    EyeParams,
    check_count,
    check_generator,
    lid_curves,
    pupil_centre_px,
    sample_eye_params,
)

#: Sigmoid scale of anti-aliased edges; the 10-90 % ramp is ~4.4x this, about one pixel.
EDGE_SOFTNESS_PX = 0.25
#: Images rendered per chunk: bounds peak memory and keeps the working set cache-friendly.
CHUNK_SIZE = 1024
#: Slight warm tint of the sclera (it is never pure white).
_SCLERA_TINT = (1.0, 0.96, 0.93)
#: Darkest point of the limbal ring relative to the iris albedo.
_LIMBUS_DARKENING = 0.35


@dataclass
class EyeLayers:
    """Per-pixel geometry of a batch of eyes; every field is (N, 1, H, W).

    Attributes:
        opening: soft mask of the visible eye opening (between the lids).
        opening_sd: signed distance to the opening boundary in px, negative inside.
        upper_lid_sd: signed distance to the upper lid curve in px, positive above it.
        lid_t: position along the eye's long axis, -1 and 1 at the eye corners.
        iris: soft mask of the iris ellipse (not yet clipped by the lids).
        iris_rho: normalised elliptical radius of the iris, 1 on the iris boundary.
        pupil: soft mask of the pupil ellipse (not yet clipped by the lids).
        sclera_shading: Lambertian shading factor of the eyeball surface, in (0, 1].
    """

    opening: Tensor
    opening_sd: Tensor
    upper_lid_sd: Tensor
    lid_t: Tensor
    iris: Tensor
    iris_rho: Tensor
    pupil: Tensor
    sclera_shading: Tensor


def pixel_grid(height: int, width: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Pixel-centre coordinates: ``xs`` (1, 1, W) columns and ``ys`` (1, H, 1) rows."""
    xs = torch.arange(width, device=device, dtype=torch.float32).view(1, 1, width)
    ys = torch.arange(height, device=device, dtype=torch.float32).view(1, height, 1)
    return xs, ys


def soft_mask(signed_distance: Tensor) -> Tensor:
    """Anti-aliased coverage from a signed distance (negative inside); same shape."""
    return torch.sigmoid(-signed_distance / EDGE_SOFTNESS_PX)


def opening_signed_distances(
    params: EyeParams, xs: Tensor, ys: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Signed distances to the eye opening and to the upper lid, and the lid coordinate t.

    All three are (N, H, W).

    Distances are vertical offsets from the lid curves divided by ``sqrt(1 + slope^2)``,
    exact for straight lids and within a fraction of a pixel near these gently curved ones,
    which is all the anti-aliasing needs.

    Returns:
        ``(opening_sd, upper_sd, t)``: the first is negative inside the opening, the second is
        positive above (outside) the upper lid, ``t`` is -1/+1 at the eye corners.
    """
    c = torch.cos(params.roll).view(-1, 1, 1)
    s = torch.sin(params.roll).view(-1, 1, 1)
    dx = xs - params.opening_centre[:, 0].view(-1, 1, 1)
    dy = ys - params.opening_centre[:, 1].view(-1, 1, 1)
    # Rotate into the opening frame (u along the eye, v down across it).
    u = c * dx + s * dy
    v = -s * dx + c * dy
    t = u / params.opening_half_width.view(-1, 1, 1)
    v_up, dv_up, v_lo, dv_lo = lid_curves(params, t)
    upper_sd = (v_up - v) * torch.rsqrt(1.0 + dv_up * dv_up)
    lower_sd = (v - v_lo) * torch.rsqrt(1.0 + dv_lo * dv_lo)
    return torch.maximum(upper_sd, lower_sd), upper_sd, t


def ellipse_field(
    centre: Tensor, axis_dir: Tensor, semi_a: Tensor, semi_b: Tensor, xs: Tensor, ys: Tensor
) -> tuple[Tensor, Tensor]:
    """Normalised radius of ellipses and the inverse of its gradient norm, each (N, H, W).

    Args:
        centre: (N, 2) ellipse centres ``(x, y)``.
        axis_dir: (N, 2) unit direction of the ``semi_a`` axis.
        semi_a: (N,) semi-axis along ``axis_dir``.
        semi_b: (N,) semi-axis perpendicular to it.
        xs: (1, 1, W) pixel columns.
        ys: (1, H, 1) pixel rows.

    Returns:
        ``(rho, inv_grad)`` with ``rho = sqrt((p/a)^2 + (q/b)^2)`` (1 on the boundary) and
        ``1 / |grad rho|`` in px. The first-order signed distance to the concentric ellipse
        scaled by ``k`` is ``(rho - k) * inv_grad``: exact on its boundary, negative inside.
        One field thus serves both iris and pupil, which share centre and shape.
    """
    dx = xs - centre[:, 0].view(-1, 1, 1)
    dy = ys - centre[:, 1].view(-1, 1, 1)
    ex, ey = axis_dir[:, 0].view(-1, 1, 1), axis_dir[:, 1].view(-1, 1, 1)
    inv_a2 = semi_a.view(-1, 1, 1).reciprocal() ** 2
    inv_b2 = semi_b.view(-1, 1, 1).reciprocal() ** 2
    p2 = (dx * ex + dy * ey) ** 2
    q2 = (dy * ex - dx * ey) ** 2
    rho2 = p2 * inv_a2 + q2 * inv_b2
    # |grad rho| = sqrt(p^2/a^4 + q^2/b^4) / rho.
    grad2 = p2 * inv_a2 * inv_a2 + q2 * inv_b2 * inv_b2
    rho = torch.sqrt(rho2)
    inv_grad = rho * torch.rsqrt(grad2.clamp_min(1e-12))
    return rho, inv_grad


def iris_ellipse(params: EyeParams) -> tuple[Tensor, Tensor, Tensor]:
    """Image-space iris ellipse: centre (N, 2), minor-axis direction (N, 2), minor factor (N,).

    A disc facing along the gaze projects orthographically to an ellipse whose minor axis
    points along the gaze's image offset and is shortened by ``|g_z|``, the cosine of the
    angle between the gaze and the camera axis; the major axis keeps the full radius.
    """
    g = params.gaze_vector()
    centre = pupil_centre_px(params)
    offset = g[:, :2]
    norm = offset.norm(dim=1, keepdim=True)
    # Looking straight at the camera the disc is a circle; any axis will do.
    fallback = torch.tensor([1.0, 0.0], device=g.device).expand_as(offset)
    direction = torch.where(norm > 1e-6, offset / norm.clamp_min(1e-6), fallback)
    return centre, direction, g[:, 2].abs()


def eye_layers(
    params: EyeParams, height: int = REFERENCE_HEIGHT, width: int = REFERENCE_WIDTH
) -> EyeLayers:
    """Rasterise the eye geometry of N images into per-pixel masks (see :class:`EyeLayers`)."""
    xs, ys = pixel_grid(height, width, params.device)
    opening_sd, upper_sd, lid_t = opening_signed_distances(params, xs, ys)
    centre, direction, foreshortening = iris_ellipse(params)
    iris_rho, inv_grad = ellipse_field(
        centre, direction, params.iris_radius * foreshortening, params.iris_radius, xs, ys
    )
    pupil_scale = (params.pupil_radius / params.iris_radius).view(-1, 1, 1)
    # Lambert shading of the eyeball lit from the camera: cos of the surface normal's tilt.
    inv_r = params.eyeball_radius.view(-1, 1, 1).reciprocal()
    ex = (xs - params.centre[:, 0].view(-1, 1, 1)) * inv_r
    ey = (ys - params.centre[:, 1].view(-1, 1, 1)) * inv_r
    shading = torch.sqrt((1.0 - ex * ex - ey * ey).clamp_min(0.0)).mul(0.4).add(0.6)

    def chan(x: Tensor) -> Tensor:
        return x.unsqueeze(1)

    return EyeLayers(
        opening=chan(soft_mask(opening_sd)),
        opening_sd=chan(opening_sd),
        upper_lid_sd=chan(upper_sd),
        lid_t=chan(lid_t),
        iris=chan(soft_mask((iris_rho - 1.0) * inv_grad)),
        iris_rho=chan(iris_rho),
        pupil=chan(soft_mask((iris_rho - pupil_scale) * inv_grad)),
        sclera_shading=chan(shading),
    )


def composite(params: EyeParams, layers: EyeLayers, skin_albedo: Tensor | None = None) -> Tensor:
    """Stack the eye layers into an sRGB image (N, 3, H, W) in ``[0, 1]``.

    Args:
        params: eye parameters for N images.
        layers: their rasterised geometry.
        skin_albedo: optional (N, 3, H, W) skin colour map; flat ``params.skin_colour`` if None.
    """
    def rgb(x: Tensor) -> Tensor:
        return x.view(-1, 3, 1, 1)

    skin = rgb(params.skin_colour) if skin_albedo is None else skin_albedo
    tint = torch.tensor(_SCLERA_TINT, device=params.device).view(1, 3, 1, 1)
    sclera = params.sclera_brightness.view(-1, 1, 1, 1) * tint * layers.sclera_shading
    # Limbal ring: the iris darkens towards its rim, a cue every eye image has.
    limbus = 1.0 - _LIMBUS_DARKENING * ((layers.iris_rho - 0.7) / 0.3).clamp(0.0, 1.0)
    iris = rgb(params.iris_colour) * limbus
    pupil = params.pupil_brightness.view(-1, 1, 1, 1)
    eye = torch.lerp(sclera, torch.lerp(iris, pupil.expand_as(iris), layers.pupil), layers.iris)
    return torch.lerp(skin.expand_as(eye), eye, layers.opening)


def to_output(rgb01: Tensor, rgb: bool) -> Tensor:
    """Map an sRGB (N, 3, H, W) image in [0, 1] to the output layout (N, C, H, W) in [-1, 1]."""
    x = rgb01 if rgb else kornia.color.rgb_to_grayscale(rgb01)
    return x.clamp(0.0, 1.0).mul(2.0).sub(1.0)


def render_synthetic(
    params: EyeParams,
    height: int = REFERENCE_HEIGHT,
    width: int = REFERENCE_WIDTH,
    rgb: bool = False,
) -> Tensor:
    """Render N clean synthetic eyes, (N, C, H, W) float32 in [-1, 1], C = 3 if ``rgb`` else 1.

    Grayscale is the luminance (ITU-R 601 weights, via kornia) of the RGB render.
    """
    if len(params) == 0:
        raise ValueError("params hold no eyes; need at least one to render")
    chunks = []
    for start in range(0, len(params), CHUNK_SIZE):
        p = params[start : start + CHUNK_SIZE]
        chunks.append(to_output(composite(p, eye_layers(p, height, width)), rgb))
    return torch.cat(chunks, dim=0)


def eye_labels(params: EyeParams) -> dict[str, Tensor]:
    """Labels of N eyes: ``gaze`` (N, 3), ``pitch_yaw`` (N, 2) rad, ``pupil_centre`` (N, 2) px."""
    return {
        "gaze": params.gaze_vector(),
        "pitch_yaw": params.pitch_yaw(),
        "pupil_centre": pupil_centre_px(params),
    }


def simulate_eyes(
    n: int,
    generator: torch.Generator,
    *,
    rgb: bool = False,
    device: torch.device | str = "cpu",
    height: int = REFERENCE_HEIGHT,
    width: int = REFERENCE_WIDTH,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Sample N eyes and render them with the clean simulator.

    Args:
        n: number of images (> 0).
        generator: torch.Generator on ``device``; fixes the output completely.
        rgb: three colour channels instead of one luminance channel.
        device: where images and labels are produced.
        height: image height in pixels.
        width: image width in pixels.

    Returns:
        ``(images, labels)``: images (N, C, H, W) float32 in [-1, 1]; labels as in
        :func:`eye_labels`.
    """
    check_count(n)
    dev = check_generator(generator, device)
    params = sample_eye_params(n, generator, dev, height=height, width=width)
    return render_synthetic(params, height, width, rgb), eye_labels(params)
