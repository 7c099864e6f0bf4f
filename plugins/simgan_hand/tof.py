"""Time-of-flight target camera (Kinect v2 / Azure Kinect style) for the hand-depth task.

The scene is :mod:`simgan_hand.target_scene`'s (the Kinect target's hands, forearms and walls,
same pose distribution and labels); only the sensor differs. A continuous-wave ToF camera
floods the scene with amplitude-modulated NIR light from an emitter right beside the lens and
measures, per pixel, the phase delay of the returning modulation: depth ``z = phase * c / (4 pi
f)``. There is no triangulation, so no projector shadow and no disparity quantisation; instead:

scene radiometry
    :func:`surface_albedo` (NIR reflectance per surface), :func:`return_amplitude` (inverse
    square, incidence angle, lens and emitter fall-off towards the image periphery)
light transport
    :func:`multipath_bias` (indirect light via nearby surfaces lengthens the measured path in
    concave places)
optics and pixel
    :func:`mixed_pixels` (each pixel integrates the phasors over its footprint and the lens blur:
    flying pixels at every depth edge, slight blur)
sensor
    :func:`amplitude_noise` (phase noise ~ 1/sqrt(amplitude)), :func:`low_amplitude_dropout`
    (the camera invalidates weak returns), :func:`round_to_depth_units` (uint16 millimetres)

Sizes in sensor pixels are converted to crop pixels with the Kinect v2 depth camera's focal
length (:data:`TOF_FOCAL_PX`). Ranges are drawn per image and come from the ToF literature
(Sarbolandi, Lefloch & Kolb 2015, "Kinect range sensing: structured-light versus time-of-flight
Kinect"; Fankhauser et al. 2015; Fuchs 2010 and Jimenez et al. 2014 on multipath; the Azure
Kinect DK hardware specification), not tuned for any method.
"""

from __future__ import annotations

import functools
import math

import kornia
import torch
import torch.nn.functional as F
from torch import Tensor

from simgan_hand.kinect import surface_incidence_cos
from simgan_hand.render import CropParams
from simgan_hand.target_scene import TargetScene, _finite, _uniform, simulate_target_hands

#: Focal length of the Kinect v2 depth camera in its own pixels (512x424, ~70 deg wide).
TOF_FOCAL_PX = 365.0
#: Modulation frequency whose phase sets the precision (Kinect v2's highest, ~80 MHz), MHz.
MODULATION_MHZ = 80.0
#: Depth per 2 pi of phase, mm: c / (2 f).
PHASE_WRAP_MM = 299_792.458 / (2.0 * MODULATION_MHZ)
#: Axes and radii (mm) along which :func:`multipath_bias` looks for nearby surfaces.
_MULTIPATH_AXES = 4
_MULTIPATH_RADII_MM = (8.0, 20.0)


def crop_px_per_sensor_px(crop: CropParams, focal_px: float) -> Tensor:
    """(N,) crop pixels per pixel of a camera with focal length ``focal_px`` (same field of view
    geometry as the crop's intrinsics, coarser or finer pixels)."""
    return crop.px_per_native * (crop.intrinsics.fx / focal_px)


def surface_albedo(scene: TargetScene, generator: torch.Generator) -> Tensor:
    """NIR reflectance (N, 1, S, S) of the nearest surface; 0 where there is none.

    Physical reason: the amplitude of the return, and with it the noise and the validity of a
    ToF pixel, depends on how much 850 nm light a surface reflects. Skin reflects ~45-65 % at
    850 nm whatever its visible tone; a sleeve on the forearm anything from dark cloth to a
    light shirt (15-65 %); walls and desks 20-90 %. Drawn per image and surface.
    """
    n, dev, g = scene.hand_mm.shape[0], scene.hand_mm.device, generator
    skin = _uniform((n, 1, 1, 1), 0.45, 0.65, g, dev)
    sleeve = _uniform((n, 1, 1, 1), 0.15, 0.65, g, dev)
    wall = _uniform((n, 1, 1, 1), 0.2, 0.9, g, dev)
    hand_wins = scene.hand_mm <= torch.minimum(scene.forearm_mm, scene.background_mm)
    arm_wins = ~hand_wins & (scene.forearm_mm <= scene.background_mm)
    albedo = torch.where(hand_wins, skin, torch.where(arm_wins, sleeve, wall))
    return albedo * _finite(scene.depth_mm)


def return_amplitude(depth_mm: Tensor, albedo: Tensor, crop: CropParams) -> Tensor:
    """Relative amplitude (N, 1, S, S) of the modulated return; 1 = a white frontal surface at
    1 m on the optical axis, 0 where there is no surface.

    Physical reason: the emitter sits beside the lens, so a surface at range ``r`` receives
    irradiance ~ cos(incidence) / r^2 and sends a fraction ``albedo / pi`` back; the lens adds
    the cos^4 fall-off of off-axis pixels. With ``r = z / cos(theta)`` for a pixel at field angle
    ``theta`` that is ``albedo * cos(incidence) * cos(theta)^6 / z^2`` (a hand at 0.7 m: ~1;
    the corner of a 640x480 NYU frame, 34 deg off axis: x0.3).
    """
    rx, ry = crop.pixel_rays()
    cos2_field = 1.0 / (1.0 + rx.unsqueeze(1) ** 2 + ry.unsqueeze(1) ** 2)
    z_m = torch.where(_finite(depth_mm), depth_mm, torch.ones_like(depth_mm)) / 1000.0
    cos_inc = surface_incidence_cos(depth_mm, crop)
    return albedo * cos_inc * cos2_field**3 / (z_m * z_m)


def multipath_bias(
    depth_mm: Tensor,
    crop: CropParams,
    generator: torch.Generator,
    reflectance: tuple[float, float] = (0.15, 0.4),
    reach_mm: float = 60.0,
) -> Tensor:
    """Depth (N, 1, S, S) mm lengthened where indirect light from nearby surfaces arrives.

    Physical reason: a ToF pixel cannot tell direct light from light that reached its surface
    point via another surface (multipath interference); the indirect path is longer, so the
    measured depth grows. It matters in concave places: between fingers, where the palm curls,
    and where the hand meets a wall or table (corners: Fuchs 2010 and Jimenez et al. 2014
    report errors of centimetres in room corners); flat or convex surfaces get none.

    Model: around each pixel, pairs of opposite points along 4 axes at 8 and 20 mm are
    examined; the pixel's depth lead over the pair's midpoint, ``h = z - (z_a + z_b) / 2``, is
    positive in a concavity (zero on any plane, negative on a convex surface). Pairs with
    ``0 < h <= reach_mm`` (farther surfaces add little light, 1/d^2) send an indirect return whose
    extra path is ``h``. With ``F`` the fraction of such pairs, ``h_mean`` their mean lead and
    ``rho`` an effective inter-reflection coefficient (``reflectance``, per image), the indirect
    return has relative strength ``r = rho F`` and, in the small-phase limit of the phasor sum,
    biases the depth by ``r h_mean / (1 + r)``: a few mm at the bottom of a gap between fingers,
    at most ``reach_mm * rho / (1 + rho)`` (8-17 mm).
    """
    n, _, s, _ = depth_mm.shape
    dev = depth_mm.device
    rho = _uniform((n, 1, 1, 1), *reflectance, generator, dev)
    finite = _finite(depth_mm)
    z = depth_mm.masked_fill(~finite, math.inf)
    px_per_mm = crop.size / crop.cube_mm  # at the crop centre's depth
    pad = math.ceil(max(_MULTIPATH_RADII_MM) * px_per_mm) + 1
    padded = F.pad(z, (pad, pad, pad, pad), value=math.inf)
    count = torch.zeros_like(z)
    lead_sum = torch.zeros_like(z)
    pairs = 0
    for radius in _MULTIPATH_RADII_MM:
        for k in range(_MULTIPATH_AXES):
            angle = math.pi * k / _MULTIPATH_AXES
            dx = round(radius * px_per_mm * math.cos(angle))
            dy = round(radius * px_per_mm * math.sin(angle))
            ahead = padded[..., pad + dy : pad + dy + s, pad + dx : pad + dx + s]
            behind = padded[..., pad - dy : pad - dy + s, pad - dx : pad - dx + s]
            lead = z - 0.5 * (ahead + behind)  # inf - inf = nan where nothing is around: no pair
            near = (lead > 0) & (lead <= reach_mm)
            count += near
            lead_sum += torch.where(near, lead, torch.zeros_like(lead))
            pairs += 1
    r = rho * count / pairs
    bias = r * lead_sum / count.clamp_min(1.0) / (1.0 + r)
    return torch.where(finite, depth_mm + bias, depth_mm)


def mixed_pixels(
    depth_mm: Tensor,
    amplitude: Tensor,
    crop: CropParams,
    generator: torch.Generator,
    sigma_sensor: tuple[float, float] = (0.4, 0.65),
) -> tuple[Tensor, Tensor]:
    """Integrate the returns over each pixel's footprint: ``(depth, amplitude)`` as measured.

    Physical reason: a ToF pixel sums the modulated light from everything in its footprint
    (widened by the lens blur) as phasors ``a exp(i 4 pi f z / c)``; the phase of the sum is its
    depth. Where the footprint straddles a depth edge the result lies between the foreground
    and background depths, weighted by their amplitudes: every occluding edge gets "mixed" or
    "flying" pixels (not only some of them, as with structured light), and where there is
    nothing behind the edge the foreground depth spreads outwards at reduced amplitude. Inside
    smooth surfaces it is a slight blur. The footprint is a Gaussian of sigma 0.4-0.65 sensor
    pixels (box pixel 0.29 plus a lens blur of about a pixel FWHM), drawn per image; the phase
    is unwrapped about the crop centre as the camera's multi-frequency unwrapping would.

    Returns:
        ``(depth_mm, amplitude)``, each (N, 1, S, S); depth is meaningless where the amplitude
        is ~0 (see :func:`low_amplitude_dropout`).
    """
    n, dev = depth_mm.shape[0], depth_mm.device
    sigma = _uniform((n,), *sigma_sensor, generator, dev) * crop_px_per_sensor_px(crop, TOF_FOCAL_PX)
    finite = _finite(depth_mm)
    ref = crop.centre_mm[:, 2].view(n, 1, 1, 1)
    phase = 2.0 * math.pi * (torch.where(finite, depth_mm, ref) - ref) / PHASE_WRAP_MM
    a = torch.where(finite, amplitude, torch.zeros_like(amplitude))
    phasor = torch.cat([a * torch.cos(phase), a * torch.sin(phase)], dim=1)
    radius = max(1, math.ceil(3.0 * float(sigma.max())))
    ksize = (2 * radius + 1, 2 * radius + 1)
    sig = sigma.clamp_min(0.05).view(n, 1).expand(n, 2).contiguous()
    summed = kornia.filters.gaussian_blur2d(phasor, ksize, sig, border_type="replicate")
    re, im = summed[:, :1], summed[:, 1:]
    depth = ref + torch.atan2(im, re) * PHASE_WRAP_MM / (2.0 * math.pi)
    return depth, torch.sqrt(re * re + im * im)


def amplitude_noise(
    depth_mm: Tensor,
    amplitude: Tensor,
    generator: torch.Generator,
    sigma_mm: tuple[float, float] = (1.0, 2.0),
) -> Tensor:
    """Add depth noise whose standard deviation is ``sigma / sqrt(amplitude)``.

    Physical reason: the phase is estimated from a few correlation samples of a shot-noise
    limited signal, so its error falls as 1/sqrt(collected light): noise is smallest on bright
    frontal surfaces near the optical axis and grows at grazing angles, on dark surfaces, with
    distance and towards the image periphery. Unlike triangulation it does not grow as z^2 on
    its own. ``sigma`` (1-2 mm at amplitude 1, per image) matches the ~1.5 mm measured for the
    Kinect v2 at 1 m on axis (Fankhauser et al. 2015; Sarbolandi et al. 2015).
    """
    n, dev = depth_mm.shape[0], depth_mm.device
    sigma = _uniform((n, 1, 1, 1), *sigma_mm, generator, dev)
    std = sigma / amplitude.clamp_min(1e-3).sqrt()
    return depth_mm + std * torch.randn(depth_mm.shape, generator=generator, device=dev)


def low_amplitude_dropout(
    amplitude: Tensor, generator: torch.Generator, threshold: tuple[float, float] = (0.06, 0.15)
) -> Tensor:
    """Pixels (N, 1, S, S) bool whose return is too weak to trust: the camera reports nothing.

    Physical reason: ToF pipelines invalidate pixels whose modulation amplitude is below a
    threshold (their phase is mostly noise): dark surfaces, far ones, grazing ones (finger rims
    seen edge-on), and mixed pixels at edges against empty space, whose footprint is only
    partly filled. The threshold is drawn per image relative to a white frontal surface at
    1 m (6-15 %).
    """
    n, dev = amplitude.shape[0], amplitude.device
    return amplitude < _uniform((n, 1, 1, 1), *threshold, generator, dev)


def round_to_depth_units(depth_mm: Tensor, unit_mm: float = 1.0) -> Tensor:
    """Round depth to the camera's output unit; same shape, non-finite values unchanged.

    Physical reason: the Kinect v2, the Azure Kinect and the RealSense D4xx all deliver depth as
    16-bit integers of 1 mm (the default depth unit), so sub-millimetre detail is lost.
    """
    finite = _finite(depth_mm)
    return torch.where(finite, torch.round(depth_mm / unit_mm) * unit_mm, depth_mm)


def tof_sensor_depth_mm(scene: TargetScene, crop: CropParams, generator: torch.Generator) -> Tensor:
    """What the ToF camera reports for a clean scene: depth (N, 1, S, S) in mm, 0 = no reading.

    Order: radiometry and multipath act on the light arriving at the pixel, the pixel then
    integrates it over its footprint, and the phase is read out with noise and validated by
    its amplitude.
    """
    g = generator
    clean = scene.depth_mm
    albedo = surface_albedo(scene, g)
    amplitude = return_amplitude(clean, albedo, crop)
    depth = multipath_bias(clean, crop, g)
    depth, amplitude = mixed_pixels(depth, amplitude, crop, g)
    depth = amplitude_noise(depth, amplitude, g)
    missing = low_amplitude_dropout(amplitude, g) | ~_finite(depth)
    return round_to_depth_units(depth).masked_fill(missing, 0.0)


#: N hands as a ToF camera sees them: ``simulate_tof_hands(n, generator, *, device, size, cube_mm,
#: intrinsics) -> (images, labels)`` exactly like :func:`simgan_hand.kinect.simulate_kinect_hands`
#: (same labels for the same seed).
simulate_tof_hands = functools.partial(simulate_target_hands, sensor=tof_sensor_depth_mm)
