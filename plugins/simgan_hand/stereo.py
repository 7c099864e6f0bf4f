"""Active-stereo target camera (RealSense D4xx / OAK-D style) for the hand-depth task.

The scene is :mod:`simgan_hand.target_scene`'s (the Kinect target's hands, forearms and walls,
same pose distribution and labels); only the sensor differs. Two NIR imagers a baseline apart
see the scene (textured by a dot projector) and a matcher finds each pixel's disparity
``d = f b / z`` between them; the depth is registered to one imager, the reference.

Camera: a 95 mm baseline (RealSense D455) at 848x480 with an 87 deg field of view
(:data:`STEREO_FOCAL_PX`), depth registered to the RIGHT imager (the default of Luxonis OAK-D
stereo depth; a D4xx registers to its left imager and would shadow on the Kinect's side). The
other imager is then on the camera's -x side, so half-occlusions fall on the image RIGHT of
foreground objects, opposite to the Kinect target's projector shadow.

geometry
    :func:`half_occlusion` (seen by the reference imager only: the left-right check removes
    it), :func:`grazing_dropout` (surfaces seen edge-on look different in the two views)
matching
    :func:`edge_fattening` (window aggregation lets the foreground grow into the background),
    :func:`left_right_check_failures` (inconsistent matches along depth edges)
    :func:`correlated_disparity_noise` (sub-pixel error, correlated over the window, z^2 in depth)
post-processing
    :func:`speckle_filter_holes` (small outlier regions removed), :func:`round_to_depth_units`

Ranges are drawn per image from the sensor documentation (Intel D400 datasheet and "Tuning
depth cameras for best performance", Grunnet-Jepsen et al.; Luxonis DepthAI StereoDepth) and
the stereo literature (Scharstein & Szeliski 2002 on foreground fattening; Hirschmueller 2008
on the left-right check and speckle filtering), not tuned for any method.
"""

from __future__ import annotations

import functools
import math

import kornia
import torch
import torch.nn.functional as F
from torch import Tensor

from simgan_hand.kinect import (
    correlation_window_smoothing,
    depth_discontinuities,
    grazing_dropout,
    occluding_edge_dropout,
    projector_shadow,
)
from simgan_hand.render import CropParams
from simgan_hand.target_scene import TargetScene, _finite, _uniform, simulate_target_hands
from simgan_hand.tof import crop_px_per_sensor_px, round_to_depth_units

#: Baseline between the two imagers, mm (RealSense D455).
STEREO_BASELINE_MM = 95.0
#: Focal length in the imagers' own pixels: 848 px across an 87 deg field of view.
STEREO_FOCAL_PX = 424.0 / math.tan(math.radians(87.0 / 2.0))
#: Side of the other imager relative to the reference (right) one: -1 = the camera's -x side.
OTHER_IMAGER_SIDE = -1.0


def _unit_std(field: Tensor) -> Tensor:
    """Each image of (N, 1, H, W) scaled to unit standard deviation."""
    return field / field.flatten(1).std(dim=1).clamp_min(1e-6).view(-1, 1, 1, 1)


def half_occlusion(depth_mm: Tensor, crop: CropParams, baseline_mm: float = STEREO_BASELINE_MM) -> Tensor:
    """Pixels (N, 1, S, S) bool that the reference imager sees and the other imager does not.

    Physical reason: a foreground object hides a strip of the background from the second
    imager, ``f b (1/z_near - 1/z_far)`` pixels wide (with a 95 mm baseline ~20 NYU pixels for
    a hand 150 mm in front of a wall at 0.7 m). Those pixels have no true match; the matcher's
    left-right consistency check finds that and invalidates them, leaving a shadow beside every
    object on the side away from the other imager (here the image right). The geometry is the
    Kinect's projector shadow with the other imager in the projector's place
    (:func:`simgan_hand.kinect.projector_shadow`).
    """
    return projector_shadow(depth_mm, crop, baseline_mm=OTHER_IMAGER_SIDE * baseline_mm)


def edge_fattening(
    scene: TargetScene,
    px_per_sensor: Tensor,
    generator: torch.Generator,
    share: tuple[float, float] = (0.15, 0.35),
) -> Tensor:
    """Depth (N, 1, S, S) mm where the foreground has grown into the background at its edges.

    Physical reason: a stereo matcher compares windows (or aggregates costs over a
    neighbourhood), and a window that straddles a depth edge is dominated by the foreground's
    stronger, consistently shifted texture, so background pixels up to about half a window
    from the edge get the foreground's disparity: "foreground fattening" (Scharstein &
    Szeliski 2002). Modelled with the Kinect's window model
    (:func:`simgan_hand.kinect.correlation_window_smoothing`, sigma 1-1.6 sensor pixels) where
    the foreground wins from a share of 15-35 % of the window instead of a half: silhouettes
    grow by ~0.5-2 sensor pixels and narrow gaps between fingers close.
    """
    n, dev = scene.hand_mm.shape[0], scene.hand_mm.device
    threshold = _uniform((n, 1, 1, 1), *share, generator, dev)
    return correlation_window_smoothing(
        scene.foreground_mm, scene.background_mm, px_per_sensor, generator,
        sigma_native=(1.0, 1.6), foreground_share=threshold,
    )


def left_right_check_failures(
    depth_mm: Tensor, px_per_sensor: Tensor, generator: torch.Generator, edges: Tensor | None = None
) -> Tensor:
    """Pixels (N, 1, S, S) bool along depth edges whose left and right matches disagree.

    Physical reason: besides the half-occluded strip, windows straddling a discontinuity match
    differently from the two views; where left-to-right and right-to-left disparities differ by
    more than the check's tolerance (~1 px) the pixel is invalidated, leaving a ragged band
    along silhouettes. Same band model as the Kinect's edge dropout, with a 20-50 % chance per
    band pixel.
    """
    return occluding_edge_dropout(depth_mm, px_per_sensor, generator, probability=(0.2, 0.5), edges=edges)


def correlated_disparity_noise(
    depth_mm: Tensor,
    px_per_sensor: Tensor,
    generator: torch.Generator,
    sigma_disparity_px: tuple[float, float] = (0.06, 0.15),
    window_sigma_sensor: float = 1.5,
    focal_px: float = STEREO_FOCAL_PX,
    baseline_mm: float = STEREO_BASELINE_MM,
) -> Tensor:
    """Add sub-pixel disparity error that is smooth over the matching window; depth error ~ z^2.

    Physical reason: the disparity's sub-pixel estimate has an RMS error of ~0.05-0.1 px for
    D4xx cameras in good conditions (Intel's "subpixel RMS"; worse on low-texture skin:
    0.06-0.15 px here, per image), so ``sigma_z = z^2 sigma_d / (f b)`` (~1-2 mm at 0.7 m with
    a 95 mm baseline). Neighbouring pixels share most of their matching window, so the error is
    spatially correlated over the window (a Gaussian of ``window_sigma_sensor`` sensor pixels):
    surfaces look wavy rather than grainy, unlike the Kinect target's per-pixel noise.
    """
    n, dev = depth_mm.shape[0], depth_mm.device
    sigma = _uniform((n, 1, 1, 1), *sigma_disparity_px, generator, dev)
    white = torch.randn(depth_mm.shape, generator=generator, device=dev)
    k = (window_sigma_sensor * px_per_sensor).clamp_min(0.3)
    radius = max(1, math.ceil(3.0 * float(k.max())))
    field = kornia.filters.gaussian_blur2d(
        white, (2 * radius + 1,) * 2, k.view(n, 1).expand(n, 2).contiguous(), border_type="reflect"
    )
    field = _unit_std(field)
    finite = _finite(depth_mm)
    fb = focal_px * baseline_mm
    disparity = fb / torch.where(finite, depth_mm, torch.ones_like(depth_mm)) + sigma * field
    return torch.where(finite, fb / disparity.clamp_min(1e-3), depth_mm)


def speckle_filter_holes(
    depth_mm: Tensor,
    px_per_sensor: Tensor,
    generator: torch.Generator,
    fraction_at_1m: tuple[float, float] = (0.003, 0.015),
    blob_sensor_px: float = 4.0,
) -> Tensor:
    """Irregular clustered holes (N, 1, S, S) bool left where the speckle filter removed outliers.

    Physical reason: where the projected dots are faint or ambiguous the matcher produces small
    regions of wrong disparity; the speckle filter (connected regions smaller than a few dozen
    pixels that differ from their surroundings) removes them, leaving irregular holes a few
    sensor pixels across. Their density grows with distance because the dot pattern's
    brightness falls as 1/z^2: the fraction of such pixels is 0.3-1.5 % at 1 m (per image) and
    scales with ``(z / 1 m)^2``.
    """
    n, _, h, w = depth_mm.shape
    dev = depth_mm.device
    cell = max(1.0, blob_sensor_px * float(px_per_sensor.mean()))
    grid = (max(2, round(h / cell)), max(2, round(w / cell)))
    coarse = torch.randn((n, 1, *grid), generator=generator, device=dev)
    field = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)
    field = _unit_std(field)
    base = _uniform((n, 1, 1, 1), *fraction_at_1m, generator, dev)
    z_m = torch.where(_finite(depth_mm), depth_mm, torch.ones_like(depth_mm)) / 1000.0
    fraction = (base * z_m * z_m).clamp(1e-6, 0.5)
    # Unit-variance field: P(field > t) = fraction for t = sqrt(2) erfinv(1 - 2 fraction).
    threshold = math.sqrt(2.0) * torch.erfinv(1.0 - 2.0 * fraction)
    return (field > threshold) & _finite(depth_mm)


def stereo_sensor_depth_mm(scene: TargetScene, crop: CropParams, generator: torch.Generator) -> Tensor:
    """What the active stereo camera reports for a clean scene: depth (N, 1, S, S) mm, 0 = none.

    Order: the geometric losses are properties of the clean scene; matching then fattens the
    foreground, fails along edges and adds correlated disparity noise; post-processing removes
    speckles and stores millimetres.
    """
    g = generator
    s = crop_px_per_sensor_px(crop, STEREO_FOCAL_PX)
    clean = scene.depth_mm
    missing = half_occlusion(clean, crop)
    missing |= grazing_dropout(clean, crop, g, max_angle_deg=(75.0, 83.0))
    depth = edge_fattening(scene, s, g)
    missing |= left_right_check_failures(depth, s, g, edges=depth_discontinuities(depth)[0])
    depth = correlated_disparity_noise(depth, s, g)
    missing |= speckle_filter_holes(depth, s, g)
    missing |= ~_finite(depth)
    return round_to_depth_units(depth).masked_fill(missing, 0.0)


#: N hands as the active stereo camera sees them: ``simulate_stereo_hands(n, generator, *, device, size, cube_mm,
#: intrinsics) -> (images, labels)`` exactly like :func:`simgan_hand.kinect.simulate_kinect_hands`
#: (same labels for the same seed).
simulate_stereo_hands = functools.partial(simulate_target_hands, sensor=stereo_sensor_depth_mm)
