"""Near-infrared remote eye tracker as a gaze target camera (``gaze_nir``).

Same eye geometry as the simulator and :mod:`simgan_gaze.target` (so labels mean the same
thing), seen the way a screen-mounted NIR eye tracker sees it: a monochrome global-shutter
camera behind an 850 nm band-pass filter, the face lit only by the tracker's own pair of IR
LEDs beside the lens. In light order:

scene (NIR reflectances, not visible colours)
    :func:`nir_reflectance` (skin, sclera and iris albedo at 850 nm: iris much brighter and
    nearly independent of eye colour, skin tones alike), :func:`bright_or_dark_pupil`,
    :func:`nir_skin_albedo` (smooth skin), :func:`iris_texture` (crypts and furrows),
    :func:`add_nir_eyelashes` (paler lashes)
illumination
    :func:`led_illumination` (LED beam and lens vignetting), :func:`add_led_glints` (exactly two
    corneal reflections, one per LED)
optics
    :func:`simgan_gaze.target.defocus_blur`, :func:`motion_blur`, :func:`low_resolution`
sensor
    :func:`add_nir_sensor_noise` (shot + read noise and fixed-pattern column offsets),
    :func:`linear_response` (no gamma, saturating glints), 8-bit output, no compression

Grey output is the camera's own; the RGB variant repeats it in three channels, as a
monochrome frame delivered as RGB. Ranges are drawn per image from eye-tracking and imaging
literature (Morimoto & Mimica 2005 and Hansen & Ji 2010 on bright/dark pupil and glints;
iris-recognition imaging, ISO/IEC 29794-6 and Daugman 2004, on NIR iris appearance;
Anderson & Parrish 1981 on skin reflectance; EMVA 1288 on sensor noise), not tuned for any
method.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from simgan_gaze.eye_model import EyeParams, pupil_centre_px
from simgan_gaze.simulator import EyeLayers, composite, eye_layers, pixel_grid
from simgan_gaze.target import (
    _uniform,
    corneal_reflection,
    defocus_blur,
    eyelash_density,
    gaussian_spots,
    quantise_8bit,
    resize_matrix,
    simulate_with,
    smooth_noise,
    splat_bilinear,
)

#: Integer down-sampling factors :func:`low_resolution` chooses from (eye-region pixels
#: per crop pixel below one: the tracker images the eye with fewer pixels than the crop has).
_LOW_RES_FACTORS = (1.25, 1.5, 1.75, 2.0)


# --------------------------------------------------------------------------------------------
# Scene in the near infrared
# --------------------------------------------------------------------------------------------


def nir_reflectance(params: EyeParams, generator: torch.Generator) -> EyeParams:
    """The same eyes with 850 nm reflectances in place of visible colours (grey, 3 equal channels).

    Physical reason: melanin, which makes irises brown and skin dark in visible light, absorbs
    little at 850 nm. In NIR every iris looks medium grey (25-50 %, which is why iris
    recognition uses NIR), so the iris is much brighter and its contrast to the sclera
    (60-85 %) lower than in a colour image, while its contrast to the pupil is higher; skin of
    every tone reflects alike (55-75 %, Anderson & Parrish 1981).
    """
    n, dev, g = len(params), params.device, generator

    def grey(low: float, high: float) -> Tensor:
        return _uniform((n, 1), low, high, g, dev).expand(n, 3)

    return dataclasses.replace(
        params,
        skin_colour=grey(0.55, 0.75),
        iris_colour=grey(0.25, 0.5),
        sclera_brightness=_uniform((n,), 0.6, 0.85, g, dev),
    )


def bright_or_dark_pupil(
    params: EyeParams, generator: torch.Generator, bright_chance: float = 0.3
) -> EyeParams:
    """The pupil's NIR brightness: dark (2-5 %) or, for ``bright_chance`` of images, bright.

    Physical reason: light entering the pupil is reflected by the retina back towards its
    source. An LED within ~2 deg of the camera axis puts that retro-reflection into the camera
    and the pupil glows (the "bright pupil" of on-axis trackers, 40-80 % here, above the
    iris); off-axis LEDs leave it dark. Trackers use either or alternate between them.
    """
    n, dev, g = len(params), params.device, generator
    bright = torch.rand(n, generator=g, device=dev) < bright_chance
    level = torch.where(bright, _uniform((n,), 0.4, 0.8, g, dev), _uniform((n,), 0.02, 0.05, g, dev))
    return dataclasses.replace(params, pupil_brightness=level)


def nir_skin_albedo(params: EyeParams, size: tuple[int, int], generator: torch.Generator) -> Tensor:
    """Smooth skin albedo (N, 3, H, W) around the NIR base reflectance.

    Physical reason: NIR light penetrates millimetres into skin and scatters under the
    surface, which blurs pores and fine wrinkles, and the pigment blotches of visible light
    nearly vanish; NIR skin looks smooth and waxy. Only faint low-frequency variation (1-3 %)
    and a weaker wrinkle texture (0.5-1.5 %) remain.
    """
    n, dev, g = len(params), params.device, generator
    h, w = size
    low = smooth_noise(n, (max(h // 9, 2), max(w // 9, 2)), size, g, dev)
    folds = smooth_noise(n, (max(h // 2, 1), max(w // 6, 2)), size, g, dev)
    amp_low = _uniform((n, 1, 1, 1), 0.01, 0.03, g, dev)
    amp_folds = _uniform((n, 1, 1, 1), 0.005, 0.015, g, dev)
    base = params.skin_colour.view(n, 3, 1, 1)
    return (base * (1.0 + amp_low * low + amp_folds * folds)).clamp(0.0, 1.0)


def iris_texture(
    image: Tensor, params: EyeParams, layers: EyeLayers, generator: torch.Generator
) -> Tensor:
    """Modulate the iris (N, C, H, W) with radial crypts and furrows; outside it, unchanged.

    Physical reason: in NIR the iris stroma's structure (radial furrows, crypts, the collarette)
    is clearly visible even in dark irises (the basis of iris recognition), while the flat
    render has a uniform iris. Modelled as a sum of 6 angular cosines (8-30 cycles around the
    iris, random phases) fading towards the pupil and the limbus, of 10-25 % contrast.
    """
    n, dev, g = image.shape[0], image.device, generator
    h, w = image.shape[2], image.shape[3]
    xs, ys = pixel_grid(h, w, dev)
    centre = pupil_centre_px(params)
    theta = torch.atan2(ys - centre[:, 1].view(n, 1, 1), xs - centre[:, 0].view(n, 1, 1)).unsqueeze(1)
    k = 6
    cycles = torch.randint(8, 31, (n, k, 1, 1), generator=g, device=dev).float()
    phase = _uniform((n, k, 1, 1), 0.0, 2.0 * math.pi, g, dev)
    pattern = torch.cos(cycles * theta + phase).sum(dim=1, keepdim=True) / math.sqrt(k / 2.0)
    contrast = _uniform((n, 1, 1, 1), 0.1, 0.25, g, dev)
    rho = layers.iris_rho
    band = (torch.sin(math.pi * rho.clamp(0.3, 1.0).sub(0.3).div(0.7)) ** 2) * layers.iris * (1.0 - layers.pupil)
    return image * (1.0 + contrast * pattern * band).clamp_min(0.0)


def add_nir_eyelashes(image: Tensor, params: EyeParams, generator: torch.Generator) -> Tensor:
    """Composite eyelashes of NIR reflectance 12-30 % (N, C, H, W); never brightens.

    Physical reason: lashes are still hairs in front of the lid margin, but their melanin
    absorbs much less at 850 nm, so they are grey rather than black in NIR images.
    """
    n, dev = image.shape[0], image.device
    density = eyelash_density(params, (image.shape[2], image.shape[3]), generator)
    alpha = 1.0 - torch.exp(-2.5 * density)
    colour = _uniform((n, 1, 1, 1), 0.12, 0.3, generator, dev)
    return torch.minimum(image, torch.lerp(image, colour.expand_as(image), alpha))


# --------------------------------------------------------------------------------------------
# Illumination
# --------------------------------------------------------------------------------------------


def led_illumination(n: int, size: tuple[int, int], generator: torch.Generator, device: torch.device) -> Tensor:
    """Irradiance (N, 1, H, W) of the LED flood over the crop, times the lens vignetting.

    Physical reason: behind a band-pass filter the tracker sees only its own LEDs, whose beam
    falls off away from its axis, and its wide-angle lens adds cos^4 vignetting; the eye crop
    sits somewhere in that field, so the crop gets a smooth radial fall-off (10-35 % from a
    random centre to the far corner) and an auto-exposure level (0.8-1.1). There is no
    ambient light, no window gradient.
    """
    h, w = size
    g = generator
    ys = torch.linspace(-1.0, 1.0, h, device=device).view(1, 1, h, 1)
    xs = torch.linspace(-1.0, 1.0, w, device=device).view(1, 1, 1, w)
    cx = _uniform((n, 1, 1, 1), -1.5, 1.5, g, device)
    cy = _uniform((n, 1, 1, 1), -1.5, 1.5, g, device)
    drop = _uniform((n, 1, 1, 1), 0.1, 0.35, g, device)
    exposure = _uniform((n, 1, 1, 1), 0.8, 1.1, g, device)
    r2 = (xs - cx) ** 2 + (ys - cy) ** 2
    r2_max = (1.0 + cx.abs()) ** 2 + (1.0 + cy.abs()) ** 2
    return exposure * (1.0 - drop * r2 / r2_max)


def led_glint_positions(params: EyeParams, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Image positions (N, 2, 2) of the two LEDs' corneal reflections and their visibility (N, 2).

    The LEDs sit left and right of the lens, 8-19 deg off its axis as seen from the eye
    (e.g. 100-200 mm beside it at 60 cm), and up to 5 deg below or above it.
    """
    n, dev, g = len(params), params.device, generator
    side = _uniform((n, 1), 0.15, 0.35, g, dev)
    lx = torch.cat([-side, side], dim=1)
    ly = _uniform((n, 1), -0.09, 0.09, g, dev).expand(n, 2)
    light = torch.stack([lx, ly, -torch.ones(n, 2, device=dev)], dim=-1)
    pos, on_cornea = corneal_reflection(params, light)
    return pos, on_cornea.float()


def add_led_glints(
    linear: Tensor, params: EyeParams, layers: EyeLayers, generator: torch.Generator
) -> Tensor:
    """Add the two LED glints; (N, C, H, W) linear radiance in, same out.

    Physical reason: the cornea mirrors each LED as a tiny spot (the basis of pupil-centre /
    corneal-reflection tracking), always two for an LED pair while they fall on the cornea.
    The LEDs are the only light and very bright, so the spots saturate the sensor (peak 2-4x
    the white level before clipping); sigma 0.35-0.5 px. Hidden where the lids cover the eye.
    """
    n, dev = linear.shape[0], linear.device
    pos, visible = led_glint_positions(params, generator)
    sigma = _uniform((n, 2, 1, 1), 0.35, 0.5, generator, dev)
    peak = _uniform((n, 2, 1, 1), 2.0, 4.0, generator, dev) * visible.view(n, 2, 1, 1)
    return linear + gaussian_spots(pos, sigma, peak, (linear.shape[2], linear.shape[3])) * layers.opening


# --------------------------------------------------------------------------------------------
# Optics and sensor
# --------------------------------------------------------------------------------------------


def motion_blur(
    image: Tensor, generator: torch.Generator, length_px: tuple[float, float] = (0.0, 1.5)
) -> Tensor:
    """Blur each image (N, C, H, W) along a line of random length and direction.

    Physical reason: the head and eye move during the exposure, smearing the image along the
    motion. A tracker's short global-shutter exposure (a few ms) keeps the smear within about
    a pixel of the crop; a webcam's 1/30 s low-light exposure makes it a few pixels. The line
    (``length_px`` per image, uniform direction) is a normalised kernel of bilinear splats.
    """
    n, c, h, w = image.shape
    dev, g = image.device, generator
    length = _uniform((n, 1), *length_px, g, dev)
    angle = _uniform((n, 1), 0.0, math.pi, g, dev)
    half = max(1, math.ceil(length_px[1] / 2.0))
    side = 2 * half + 1
    t = torch.linspace(-0.5, 0.5, 9, device=dev).view(1, 9)
    x = half + t * length * torch.cos(angle)
    y = half + t * length * torch.sin(angle)
    kernel = splat_bilinear(x, y, torch.ones_like(x), (side, side))
    kernel = kernel / kernel.sum(dim=(1, 2), keepdim=True)
    weight = kernel.repeat_interleave(c, dim=0).unsqueeze(1)  # (N * C, 1, side, side)
    padded = F.pad(image.reshape(1, n * c, h, w), (half, half, half, half), mode="replicate")
    return F.conv2d(padded, weight, groups=n * c).view(n, c, h, w)


def low_resolution(image: Tensor, generator: torch.Generator) -> Tensor:
    """Image (N, C, H, W) re-sampled through a coarser pixel grid (1.25-2x coarser per image).

    Physical reason: a remote tracker's camera covers the whole head box, so an eye spans only
    a few dozen sensor pixels, fewer than the 55-px crop: the crop is an upsampled image of
    larger pixels (area integration, then bilinear interpolation), with lost detail and
    interpolation softness.
    """
    n, c, h, w = image.shape
    dev = image.device
    choice = torch.randint(0, len(_LOW_RES_FACTORS), (n,), generator=generator, device=dev)
    out = image
    for i, factor in enumerate(_LOW_RES_FACTORS):
        hs, ws = max(2, round(h / factor)), max(2, round(w / factor))
        down = resize_matrix(h, hs, dev, "area") @ image @ resize_matrix(w, ws, dev, "area").T
        up = resize_matrix(hs, h, dev, "bilinear") @ down @ resize_matrix(ws, w, dev, "bilinear").T
        out = torch.where((choice == i).view(n, 1, 1, 1), up, out)
    return out


def add_nir_sensor_noise(linear: Tensor, generator: torch.Generator) -> Tensor:
    """Shot, read and fixed-pattern column noise on linear radiance (N, C, H, W).

    Physical reason: photon shot noise (full well of the tracker's larger global-shutter
    pixels: 1000-4000 electrons at the white level), read noise (0.3-0.8 % of the white
    level), and column fixed-pattern noise: every column has its own readout amplifier and
    ADC whose offsets differ (0.3-1 % of the white level, EMVA 1288 "DSNU" of column type),
    which shows as faint vertical stripes that stay put from frame to frame. The crop's columns
    are a random stretch of the sensor's, so the offsets are drawn per image.
    """
    n, c, h, w = linear.shape
    dev, g = linear.device, generator
    electrons = _uniform((n, 1, 1, 1), 1000.0, 4000.0, g, dev)
    read = _uniform((n, 1, 1, 1), 0.003, 0.008, g, dev)
    column_std = _uniform((n, 1, 1, 1), 0.003, 0.01, g, dev)
    std = torch.sqrt(linear.clamp_min(0.0) / electrons + read * read)
    columns = column_std * torch.randn((n, 1, 1, w), generator=g, device=dev)
    return linear + std * torch.randn(linear.shape, generator=g, device=dev) + columns


def linear_response(linear: Tensor) -> Tensor:
    """Machine-vision output: values proportional to light, clipped at the white level; [0, 1].

    Physical reason: tracking cameras deliver raw linear intensities (no display gamma, no
    tone curve) so that glints and pupil edges keep their true contrast; whatever exceeds the
    white level, the glints above all, saturates.
    """
    return linear.clamp(0.0, 1.0)


# --------------------------------------------------------------------------------------------
# Pipeline
# --------------------------------------------------------------------------------------------


def _render_nir_chunk(
    params: EyeParams, generator: torch.Generator, height: int, width: int, rgb: bool
) -> Tensor:
    """The NIR tracker pipeline for one chunk; (N, C, H, W) in [-1, 1] on 8-bit levels."""
    g = generator
    n, dev = len(params), params.device
    size = (height, width)
    layers = eye_layers(params, height, width)
    nir = bright_or_dark_pupil(nir_reflectance(params, g), g)
    image = composite(nir, layers, nir_skin_albedo(nir, size, g))[:, :1]
    image = iris_texture(image, params, layers, g)
    image = add_nir_eyelashes(image, params, g)
    linear = image * led_illumination(n, size, g, dev)
    linear = add_led_glints(linear, params, layers, g)
    linear = defocus_blur(linear, g, (0.3, 0.8))
    linear = motion_blur(linear, g)
    linear = low_resolution(linear, g)
    linear = add_nir_sensor_noise(linear, g)
    out = quantise_8bit(linear_response(linear)) * 2.0 - 1.0
    return out.expand(-1, 3, -1, -1).contiguous() if rgb else out


#: N eyes as a NIR remote eye tracker sees them: ``simulate_nir_eyes(n, generator, *, rgb, device, height,
#: width) -> (images, labels)`` exactly like :func:`simgan_gaze.target.simulate_target_eyes`
#: (same labels for the same seed).
simulate_nir_eyes = functools.partial(simulate_with, _render_nir_chunk)
