"""Target-domain eye generator: plays the part of "real" eye images.

It renders exactly the simulator's geometry (:func:`simgan_gaze.simulator.eye_layers`), so the
labels mean the same thing, and then adds the physical effects a flat-shaded renderer lacks,
in the order light meets them on the way to a stored webcam image:

scene
    :func:`skin_albedo_map` (pores, wrinkles, blotches), :func:`eyelid_shading` (occlusion of
    the eyeball by the lid, lid crease), :func:`add_eyelashes`, :func:`add_specular_glints`
    (corneal reflections)
illumination
    :func:`apply_uneven_lighting` (gradient, vignette, low-frequency falloff)
optics
    :func:`defocus_blur`
sensor
    :func:`add_sensor_noise` (shot + read noise), :func:`camera_response` (white balance, flare,
    a gamma curve that differs from the simulator's)
storage
    :func:`jpeg_compress` (8x8 block-DCT quantisation, 4:2:0 chroma), :func:`quantise_8bit`

Greyscale output models a monochrome camera: the scene is converted to luminance in linear
light before the optics and sensor stages, which then act on one channel.

Each effect is moderate and drawn per image from a range; the ranges aim at a realistic
domain gap, not at any particular method.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import kornia
import torch
import torch.nn.functional as F
from torch import Tensor

from simgan_gaze.eye_model import (
    REFERENCE_HEIGHT,
    REFERENCE_WIDTH,
    EyeParams,
    check_count,
    check_generator,
    lid_curves,
    opening_frame_to_image,
    sample_eye_params,
)
from simgan_gaze.simulator import EyeLayers, composite, eye_labels, eye_layers

#: Images per chunk: ~1000 keeps the working set small enough to stay fast on CPU.
CHUNK_SIZE = 1024
#: Display gamma the simulator's colours are taken to be encoded with.
SIMULATOR_GAMMA = 2.2
#: JPEG quality range of the stored images (webcam streams and photo archives).
JPEG_QUALITY_RANGE = (60.0, 95.0)
#: Standard JPEG (ITU-T T.81 Annex K) quantisation tables at quality 50.
_JPEG_LUMA = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)
_JPEG_CHROMA = (
    (17, 18, 24, 47, 99, 99, 99, 99),
    (18, 21, 26, 66, 99, 99, 99, 99),
    (24, 26, 56, 99, 99, 99, 99, 99),
    (47, 66, 99, 99, 99, 99, 99, 99),
    (99, 99, 99, 99, 99, 99, 99, 99),
    (99, 99, 99, 99, 99, 99, 99, 99),
    (99, 99, 99, 99, 99, 99, 99, 99),
    (99, 99, 99, 99, 99, 99, 99, 99),
)


def _uniform(
    shape: tuple[int, ...], low: float, high: float, g: torch.Generator, dev: torch.device
) -> Tensor:
    """Samples from U(low, high) with the given shape."""
    return low + (high - low) * torch.rand(shape, generator=g, device=dev)


def resize_matrix(src: int, dst: int, device: torch.device, mode: str = "bicubic") -> Tensor:
    """(dst, src) matrix that resizes a 1-D signal exactly as ``F.interpolate(mode=mode)``.

    Resizing is separable, so a (h, w) plane resizes to (H, W) as ``Uy @ X @ Ux.T``: two small
    matrix products, much faster on CPU than the per-pixel interpolation kernels.
    """
    eye = torch.eye(src, device=device).view(src, 1, src, 1)
    kwargs = {} if mode == "area" else {"align_corners": False}
    cols = F.interpolate(eye, size=(dst, 1), mode=mode, **kwargs)
    return cols.view(src, dst).T.contiguous()


def smooth_noise(
    n: int,
    grid: tuple[int, int],
    size: tuple[int, int],
    g: torch.Generator,
    dev: torch.device,
    channels: int = 1,
) -> Tensor:
    """Band-limited noise (n, channels, H, W): white noise on a ``grid`` upsampled bicubically.

    The grid resolution sets the feature size (about ``size / grid`` pixels); the result has
    roughly unit variance.
    """
    coarse = torch.randn((n, channels, *grid), generator=g, device=dev)
    uy = resize_matrix(grid[0], size[0], dev)
    ux = resize_matrix(grid[1], size[1], dev)
    return uy @ coarse @ ux.T


def _pow(x: Tensor, exponent: float | Tensor) -> Tensor:
    """``x ** exponent`` for x >= 0 via exp/log, about 3x faster than ``pow`` on CPU."""
    return torch.log(x.clamp_min(1e-12)).mul_(exponent).exp_()


# --------------------------------------------------------------------------------------------
# Scene
# --------------------------------------------------------------------------------------------


def skin_albedo_map(
    skin_colour: Tensor, size: tuple[int, int], generator: torch.Generator
) -> Tensor:
    """Textured skin albedo (N, 3, H, W): pores, fine wrinkles and blotches on a base colour.

    Physical effect: skin reflectance varies at several scales (pigment blotches and redness at
    a few px, horizontal fold lines of the lids and under-eye skin, pores at ~1 px). A simple
    renderer paints skin one flat colour. The map is only seen outside the eye opening because
    :func:`composite` covers the opening with the eye.

    Args:
        skin_colour: (N, 3) base sRGB albedo.
        size: ``(H, W)``.
        generator: random generator on the tensors' device.
    """
    n, dev = skin_colour.shape[0], skin_colour.device
    h, w = size
    g = generator
    blotches = 0.6 * smooth_noise(n, (max(h // 9, 2), max(w // 9, 2)), size, g, dev)
    blotches += 0.4 * smooth_noise(n, (max(h // 4, 2), max(w // 4, 2)), size, g, dev)
    redness_field = smooth_noise(n, (3, 4), size, g, dev)
    # Folds run along the lids: smooth along x, fine across y.
    wrinkles = smooth_noise(n, (max(h // 2, 1), max(w // 6, 2)), size, g, dev)
    pores = torch.randn((n, 1, h, w), generator=g, device=dev)
    amp = _uniform((n, 3, 1, 1), 0.0, 1.0, g, dev)
    modulation = (
        1.0
        + (0.03 + 0.05 * amp[:, 0:1]) * blotches
        + (0.01 + 0.04 * amp[:, 1:2]) * wrinkles
        + (0.01 + 0.03 * amp[:, 2:3]) * pores
    )
    # Blood under the skin shows as low-frequency redness, mostly in the red channel.
    redness = 0.03 * redness_field * torch.tensor([1.0, -0.3, -0.3], device=dev).view(1, 3, 1, 1)
    return (skin_colour.view(n, 3, 1, 1) * modulation + redness).clamp(0.0, 1.0)


def eyelid_shading(image: Tensor, layers: EyeLayers, generator: torch.Generator) -> Tensor:
    """Shade the eyeball below the upper lid and the lid fold above it; (N, 3, H, W) in, same out.

    Physical effect: the upper lid and its lashes stand in front of the eyeball and block part
    of the ambient light reaching the sclera and iris near the lid margin (ambient occlusion
    and a soft cast shadow); above the lid, the skin folds into the orbit and the crease
    receives less light. A flat renderer lights every point the same.
    """
    n, dev = image.shape[0], image.device
    strength = _uniform((n, 1, 1, 1), 0.15, 0.4, generator, dev)
    width = _uniform((n, 1, 1, 1), 1.5, 3.0, generator, dev)
    # upper_lid_sd is negative below the lid; the shadow decays with depth under it.
    depth = (-layers.upper_lid_sd).clamp_min(0.0)
    shadow = 1.0 - strength * torch.exp(-depth / width) * layers.opening
    crease_at = _uniform((n, 1, 1, 1), 3.0, 6.0, generator, dev)
    crease_strength = _uniform((n, 1, 1, 1), 0.05, 0.25, generator, dev)
    crease = torch.exp(-0.5 * ((layers.upper_lid_sd - crease_at) / 1.3) ** 2)
    # The fold fades out towards the eye corners.
    crease = crease * torch.exp(-(((layers.lid_t.abs() - 0.75).clamp_min(0.0) / 0.2) ** 2))
    return image * shadow * (1.0 - crease_strength * crease * (1.0 - layers.opening))


def eyelash_density(
    params: EyeParams,
    size: tuple[int, int],
    generator: torch.Generator,
    max_lashes: int = 48,
    samples: int = 5,
) -> Tensor:
    """Ink density (N, 1, H, W) of eyelashes growing from the upper-lid margin.

    Each lash is a tapered quadratic curve rooted on the upper-lid curve, pointing away from
    the eye, fanning out towards the corners and curling outwards; count, length, angle and
    thickness are random. The curve is sampled at ``samples`` points that are splatted with
    a bilinear (tent) kernel by :func:`splat_bilinear`.
    """
    n, dev = len(params), params.device
    h, w = size
    g = generator
    k = max_lashes
    count = torch.randint(k // 2, k + 1, (n, 1), generator=g, device=dev)
    active = (torch.arange(k, device=dev).view(1, k) < count).float()
    t = _uniform((n, k), -0.92, 0.92, g, dev)
    length = _uniform((n, k), 1.5, 4.5, g, dev) * (1.0 - 0.4 * t.abs())
    thickness = _uniform((n, k), 0.2, 0.5, g, dev)
    tilt = 0.6 * t + _uniform((n, k), -0.3, 0.3, g, dev)
    curl = _uniform((n, k), 0.1, 0.6, g, dev) * torch.sign(t)

    v_up, dv_up, _, _ = lid_curves(params, t)
    u_root = t * params.opening_half_width.view(n, 1)
    # Outward (upward) normal of the lid curve in the opening frame.
    nrm = torch.rsqrt(1.0 + dv_up * dv_up)
    nx, ny = dv_up * nrm, -nrm
    c, s = torch.cos(tilt), torch.sin(tilt)
    dx, dy = c * nx - s * ny, s * nx + c * ny
    px, py = -dy, dx  # perpendicular, rotated towards +u for positive curl
    sp = torch.linspace(0.0, 1.0, samples, device=dev).view(1, 1, samples)
    along = length.unsqueeze(-1) * sp
    bend = 0.5 * curl.unsqueeze(-1) * length.unsqueeze(-1) * sp * sp
    u = u_root.unsqueeze(-1) + dx.unsqueeze(-1) * along + px.unsqueeze(-1) * bend
    v = v_up.unsqueeze(-1) + dy.unsqueeze(-1) * along + py.unsqueeze(-1) * bend
    x, y = opening_frame_to_image(params, u.reshape(n, -1), v.reshape(n, -1))
    # Ink per sample: thickness times arc length per sample, tapering to the tip.
    ink = (thickness * active * length / samples).unsqueeze(-1) * (1.0 - 0.7 * sp)
    return splat_bilinear(x, y, ink.reshape(n, -1), (h, w)).unsqueeze(1)


def _tent_weights(coord: Tensor, length: int, weight: Tensor) -> Tensor:
    """Bilinear weights of points along one axis: (N, P) coords -> (N, P, length + 2).

    Index ``i + 1`` of the last axis is pixel ``i``; the two extra slots catch the neighbours of
    points just outside the image, so every point writes two distinct slots and the scatter
    never has colliding writes (which would make it nondeterministic).
    """
    inside = (coord >= -1.0) & (coord < length)
    c = coord.clamp(-1.0, length - 1e-3)
    c0 = torch.floor(c)
    frac = c - c0
    idx = (c0 + 1.0).long().unsqueeze(-1)
    weight = weight * inside
    out = torch.zeros((*coord.shape, length + 2), device=coord.device, dtype=coord.dtype)
    out.scatter_(-1, idx, (weight * (1.0 - frac)).unsqueeze(-1))
    out.scatter_(-1, idx + 1, (weight * frac).unsqueeze(-1))
    return out


def splat_bilinear(x: Tensor, y: Tensor, weight: Tensor, size: tuple[int, int]) -> Tensor:
    """Accumulate weighted points into images with bilinear (tent) splatting.

    Args:
        x: (N, P) point columns.
        y: (N, P) point rows.
        weight: (N, P) amount deposited by each point.
        size: ``(H, W)``.

    Returns:
        (N, H, W) accumulated density. Written as a batched product of separable row and
        column weights, which is deterministic on every device (unlike scatter-add).
    """
    h, w = size
    wy = _tent_weights(y, h, weight).transpose(1, 2)  # (N, H + 2, P)
    wx = _tent_weights(x, w, torch.ones_like(weight))  # (N, P, W + 2)
    return torch.bmm(wy, wx)[:, 1 : h + 1, 1 : w + 1]


def add_eyelashes(image: Tensor, params: EyeParams, generator: torch.Generator) -> Tensor:
    """Composite dark eyelashes over the image; (N, 3, H, W) sRGB in, same out (only darker).

    Physical effect: upper lashes are dark hairs that overlap the lid margin and the top of the
    eye opening; they are the strongest high-frequency cue around real eyes and a simple
    renderer has none.
    """
    n, dev = image.shape[0], image.device
    density = eyelash_density(params, (image.shape[2], image.shape[3]), generator)
    alpha = 1.0 - torch.exp(-2.5 * density)
    colour = _uniform((n, 1, 1, 1), 0.03, 0.10, generator, dev)
    # Never brighten: a lash over the pupil stays as dark as the darker of the two.
    return torch.minimum(image, torch.lerp(image, colour.expand_as(image), alpha))


def glint_positions(
    params: EyeParams, generator: torch.Generator, lights: int = 2
) -> tuple[Tensor, Tensor]:
    """Image positions (N, L, 2) of corneal reflections of L lights and their visibility (N, L).

    The cornea is a sphere of radius ~0.6 x eyeball radius whose centre sits on the gaze ray
    ``(R - r_c)`` from the eyeball centre. A light in direction ``l`` seen from the camera
    (direction ``(0, 0, -1)``) reflects where the surface normal is the half vector
    ``normalize(l + v)``, so the glint projects to ``cornea_centre + r_c * h_xy``. A glint
    only exists while that point is on the cornea, i.e. within the iris disc.
    """
    n, dev = len(params), params.device
    g = generator
    light = torch.stack(
        [
            _uniform((n, lights), -0.6, 0.6, g, dev),
            _uniform((n, lights), -0.7, 0.15, g, dev),  # lights mostly above the face
            -torch.ones(n, lights, device=dev),
        ],
        dim=-1,
    )
    pos, on_cornea = corneal_reflection(params, light)
    # The first light is always there; each further one with probability 1/2.
    chance = torch.tensor([1.0] + [0.5] * (lights - 1), device=dev)
    present = torch.rand((n, lights), generator=g, device=dev) < chance
    return pos, (on_cornea & present).float()


def corneal_reflection(params: EyeParams, light: Tensor) -> tuple[Tensor, Tensor]:
    """Image positions (N, L, 2) of the corneal reflections of lights in directions ``light``
    (N, L, 3) (camera space, towards the light, any length) and whether each lies on the
    cornea (N, L) bool. The geometry is described in :func:`glint_positions`."""
    n, dev = len(params), params.device
    gaze = params.gaze_vector()
    r = params.eyeball_radius.view(n, 1)
    r_c = 0.6 * r
    cornea = params.centre + (r - r_c) * gaze[:, :2]
    view = torch.tensor([0.0, 0.0, -1.0], device=dev)
    half = F.normalize(F.normalize(light, dim=-1) + view, dim=-1)
    pos = cornea.unsqueeze(1) + r_c.unsqueeze(-1) * half[..., :2]
    iris_centre = params.centre + r * gaze[:, :2]
    on_cornea = (pos - iris_centre.unsqueeze(1)).norm(dim=-1) < 1.1 * params.iris_radius.view(n, 1)
    return pos, on_cornea


def gaussian_spots(pos: Tensor, sigma: Tensor, peak: Tensor, size: tuple[int, int]) -> Tensor:
    """Sum (N, 1, H, W) of Gaussian spots at ``pos`` (N, L, 2) with ``sigma`` and ``peak``
    (N, L, 1, 1) each."""
    h, w = size
    dev = pos.device
    ys = torch.arange(h, device=dev, dtype=torch.float32).view(1, 1, h, 1)
    xs = torch.arange(w, device=dev, dtype=torch.float32).view(1, 1, 1, w)
    inv = -0.5 / (sigma * sigma)
    # A Gaussian spot is separable: outer product of a row and a column profile.
    col = peak * torch.exp((xs - pos[..., 0, None, None]) ** 2 * inv)  # (N, L, 1, W)
    row = torch.exp((ys - pos[..., 1, None, None]) ** 2 * inv)  # (N, L, H, 1)
    return (row * col).sum(dim=1, keepdim=True)


def add_specular_glints(
    linear: Tensor, params: EyeParams, layers: EyeLayers, generator: torch.Generator
) -> Tensor:
    """Add 1-2 small bright corneal reflections; (N, C, H, W) linear radiance in, same out.

    Physical effect: the tear film on the cornea is a near-perfect mirror, so each light
    source appears as a tiny, very bright spot near the iris that moves with gaze. A diffuse
    renderer without specular terms has none. Glints are hidden where the lids cover the eye.
    """
    n, dev = linear.shape[0], linear.device
    h, w = linear.shape[2], linear.shape[3]
    pos, visible = glint_positions(params, generator)
    sigma = _uniform((n, pos.shape[1], 1, 1), 0.35, 0.6, generator, dev)
    peak = _uniform((n, pos.shape[1], 1, 1), 0.3, 0.9, generator, dev) * visible.view(n, -1, 1, 1)
    return linear + gaussian_spots(pos, sigma, peak, (h, w)) * layers.opening


# --------------------------------------------------------------------------------------------
# Illumination, optics, sensor
# --------------------------------------------------------------------------------------------


def illumination_field(
    n: int, size: tuple[int, int], generator: torch.Generator, device: torch.device
) -> Tensor:
    """Smooth positive illumination (N, 1, H, W): exposure x gradient x vignette x falloff."""
    h, w = size
    g = generator
    ys = torch.linspace(-1.0, 1.0, h, device=device).view(1, 1, h, 1)
    xs = torch.linspace(-1.0, 1.0, w, device=device).view(1, 1, 1, w)
    exposure = _uniform((n, 1, 1, 1), 0.75, 1.15, g, device)
    gx = _uniform((n, 1, 1, 1), -0.3, 0.3, g, device)
    gy = _uniform((n, 1, 1, 1), -0.25, 0.25, g, device)
    vignette = _uniform((n, 1, 1, 1), 0.0, 0.25, g, device)
    falloff = torch.exp(0.12 * smooth_noise(n, (2, 3), size, g, device))
    gradient = 1.0 + gx * xs + gy * ys
    field = exposure * gradient * (1.0 - vignette * 0.5 * (xs * xs + ys * ys)) * falloff
    return field.clamp_min(0.1)


def apply_uneven_lighting(linear: Tensor, generator: torch.Generator) -> Tensor:
    """Multiply linear radiance (N, C, H, W) by a smooth per-image illumination field.

    Physical effect: a face lit by a screen, a window or a ceiling lamp is not uniformly
    lit; the eye region gets a low-frequency gradient (light from one side, the nose and brow
    shading) and the lens adds vignetting. A simple simulator uses one constant light.
    """
    n, _, h, w = linear.shape
    field = illumination_field(n, (h, w), generator, linear.device)
    return linear * field


def defocus_blur(
    image: Tensor, generator: torch.Generator, sigma_range: tuple[float, float] = (0.4, 1.1)
) -> Tensor:
    """Gaussian blur with a random sigma per image (px); (N, C, H, W) in, same out.

    Physical effect: a webcam's fixed-focus lens, small motion and the upsampling of a small
    eye region all spread each point over a few pixels. A renderer samples a perfectly sharp
    image.
    """
    n, dev = image.shape[0], image.device
    sigma = _uniform((n, 1), *sigma_range, generator, dev).expand(n, 2).contiguous()
    size = 2 * math.ceil(3.0 * sigma_range[1]) + 1
    return kornia.filters.gaussian_blur2d(image, (size, size), sigma, border_type="replicate")


def add_sensor_noise(linear: Tensor, generator: torch.Generator) -> Tensor:
    """Add signal-dependent sensor noise to linear radiance (N, C, H, W) in ~[0, 1].

    Physical effect: photon arrival is Poisson (shot noise, variance proportional to the
    signal; full-well scale of a few hundred to a few thousand electrons for small webcam
    pixels), plus signal-independent read/thermal noise from the readout electronics. A
    renderer is noise-free. The Gaussian approximation of Poisson is accurate at these counts.
    """
    n, dev = linear.shape[0], linear.device
    g = generator
    electrons = _uniform((n, 1, 1, 1), 300.0, 2000.0, g, dev)
    read = _uniform((n, 1, 1, 1), 0.002, 0.006, g, dev)
    # Independent Gaussian terms: draw once with the summed variance.
    std = torch.sqrt(linear.clamp_min(0.0) / electrons + read * read)
    return linear + std * torch.randn(linear.shape, generator=g, device=dev)


def camera_response(linear: Tensor, generator: torch.Generator) -> Tensor:
    """Encode linear radiance (N, C, H, W) to display values in [0, 1] like a camera ISP.

    Physical effect: a camera applies its own white balance (never exactly neutral), lens
    flare lifts the blacks a little, and the tone curve is a gamma between ~2.0 and ~2.6 rather
    than the simulator's 2.2; together they shift colour, brightness and contrast.
    """
    n, c, dev = linear.shape[0], linear.shape[1], linear.device
    g = generator
    if c == 3:
        gains = _uniform((n, 3, 1, 1), 0.92, 1.08, g, dev)
        linear = linear * gains / gains.mean(dim=1, keepdim=True)
    flare = _uniform((n, 1, 1, 1), 0.0, 0.01, g, dev)
    gamma = _uniform((n, 1, 1, 1), 2.0, 2.6, g, dev)
    return _pow((linear + flare).clamp_(0.0, 1.0), 1.0 / gamma)


# --------------------------------------------------------------------------------------------
# Storage
# --------------------------------------------------------------------------------------------


def dct_matrix(size: int = 8, device: torch.device | str = "cpu") -> Tensor:
    """Orthonormal DCT-II matrix (size, size): ``coeffs = D @ block @ D.T``."""
    k = torch.arange(size, device=device, dtype=torch.float32).view(-1, 1)
    i = torch.arange(size, device=device, dtype=torch.float32).view(1, -1)
    d = torch.cos(math.pi * (2.0 * i + 1.0) * k / (2.0 * size)) * math.sqrt(2.0 / size)
    d[0] /= math.sqrt(2.0)
    return d


def jpeg_quant_tables(quality: Tensor) -> tuple[Tensor, Tensor]:
    """IJG-scaled luma and chroma quantisation tables, each (N, 8, 8), for quality (N,) 1..100."""
    q = quality.round().clamp(1.0, 100.0).view(-1, 1, 1)
    scale = torch.where(q < 50, 5000.0 / q, 200.0 - 2.0 * q)
    tables = []
    for base in (_JPEG_LUMA, _JPEG_CHROMA):
        t = torch.tensor(base, device=quality.device, dtype=torch.float32).unsqueeze(0)
        tables.append(torch.floor((t * scale + 50.0) / 100.0).clamp(1.0, 255.0))
    return tables[0], tables[1]


def block_dct_quantise(plane: Tensor, table: Tensor) -> Tensor:
    """Quantise the 8x8 block-DCT coefficients of level-shifted planes and reconstruct them.

    Args:
        plane: (N, C, H, W) samples centred on 0 (8-bit value minus 128), H and W multiples of 8.
        table: (N, 8, 8) quantisation step per coefficient.

    Returns:
        (N, C, H, W) decoded planes, still centred and not clamped.
    """
    n, c, h, w = plane.shape
    d = dct_matrix(8, plane.device)
    # The 2-D DCT of a flattened block is one 64x64 product (kron(D, D)); one large matmul is
    # far faster than many tiny 8x8 ones.
    d2 = torch.kron(d, d)
    blocks = plane.reshape(n, c, h // 8, 8, w // 8, 8).permute(0, 1, 2, 4, 3, 5)
    coeffs = blocks.reshape(n, -1, 64) @ d2.T
    step = table.reshape(n, 1, 64)
    coeffs = torch.round(coeffs / step).mul_(step)
    out = (coeffs @ d2).view(n, c, h // 8, w // 8, 8, 8)
    return out.permute(0, 1, 2, 4, 3, 5).reshape(n, c, h, w)


#: Full-range RGB -> YCbCr of JFIF (ITU-T T.871); chroma rows give Cb - 128 and Cr - 128.
_YCC_FROM_RGB = (
    (0.299, 0.587, 0.114),
    (-0.168736, -0.331264, 0.5),
    (0.5, -0.418688, -0.081312),
)


def _mix_channels(matrix: Tensor, image: Tensor) -> Tensor:
    """Apply a (3, 3) colour matrix to (N, 3, H, W) images as one batched matmul (fastest form)."""
    n, c, h, w = image.shape
    return (matrix @ image.reshape(n, c, h * w)).view(n, -1, h, w)


def jpeg_compress(image: Tensor, quality: Tensor, chroma_subsampling: bool = True) -> Tensor:
    """Encode and decode images as baseline JPEG does; (N, C, H, W) in [0, 1] in, same out.

    Grey images (C = 1) are coded as a luma plane; RGB images go through full-range JFIF
    YCbCr, optionally with 2x2-averaged (4:2:0) chroma and bilinear chroma upsampling on
    decode, as nearly every camera stores it. Quantisation uses hard rounding, unlike
    ``kornia.enhance.jpeg_codec_differentiable`` which softens it for gradients; here we want
    the real artefacts. Entropy coding is lossless and omitted.

    Physical effect: stored webcam frames and photos are JPEG compressed; the coarse
    quantisation of high-frequency DCT coefficients leaves 8x8 block edges, ringing around the
    lids and lashes, and colour bleeding. A renderer writes exact values.

    Args:
        image: (N, C, H, W), C in {1, 3}, values in [0, 1].
        quality: (N,) JPEG quality in [1, 100].
        chroma_subsampling: average chroma over 2x2 pixels before coding (RGB only).
    """
    n, c, h, w = image.shape
    if c not in (1, 3):
        raise ValueError(f"jpeg_compress expects 1 or 3 channels, got {c}")
    dev = image.device
    luma_t, chroma_t = jpeg_quant_tables(quality.to(dev, torch.float32))
    block = 16 if (c == 3 and chroma_subsampling) else 8
    # Encoders pad partial blocks by repeating the edge; so do we.
    x = F.pad(image, (0, -w % block, 0, -h % block), mode="replicate") * 255.0
    if c == 1:
        out = block_dct_quantise(x - 128.0, luma_t) + 128.0
        return (out[:, :, :h, :w] / 255.0).clamp(0.0, 1.0)
    to_ycc = torch.tensor(_YCC_FROM_RGB, device=dev)
    ycc = _mix_channels(to_ycc, x)
    y = block_dct_quantise(ycc[:, :1] - 128.0, luma_t) + 128.0
    chroma = ycc[:, 1:]
    hp, wp = chroma.shape[-2:]
    if chroma_subsampling:
        dy = resize_matrix(hp, hp // 2, dev, "area")
        dx = resize_matrix(wp, wp // 2, dev, "area")
        chroma = dy @ chroma @ dx.T
    chroma = block_dct_quantise(chroma, chroma_t)
    if chroma_subsampling:
        uy = resize_matrix(hp // 2, hp, dev, "bilinear")
        ux = resize_matrix(wp // 2, wp, dev, "bilinear")
        chroma = uy @ (chroma @ ux.T)
    rgb = _mix_channels(torch.linalg.inv(to_ycc), torch.cat([y, chroma], dim=1))
    return (rgb[:, :, :h, :w] / 255.0).clamp(0.0, 1.0)


def quantise_8bit(image: Tensor) -> Tensor:
    """Round [0, 1] values to the 256 levels of an 8-bit image; same shape.

    Physical effect: images are stored as 8-bit integers; the simulator's floats carry
    sub-level detail and perfectly smooth gradients that real data cannot.
    """
    return torch.round(image.clamp(0.0, 1.0) * 255.0) / 255.0


# --------------------------------------------------------------------------------------------
# Pipeline
# --------------------------------------------------------------------------------------------


def render_scene(
    params: EyeParams, layers: EyeLayers, size: tuple[int, int], generator: torch.Generator
) -> Tensor:
    """The visible-light scene before any light transport: the eye composited over textured
    skin, the lid's shading and the lashes; sRGB albedo (N, 3, H, W)."""
    image = composite(params, layers, skin_albedo_map(params.skin_colour, size, generator))
    image = eyelid_shading(image, layers, generator)
    return add_eyelashes(image, params, generator)


def _render_target_chunk(
    params: EyeParams, generator: torch.Generator, height: int, width: int, rgb: bool
) -> Tensor:
    """Full target pipeline for one chunk; (N, C, H, W) in [-1, 1]."""
    g = generator
    n, dev = len(params), params.device
    size = (height, width)
    layers = eye_layers(params, height, width)
    linear = _pow(render_scene(params, layers, size, g).clamp(0.0, 1.0), SIMULATOR_GAMMA)
    linear = add_specular_glints(linear, params, layers, g)
    linear = apply_uneven_lighting(linear, g)
    if not rgb:
        # Grey data is modelled as a monochrome camera: the sensor integrates luminance, so
        # the optics, noise and tone curve below act on one channel.
        linear = kornia.color.rgb_to_grayscale(linear)
    linear = defocus_blur(linear, g)
    linear = add_sensor_noise(linear, g)
    display = camera_response(linear, g)
    quality = _uniform((n,), *JPEG_QUALITY_RANGE, g, dev)
    display = quantise_8bit(jpeg_compress(display, quality))
    return display * 2.0 - 1.0


def render_target(
    params: EyeParams,
    generator: torch.Generator,
    height: int = REFERENCE_HEIGHT,
    width: int = REFERENCE_WIDTH,
    rgb: bool = False,
) -> Tensor:
    """Render N "real-looking" eyes of the given geometry; (N, C, H, W) float32 in [-1, 1].

    Values are 8-bit levels: ``(x + 1) * 127.5`` is an integer up to float rounding.

    Args:
        params: eye parameters (from :func:`sample_eye_params`).
        generator: torch.Generator on ``params.device`` driving every random effect.
        height: image height in pixels.
        width: image width in pixels.
        rgb: three colour channels instead of one luminance channel.
    """
    return render_in_chunks(_render_target_chunk, params, generator, height, width, rgb)


#: A target camera model: renders one chunk of eyes, ``(params, generator, height, width, rgb)``
#: -> (N, C, H, W) in [-1, 1].
ChunkRenderer = Callable[[EyeParams, torch.Generator, int, int, bool], Tensor]


def render_in_chunks(
    render_chunk: ChunkRenderer,
    params: EyeParams,
    generator: torch.Generator,
    height: int,
    width: int,
    rgb: bool,
) -> Tensor:
    """Run a camera model over chunks of :data:`CHUNK_SIZE` eyes; the generator is consumed
    chunk after chunk."""
    if len(params) == 0:
        raise ValueError("params hold no eyes; need at least one to render")
    check_generator(generator, params.device)
    chunks = [
        render_chunk(params[s : s + CHUNK_SIZE], generator, height, width, rgb)
        for s in range(0, len(params), CHUNK_SIZE)
    ]
    return torch.cat(chunks, dim=0)


def simulate_with(
    render_chunk: ChunkRenderer,
    n: int,
    generator: torch.Generator,
    *,
    rgb: bool = False,
    device: torch.device | str = "cpu",
    height: int = REFERENCE_HEIGHT,
    width: int = REFERENCE_WIDTH,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Sample N eyes from the simulator's distribution and render them with a camera model.

    The geometry is drawn first, so labels are identical for every camera model and the
    simulator for the same generator state.
    """
    check_count(n)
    dev = check_generator(generator, device)
    params = sample_eye_params(n, generator, dev, height=height, width=width)
    return render_in_chunks(render_chunk, params, generator, height, width, rgb), eye_labels(params)


def simulate_target_eyes(
    n: int,
    generator: torch.Generator,
    *,
    rgb: bool = False,
    device: torch.device | str = "cpu",
    height: int = REFERENCE_HEIGHT,
    width: int = REFERENCE_WIDTH,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Sample N eyes from the simulator's distribution and render them as target ("real") images.

    Returns:
        ``(images, labels)``: images (N, C, H, W) float32 in [-1, 1] on 8-bit levels; labels
        ``gaze`` (N, 3), ``pitch_yaw`` (N, 2) rad, ``pupil_centre`` (N, 2) px, exactly as
        :func:`simgan_gaze.simulator.simulate_eyes` defines them.
    """
    return simulate_with(
        _render_target_chunk, n, generator, rgb=rgb, device=device, height=height, width=width
    )
