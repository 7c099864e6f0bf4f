"""Kinect-like target generator: plays the part of real NYU depth crops.

The scene (same pose distribution as the simulator, so the labels mean the same thing; a
slightly different hand, a forearm, a wall or table) is :mod:`simgan_hand.target_scene`'s,
shared with the other target cameras; this module is the sensor:

sensor (a Kinect v1: structured light, IR projector ~75 mm to the side of the IR camera)
    :func:`projector_shadow`, :func:`grazing_dropout`, :func:`correlation_window_smoothing`,
    :func:`flying_pixels`, :func:`occluding_edge_dropout`, :func:`add_depth_noise`,
    :func:`quantise_disparity`, :func:`random_holes`

Missing readings are 0 mm, as in NYU's depth PNGs, and become the far value +1 in the crop, the
same value as background and everything beyond the cube.

Resolution: sensor effects have physical sizes in camera (640x480) pixels or mm. Crops are
point-sampled from the camera image (DeepPrior's nearest-neighbour resize), so every effect is
applied at the crop's own resolution with its sizes converted by the crop's pixels-per-camera-
pixel factor (0.6-1.1 at 224, less at smaller sizes); one-camera-pixel bands at depth edges are
then hit with the probability that a point sample lands in them.

All ranges are moderate, drawn per image, and set from the physics and the sensor literature
(Khoshelham & Elberink 2012; Nguyen et al. 2012), not tuned for any method.
"""

from __future__ import annotations

import math

import kornia
import torch
from torch import Tensor

from simgan_hand.render import DEFAULT_SIZE, CropParams
from simgan_hand.skeleton import DEFAULT_CUBE_MM, NYU_INTRINSICS, CameraIntrinsics, HandPose
from simgan_hand.target_scene import (
    TargetScene,
    _finite,
    _uniform,
    background_plane,  # noqa: F401  (re-exported: part of this module's public API)
    forearm_capsules,  # noqa: F401
    render_plane_depth,  # noqa: F401
    render_target_crops,
    render_target_scene,
    sample_target_shape,
    simulate_target_hands,
    target_depth_mm,
)

#: The scene and its parts under the names this module gave them before they were shared.
KinectScene = TargetScene
render_kinect_scene = render_target_scene
sample_kinect_shape = sample_target_shape

#: Kinect v1 projector-camera baseline, mm. Positive: the projector is on the camera's +x side
#: (the image right), so projector shadows fall on the image LEFT of foreground objects.
KINECT_BASELINE_MM = 75.0
#: Sub-pixel resolution of the Kinect v1 disparity (1/8 pixel).
DISPARITY_STEP_PX = 1.0 / 8.0
#: Depth jump that makes a depth discontinuity (an occluding edge), mm.
EDGE_JUMP_MM = 20.0
#: Width of the band along depth edges where matching fails or mixes depths, camera pixels.
EDGE_BAND_NATIVE_PX = 1.5


# --------------------------------------------------------------------------------------------
# Sensor effects
# --------------------------------------------------------------------------------------------


def projector_shadow(
    depth_mm: Tensor,
    crop: CropParams,
    baseline_mm: float = KINECT_BASELINE_MM,
    tolerance_px: float = 0.25,
) -> Tensor:
    """Pixels (N, 1, S, S) bool that the IR projector cannot illuminate: no depth there.

    Physical reason: a structured-light sensor measures depth only where its own projected
    pattern lands. The projector sits ``baseline_mm`` beside the camera (along x), so a
    foreground object hides a strip of the surfaces behind it from the projector while the
    camera still sees them: the classic Kinect "shadow" on one side of every object, as wide as
    the disparity difference ``f * b * (1/z_near - 1/z_far)`` camera pixels.

    On a camera row (rows are epipolar lines for a horizontal baseline) the point at column
    ``u`` and depth ``z`` lies on projector column ``q = u - f b / z``. It is in shadow iff a
    pixel further towards the projector has a smaller ``q`` (it sits on the projector ray in
    front of the point), i.e. iff ``q`` exceeds the running minimum of ``q`` over the columns on
    the projector's side. Exact for the geometry sampled in the crop; occluders outside the
    crop cast no shadow into it.
    """
    n, _, h, w = depth_mm.shape
    k = crop.intrinsics
    cols = torch.arange(w, device=depth_mm.device, dtype=depth_mm.dtype)
    uv = torch.stack([cols, torch.zeros_like(cols)], dim=-1).unsqueeze(0).expand(n, -1, -1)
    u = crop.crop_to_image(uv)[..., 0].view(n, 1, 1, w)
    finite = _finite(depth_mm)
    inv_z = torch.where(finite, 1.0 / depth_mm.clamp_min(1e-3), torch.zeros_like(depth_mm))
    q = u - k.fx * baseline_mm * inv_z
    if baseline_mm < 0:
        # Projector on the left: mirror the row so the projector side is always to the right.
        q = -q.flip(-1)
    # Minimum of q over the columns strictly to the right (towards the projector).
    suffix = torch.cummin(q.flip(-1), dim=-1).values.flip(-1)
    right_min = torch.cat([suffix[..., 1:], torch.full_like(suffix[..., :1], math.inf)], dim=-1)
    shadow = right_min < q - tolerance_px
    if baseline_mm < 0:
        shadow = shadow.flip(-1)
    return shadow & finite


#: Stand-in depth for "no reading" when taking depth steps: any step to it is huge.
_NO_READING_MM = 1.0e7


def _one_sided_difference(z: Tensor, dim: int) -> Tensor:
    """Per-pixel depth step to a neighbour along ``dim`` (3 = columns, 2 = rows): of the forward
    and backward differences, the one with the smaller magnitude (the crop border uses the only
    one). Taking the smaller side keeps an adjacent depth discontinuity out of the slope; ``z``
    holds :data:`_NO_READING_MM` where there is no reading, so steps to it are never chosen
    unless both neighbours are missing."""
    d = z.diff(dim=dim)
    size = d.shape[dim]
    fwd, bwd = d.narrow(dim, 1, size - 1), d.narrow(dim, 0, size - 1)
    inner = torch.where(fwd.abs() < bwd.abs(), fwd, bwd)
    return torch.cat([d.narrow(dim, 0, 1), inner, d.narrow(dim, size - 1, 1)], dim=dim)


def surface_incidence_cos(depth_mm: Tensor, crop: CropParams) -> Tensor:
    """|cos| of the angle between surface normal and view ray, (N, 1, S, S); 1 where no reading.

    With pixel rays ``d = (ax + bx j, ay + by i, 1)`` and surface points ``P = z d``, the
    tangents are ``P_j = z_j d + z (bx, 0, 0)`` and ``P_i = z_i d + z (0, by, 0)``, so the
    normal ``P_j x P_i = z m`` with ``m = (-by z_j, -bx z_i, by z_j d_x + bx z_i d_y + z bx by)``
    and ``n . d = z^2 bx by``: ``cos = z bx by / (|m| |d|)``. ``z_j``, ``z_i`` are one-sided
    depth steps (:func:`_one_sided_difference`), so discontinuities do not fake steep surfaces;
    a valid pixel with no valid neighbour along an axis counts as grazing.
    """
    finite = _finite(depth_mm)
    far = depth_mm.masked_fill(~finite, _NO_READING_MM)
    zj = _one_sided_difference(far, 3)
    zi = _one_sided_difference(far, 2)
    _, bx, _, by = crop.ray_coefficients()
    rx, ry = crop.pixel_rays()
    rx, ry = rx.unsqueeze(1), ry.unsqueeze(1)
    bx, by = bx.view(-1, 1, 1, 1), by.view(-1, 1, 1, 1)
    mx, my = by * zj, bx * zi
    mz = mx * rx + my * ry + far * (bx * by)
    m_norm2 = mx * mx + my * my + mz * mz
    d_norm2 = rx * rx + (ry * ry + 1.0)
    cos = far * (bx * by) / (m_norm2 * d_norm2).sqrt().clamp_min(1e-12)
    return cos.abs().masked_fill(~finite, 1.0)


def grazing_dropout(
    depth_mm: Tensor,
    crop: CropParams,
    generator: torch.Generator,
    max_angle_deg: tuple[float, float] = (72.0, 80.0),
) -> Tensor:
    """Pixels (N, 1, S, S) bool on surfaces seen at grazing incidence: no depth there.

    Physical reason: on a surface nearly parallel to the view ray the projected dots are
    stretched and dimmed, so the correlation with the reference pattern fails; the Kinect
    returns nothing on the rims of fingers and on far, steeply inclined floors and tables. The
    cut-off angle between surface normal and ray is drawn per image from ``max_angle_deg``.
    """
    n, dev = depth_mm.shape[0], depth_mm.device
    limit = torch.deg2rad(_uniform((n, 1, 1, 1), *max_angle_deg, generator, dev))
    return surface_incidence_cos(depth_mm, crop) < torch.cos(limit)


def correlation_window_smoothing(
    foreground_mm: Tensor,
    background_mm: Tensor,
    px_per_native: Tensor,
    generator: torch.Generator,
    sigma_native: tuple[float, float] = (1.0, 1.8),
    foreground_share: float | Tensor = 0.5,
) -> Tensor:
    """Depth (N, 1, S, S) mm as block matching reports it: rounded silhouettes, smoothed surfaces.

    Physical reason: the Kinect finds each pixel's disparity by correlating a window (~9x9) of
    the IR image with the reference pattern, so every output depth is decided by a patch, not a
    point. Where a window straddles the hand's silhouette the stronger (larger) share wins:
    corners get rounded, gaps narrower than the window close, slivers vanish; inside a surface
    the depth is a window average, which rounds creases and small bumps. Modelled as a soft
    Gaussian window (sigma drawn per image in camera pixels): the foreground wins where its
    window-weighted share exceeds one half and takes its window-averaged depth there; elsewhere
    the background (exactly planar, so unchanged by averaging) or nothing remains.

    Args:
        foreground_mm: (N, 1, S, S) hand and forearm depth, inf where empty.
        background_mm: (N, 1, S, S) background depth, inf where empty.
        px_per_native: (N,) crop pixels per camera pixel.
        generator: random generator on the tensors' device.
        sigma_native: range of the window's Gaussian sigma in camera pixels.
        foreground_share: window share above which the foreground wins, a float or (N, 1, 1, 1).
            One half (the Kinect) keeps silhouettes in place on average; a smaller share lets
            the foreground grow into the background ("foreground fattening" of stereo matchers).
    """
    n, dev = foreground_mm.shape[0], foreground_mm.device
    sigma = _uniform((n,), *sigma_native, generator, dev) * px_per_native
    occ = (_finite(foreground_mm) & (foreground_mm < background_mm)).float()
    radius = max(1, math.ceil(3.0 * float(sigma.max())))
    ksize = (2 * radius + 1, 2 * radius + 1)
    sig = sigma.clamp_min(0.05).view(n, 1).expand(n, 2).contiguous()
    fg_depth = torch.where(occ > 0, foreground_mm, torch.zeros_like(foreground_mm))
    stacked = torch.cat([occ, fg_depth], dim=1)
    blurred = kornia.filters.gaussian_blur2d(stacked, ksize, sig, border_type="replicate")
    share, weighted = blurred[:, :1], blurred[:, 1:]
    fg = share > foreground_share
    smoothed = weighted / share.clamp_min(1e-6)
    return torch.where(fg, smoothed, background_mm)


def depth_discontinuities(
    depth_mm: Tensor, jump_mm: float = EDGE_JUMP_MM
) -> tuple[Tensor, Tensor, Tensor]:
    """Occluding-edge pixels and the near/far depths around them.

    Returns:
        ``(edge, near, far)``, each (N, 1, S, S): ``edge`` marks valid pixels whose 3x3
        neighbourhood spans more than ``jump_mm`` or contains no reading; ``near``/``far`` are
        the smallest/largest valid depths in that neighbourhood (inf/-inf if none).
    """
    finite = _finite(depth_mm)
    as_inf = depth_mm.masked_fill(~finite, math.inf)
    near = _extreme3x3(as_inf, torch.minimum)
    # With "no reading" as +inf, a missing neighbour shows up as an infinite maximum.
    far_or_missing = _extreme3x3(as_inf, torch.maximum)
    far = _extreme3x3(depth_mm.masked_fill(~finite, -math.inf), torch.maximum)
    edge = finite & (((far - near) > jump_mm) | (far_or_missing == math.inf))
    return edge, near, far


def _extreme3x3(x: Tensor, op) -> Tensor:
    """3x3 moving min or max (``op`` = torch.minimum / torch.maximum) of (N, C, H, W); the crop
    border repeats the edge pixels. Separable shifts: faster than pooling on CPU."""
    y = x.clone()
    y[..., 1:] = op(y[..., 1:], x[..., :-1])
    y[..., :-1] = op(y[..., :-1], x[..., 1:])
    z = y.clone()
    z[..., 1:, :] = op(z[..., 1:, :], y[..., :-1, :])
    z[..., :-1, :] = op(z[..., :-1, :], y[..., 1:, :])
    return z


def _band_probability(probability: Tensor, px_per_native: Tensor) -> Tensor:
    """Per-pixel chance that a point sample of an edge pixel lands in the camera-pixel band."""
    return probability * (EDGE_BAND_NATIVE_PX * px_per_native).clamp(max=1.0).view_as(probability)


def flying_pixels(
    depth_mm: Tensor,
    px_per_native: Tensor,
    generator: torch.Generator,
    probability: tuple[float, float] = (0.1, 0.35),
    discontinuities: tuple[Tensor, Tensor, Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """Give some pixels at depth discontinuities a depth between the two surfaces.

    Physical reason: a matching window that straddles a foreground and a background surface
    sees a mixture of two pattern shifts; the correlation peak can fall in between and report
    a depth that belongs to neither surface ("flying pixels" hanging in the air along object
    boundaries). Only edges between two valid surfaces produce them.

    Returns:
        ``(depth, flying)``: the depth (N, 1, S, S) mm with flying pixels set to
        ``near + w (far - near)``, ``w ~ U(0.15, 0.85)``, and their mask. ``discontinuities``
        may pass :func:`depth_discontinuities` of ``depth_mm`` if already computed.
    """
    n, dev = depth_mm.shape[0], depth_mm.device
    g = generator
    if discontinuities is None:
        discontinuities = depth_discontinuities(depth_mm)
    edge, near, far = discontinuities
    mixed = edge & torch.isfinite(far) & ((far - near) > EDGE_JUMP_MM)
    p = _band_probability(_uniform((n, 1, 1, 1), *probability, g, dev), px_per_native)
    draw = torch.rand(depth_mm.shape, generator=g, device=dev)
    flying = mixed & (draw < p)
    # Given draw < p, draw / p is uniform on [0, 1): reuse it for the mixing weight.
    w = 0.15 + 0.7 * (draw / p.clamp_min(1e-12)).clamp(max=1.0)
    return torch.where(flying, near + w * (far - near), depth_mm), flying


def occluding_edge_dropout(
    depth_mm: Tensor,
    px_per_native: Tensor,
    generator: torch.Generator,
    probability: tuple[float, float] = (0.15, 0.45),
    exclude: Tensor | None = None,
    edges: Tensor | None = None,
) -> Tensor:
    """Pixels (N, 1, S, S) bool along occluding edges that lose their reading.

    Physical reason: besides mixing (:func:`flying_pixels`), a window straddling an occluding
    edge often matches nothing well enough and the Kinect reports no depth, which eats a
    ragged band of pixels along silhouettes. ``exclude`` (e.g. the flying pixels) is left
    alone; ``edges`` may pass the edge mask of :func:`depth_discontinuities` if already known.
    """
    n, dev = depth_mm.shape[0], depth_mm.device
    edge = edges if edges is not None else depth_discontinuities(depth_mm)[0]
    p = _band_probability(_uniform((n, 1, 1, 1), *probability, generator, dev), px_per_native)
    drop = edge & (torch.rand(depth_mm.shape, generator=generator, device=dev) < p)
    return drop if exclude is None else drop & ~exclude


def add_depth_noise(
    depth_mm: Tensor,
    generator: torch.Generator,
    sigma_disparity_px: tuple[float, float] = (0.04, 0.10),
    focal_px: float = NYU_INTRINSICS.fx,
    baseline_mm: float = KINECT_BASELINE_MM,
) -> Tensor:
    """Add random disparity error; depth noise grows with the square of the depth.

    Physical reason: triangulation measures disparity ``d = f b / z`` with a roughly constant
    sub-pixel error ``sigma_d`` (speckle and IR noise in the correlation), so the depth error
    is ``sigma_z ~ z^2 sigma_d / (f b)``: about 0.4-1 mm at 0.5 m and 1.3-3 mm at 0.9 m for
    ``sigma_d`` in 0.04-0.10 px, in line with Kinect v1 measurements. ``sigma_d`` is drawn per
    image; invalid pixels are left unchanged.
    """
    n, dev = depth_mm.shape[0], depth_mm.device
    finite = _finite(depth_mm)
    fb = focal_px * baseline_mm
    sigma = _uniform((n, 1, 1, 1), *sigma_disparity_px, generator, dev)
    disparity = fb / torch.where(finite, depth_mm, torch.ones_like(depth_mm))
    disparity = disparity + sigma * torch.randn(depth_mm.shape, generator=generator, device=dev)
    return torch.where(finite, fb / disparity.clamp_min(1e-3), depth_mm)


def quantise_disparity(
    depth_mm: Tensor,
    focal_px: float = NYU_INTRINSICS.fx,
    baseline_mm: float = KINECT_BASELINE_MM,
    step_px: float = DISPARITY_STEP_PX,
) -> Tensor:
    """Round depth to the Kinect's disparity levels; same shape, invalid pixels unchanged.

    Physical reason: the Kinect v1 reports disparity in 1/8-pixel steps and converts it to
    depth, so depth takes discrete values whose spacing ``z^2 step / (f b)`` grows with the
    square of the depth (about 0.7 mm at 0.5 m, 2.3 mm at 0.9 m): flat ramps become terraces.
    """
    finite = _finite(depth_mm)
    fb = focal_px * baseline_mm
    disparity = fb / torch.where(finite, depth_mm, torch.ones_like(depth_mm))
    levels = torch.round(disparity / step_px).clamp_min(1.0) * step_px
    return torch.where(finite, fb / levels, depth_mm)


def random_holes(
    shape: tuple[int, int, int, int],
    px_per_native: Tensor,
    generator: torch.Generator,
    count: tuple[int, int] = (1, 10),
    radius_native: tuple[float, float] = (1.0, 4.0),
) -> Tensor:
    """Small round blobs (N, 1, S, S) bool of missing depth anywhere in the crop.

    Physical reason: the speckle pattern cannot be decoded on small patches that are too dark
    in the IR (absorbing or specular spots, hair, sensor saturation) or where the speckle is
    locally ambiguous; the Kinect leaves small holes there. Each image gets ``count`` blobs of
    1-4 camera pixels radius at random places.
    """
    n, _, h, w = shape
    dev, g = px_per_native.device, generator
    k = count[1]
    if k <= 0:
        return torch.zeros(shape, dtype=torch.bool, device=dev)
    number = torch.randint(count[0], count[1] + 1, (n, 1), generator=g, device=dev)
    active = torch.arange(k, device=dev).view(1, k) < number
    cx = _uniform((n, k), 0.0, w - 1.0, g, dev)
    cy = _uniform((n, k), 0.0, h - 1.0, g, dev)
    radius = _uniform((n, k), *radius_native, g, dev) * px_per_native.view(n, 1)
    radius = radius * active
    # Each blob only touches a small window: evaluate it there and scatter into a padded mask.
    half = max(1, math.ceil(float(radius.max())))
    side = 2 * half + 1
    offs = torch.arange(-half, half + 1, device=dev, dtype=cx.dtype)
    x0, y0 = torch.round(cx), torch.round(cy)
    xs = (x0.unsqueeze(-1) + offs).unsqueeze(-2)  # (N, K, 1, side)
    ys = (y0.unsqueeze(-1) + offs).unsqueeze(-1)  # (N, K, side, 1)
    dist2 = (xs - cx[..., None, None]) ** 2 + (ys - cy[..., None, None]) ** 2
    inside = dist2 < (radius**2)[..., None, None]
    pw = w + 2 * half
    index = ((ys + half).long() * pw + (xs + half).long()).expand(n, k, side, side)
    canvas = torch.zeros(n, (h + 2 * half) * pw, device=dev)
    canvas.scatter_reduce_(1, index.reshape(n, -1), inside.float().reshape(n, -1), reduce="amax")
    canvas = canvas.view(n, h + 2 * half, pw)[:, half : half + h, half : half + w]
    return (canvas > 0).unsqueeze(1)


# --------------------------------------------------------------------------------------------
# Pipeline
# --------------------------------------------------------------------------------------------


def sensor_depth_mm(scene: TargetScene, crop: CropParams, generator: torch.Generator) -> Tensor:
    """What the Kinect reports for a clean scene: depth (N, 1, S, S) in mm, 0 = no reading.

    Order of the effects: the geometric losses (projector shadow, grazing incidence) are
    properties of the clean scene; block matching then rounds and averages the depth, mixes or
    loses it at the edges of what it reports, adds disparity noise and quantises; holes are
    independent decoding failures.
    """
    g = generator
    fx = crop.intrinsics.fx
    s = crop.px_per_native
    clean = scene.depth_mm
    missing = projector_shadow(clean, crop)
    missing |= grazing_dropout(clean, crop, g)
    depth = correlation_window_smoothing(scene.foreground_mm, scene.background_mm, s, g)
    discontinuities = depth_discontinuities(depth)
    depth, flying = flying_pixels(depth, s, g, discontinuities=discontinuities)
    missing |= occluding_edge_dropout(depth, s, g, exclude=flying, edges=discontinuities[0])
    depth = add_depth_noise(depth, g, focal_px=fx)
    depth = quantise_disparity(depth, focal_px=fx)
    missing |= random_holes(tuple(depth.shape), s, g)
    missing |= ~_finite(depth)
    return depth.masked_fill(missing, 0.0)


def kinect_depth_mm(
    pose: HandPose, crop: CropParams, generator: torch.Generator, joints: Tensor | None = None
) -> Tensor:
    """Kinect-like depth (N, 1, S, S) in mm of the given hands; 0 = no reading."""
    return target_depth_mm(pose, crop, generator, sensor_depth_mm, joints)


def render_kinect(
    pose: HandPose, crop: CropParams, generator: torch.Generator, joints: Tensor | None = None
) -> Tensor:
    """Kinect-like normalised crops (N, 1, S, S) in [-1, 1] (+1 = far, background, no reading)."""
    return render_target_crops(pose, crop, generator, sensor_depth_mm, joints)


def simulate_kinect_hands(
    n: int,
    generator: torch.Generator,
    *,
    device: torch.device | str = "cpu",
    size: int = DEFAULT_SIZE,
    cube_mm: float = DEFAULT_CUBE_MM,
    intrinsics: CameraIntrinsics = NYU_INTRINSICS,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Sample N hands from the simulator's distribution and render them as Kinect-like crops.

    See :func:`simgan_hand.target_scene.simulate_target_hands` for the outputs.
    """
    return simulate_target_hands(
        n, generator, sensor_depth_mm, device=device, size=size, cube_mm=cube_mm, intrinsics=intrinsics
    )
