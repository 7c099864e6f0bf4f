"""Low-light laptop webcam as a gaze target camera (``gaze_webcam``, ``gaze_webcam_rgb``).

Same eye geometry and visible-light scene as :mod:`simgan_gaze.target` (skin texture, lid
shading, lashes; labels mean the same thing), but lit only by the laptop's screen in a dark
room and captured by a small-pixel colour webcam at its longest exposure and highest gain,
whose ISP then fights the noise. In light order:

illumination
    :func:`screen_light` (cool, bottom-up light of the screen), :func:`add_screen_reflection`
    (the screen mirrored in the cornea: a dim rectangle, not a point glint)
optics
    :func:`simgan_gaze.target.defocus_blur` (wide aperture), :func:`simgan_gaze.nir.motion_blur`
    (1/30 s exposure)
sensor
    :func:`low_light_noise` (Poisson photon counts of a few dozen electrons + read noise)
ISP and storage
    :func:`auto_exposure` (gain to a mid-grey mean), :func:`low_light_tone_curve` (strong gamma,
    black clipping), :func:`isp_denoise` (edge-preserving luma smoothing, chroma blur),
    :func:`simgan_gaze.target.jpeg_compress` at low quality, 8-bit output

Grey output is the luminance of the stored colour frame (a colour webcam converted
afterwards). Ranges are drawn per image from imaging references (EMVA 1288 photon transfer;
Foi et al. 2008 on Poisson-Gaussian raw noise; typical 1.1-1.4 um webcam pixels and
screen-lit illuminance of 3-15 lux), not tuned for any method.
"""

from __future__ import annotations

import functools

import kornia
import torch
from torch import Tensor

from simgan_gaze.eye_model import EyeParams
from simgan_gaze.nir import motion_blur
from simgan_gaze.simulator import EyeLayers, eye_layers
from simgan_gaze.target import (
    SIMULATOR_GAMMA,
    _pow,
    _uniform,
    corneal_reflection,
    defocus_blur,
    jpeg_compress,
    quantise_8bit,
    render_scene,
    simulate_with,
)

#: JPEG quality of the low-bitrate video frames (a stand-in for H.264 at video-call bitrates).
LOW_LIGHT_JPEG_QUALITY = (25.0, 60.0)


def screen_light(linear: Tensor, generator: torch.Generator) -> Tensor:
    """Light linear radiance (N, C, H, W) by a screen below and in front of the face.

    Physical reason: in a dark room the screen is the only light. It is below the eyes, so
    the lower lid and the bottom of the crop get more light than the brow (a 10-40 % vertical
    gradient, brighter downwards), and its white is bluish (6500-9000 K panels, shifted by
    whatever is on screen): per-channel gains red 0.75-0.95, green 0.95-1.05, blue 1.05-1.35,
    normalised to a mean of one; grey images keep only the luminance change.
    """
    n, c, h, w = linear.shape
    dev, g = linear.device, generator
    ys = torch.linspace(-1.0, 1.0, h, device=dev).view(1, 1, h, 1)
    xs = torch.linspace(-1.0, 1.0, w, device=dev).view(1, 1, 1, w)
    gy = _uniform((n, 1, 1, 1), 0.1, 0.4, g, dev)
    gx = _uniform((n, 1, 1, 1), -0.1, 0.1, g, dev)
    field = 1.0 + 0.5 * gy * ys + gx * xs
    if c == 3:
        gains = torch.cat(
            [
                _uniform((n, 1, 1, 1), 0.75, 0.95, g, dev),
                _uniform((n, 1, 1, 1), 0.95, 1.05, g, dev),
                _uniform((n, 1, 1, 1), 1.05, 1.35, g, dev),
            ],
            dim=1,
        )
        field = field * gains / gains.mean(dim=1, keepdim=True)
    return linear * field


def _soft_box(coord: Tensor, centre: Tensor, half: Tensor) -> Tensor:
    """1-D box of half-width ``half`` around ``centre`` with one-pixel sigmoid edges."""
    return torch.sigmoid((half - (coord - centre).abs()) / 0.3)


def add_screen_reflection(
    linear: Tensor, params: EyeParams, layers: EyeLayers, generator: torch.Generator
) -> Tensor:
    """Add the screen's reflection on the cornea; (N, C, H, W) linear radiance in, same out.

    Physical reason: the cornea is a convex mirror (focal length ~3.9 mm), so the screen,
    which subtends ~30 x 20 deg from the eye, appears as a small bright rectangle of about
    2 x 1.3 mm (here 1.5-3 x 1-2 px) where its direction's half vector meets the cornea: below
    the pupil centre, the screen being below the camera. Its brightness is comparable to the
    screen-lit skin (cornea reflects ~2.5 % of a source that lights the face at a few percent
    of its own luminance): 0.3-0.8 of the white level, not a saturated point.
    """
    n, c, h, w = linear.shape
    dev, g = linear.device, generator
    light = torch.stack(
        [
            _uniform((n, 1), -0.1, 0.1, g, dev),
            _uniform((n, 1), 0.25, 0.45, g, dev),  # the screen is below the camera (y down)
            -torch.ones(n, 1, device=dev),
        ],
        dim=-1,
    )
    pos, on_cornea = corneal_reflection(params, light)
    half_w = _uniform((n, 1, 1, 1), 0.75, 1.5, g, dev)
    half_h = _uniform((n, 1, 1, 1), 0.5, 1.0, g, dev)
    level = _uniform((n, 1, 1, 1), 0.3, 0.8, g, dev) * on_cornea.float().view(n, 1, 1, 1)
    xs = torch.arange(w, device=dev, dtype=torch.float32).view(1, 1, 1, w)
    ys = torch.arange(h, device=dev, dtype=torch.float32).view(1, 1, h, 1)
    cx, cy = pos[:, 0, 0].view(n, 1, 1, 1), pos[:, 0, 1].view(n, 1, 1, 1)
    rect = _soft_box(xs, cx, half_w) * _soft_box(ys, cy, half_h)
    # Restricted to the iris disc (the cornea) and the open eye.
    return linear + level * rect * layers.iris * layers.opening


def low_light_noise(linear: Tensor, generator: torch.Generator) -> Tensor:
    """Poisson-Gaussian raw noise at low photon counts; (N, C, H, W) linear in ~[0, 1].

    Physical reason: small webcam pixels (1.1-1.4 um) collect few photons from a screen-lit
    face even at 1/30 s (3-15 lux on the face), so the white level corresponds to only
    60-300 electrons and a mid-grey skin to a few dozen. Photon
    arrival is Poisson (variance equal to the mean count: noise grows with brightness, and the
    Gaussian approximation is poor at these counts); the readout adds 1.5-3 electrons of
    Gaussian read noise at high analogue gain. Values stay in units of the white level.
    """
    n, dev, g = linear.shape[0], linear.device, generator
    electrons = _uniform((n, 1, 1, 1), 60.0, 300.0, g, dev)
    read = _uniform((n, 1, 1, 1), 1.5, 3.0, g, dev)
    counts = torch.poisson(linear.clamp_min(0.0) * electrons, generator=g)
    counts = counts + read * torch.randn(linear.shape, generator=g, device=dev)
    return counts / electrons


def auto_exposure(linear: Tensor, generator: torch.Generator) -> Tensor:
    """Scale each frame so its mean reaches a mid-grey target; (N, C, H, W) in, same out.

    Physical reason: the webcam's auto-exposure, out of exposure time, raises the gain until
    the frame's mean brightness reaches its target (0.12-0.22 of the white level in linear
    light, i.e. roughly 40-50 % after the tone curve), amplifying signal and noise alike;
    the gain is capped at 8x.
    """
    n, dev = linear.shape[0], linear.device
    target = _uniform((n, 1, 1, 1), 0.12, 0.22, generator, dev)
    mean = linear.mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-3)
    return linear * (target / mean).clamp(max=8.0)


def low_light_tone_curve(linear: Tensor, generator: torch.Generator) -> Tensor:
    """Encode linear light (N, C, H, W) with a low-light tone curve; display values in [0, 1].

    Physical reason: webcam ISPs brighten dark scenes with a steeper curve than the usual
    sRGB gamma (an exponent of 1/2.4-1/3.2 here), lifting shadows and their noise, and clip a
    black level set slightly high (0-2 % of the white level) to hide the noise floor.
    """
    n, dev, g = linear.shape[0], linear.device, generator
    gamma = _uniform((n, 1, 1, 1), 2.4, 3.2, g, dev)
    black = _uniform((n, 1, 1, 1), 0.0, 0.02, g, dev)
    lifted = ((linear - black) / (1.0 - black)).clamp(0.0, 1.0)
    return _pow(lifted, 1.0 / gamma)


def isp_denoise(display: Tensor, generator: torch.Generator) -> Tensor:
    """Strong in-camera noise reduction; (N, C, H, W) display values in, same out.

    Physical reason: at high gain the ISP smooths aggressively: an edge-preserving filter on
    luminance (bilateral, spatial sigma 1-1.8 px, range sigma 0.08-0.2) keeps lid and iris
    edges but wipes out skin texture and fine noise ("waxy" faces), and chroma, to which the
    eye is less sensitive, is blurred much more (sigma 1.2-2.5 px), bleeding colours.
    """
    n, c = display.shape[0], display.shape[1]
    dev, g = display.device, generator
    sigma_space = _uniform((n, 1), 1.0, 1.8, g, dev).expand(n, 2).contiguous()
    sigma_range = _uniform((n,), 0.08, 0.2, g, dev)
    chroma_sigma = _uniform((n, 1), 1.2, 2.5, g, dev).expand(n, 2).contiguous()
    if c == 1:
        return kornia.filters.bilateral_blur(display, (7, 7), sigma_range, sigma_space, border_type="replicate")
    ycc = kornia.color.rgb_to_ycbcr(display)
    y = kornia.filters.bilateral_blur(ycc[:, :1], (7, 7), sigma_range, sigma_space, border_type="replicate")
    chroma = kornia.filters.gaussian_blur2d(ycc[:, 1:], (11, 11), chroma_sigma, border_type="replicate")
    return kornia.color.ycbcr_to_rgb(torch.cat([y, chroma], dim=1)).clamp(0.0, 1.0)


def _render_webcam_chunk(
    params: EyeParams, generator: torch.Generator, height: int, width: int, rgb: bool
) -> Tensor:
    """The low-light webcam pipeline for one chunk; (N, C, H, W) in [-1, 1] on 8-bit levels."""
    g = generator
    n, dev = len(params), params.device
    layers = eye_layers(params, height, width)
    linear = _pow(render_scene(params, layers, (height, width), g).clamp(0.0, 1.0), SIMULATOR_GAMMA)
    linear = add_screen_reflection(linear, params, layers, g)
    linear = screen_light(linear, g)
    linear = defocus_blur(linear, g, (0.5, 1.4))
    linear = motion_blur(linear, g, (0.5, 3.0))
    linear = low_light_noise(linear, g)
    display = low_light_tone_curve(auto_exposure(linear, g), g)
    display = isp_denoise(display, g)
    display = jpeg_compress(display, _uniform((n,), *LOW_LIGHT_JPEG_QUALITY, g, dev))
    if not rgb:
        display = kornia.color.rgb_to_grayscale(display)
    return quantise_8bit(display) * 2.0 - 1.0


#: N eyes as a laptop webcam in a dark room sees them: ``simulate_webcam_eyes(n, generator, *, rgb, device, height,
#: width) -> (images, labels)`` exactly like :func:`simgan_gaze.target.simulate_target_eyes`
#: (same labels for the same seed).
simulate_webcam_eyes = functools.partial(simulate_with, _render_webcam_chunk)
