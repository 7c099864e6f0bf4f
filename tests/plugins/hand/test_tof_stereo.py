"""Time-of-flight and active-stereo hand targets: layout, labels, and each sensor effect."""

from __future__ import annotations

import math

import pytest
import torch

from simgan_hand.kinect import KINECT_BASELINE_MM, projector_shadow, simulate_kinect_hands
from simgan_hand.render import crop_params
from simgan_hand.simulator import simulate_hands
from simgan_hand.stereo import (
    STEREO_BASELINE_MM,
    correlated_disparity_noise,
    edge_fattening,
    half_occlusion,
    simulate_stereo_hands,
    speckle_filter_holes,
    stereo_sensor_depth_mm,
)
from simgan_hand.target_scene import TargetScene, ideal_sensor, simulate_target_hands
from simgan_hand.tof import (
    amplitude_noise,
    low_amplitude_dropout,
    mixed_pixels,
    multipath_bias,
    return_amplitude,
    round_to_depth_units,
    simulate_tof_hands,
    tof_sensor_depth_mm,
)

S = 96
TARGETS = [simulate_tof_hands, simulate_stereo_hands]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _crop(n: int = 1, z: float = 750.0, size: int = S):
    return crop_params(torch.tensor([[0.0, 0.0, z]]).expand(n, 3).contiguous(), out=size)


def _square_scene(n: int = 2, near: float = 600.0, far: float = 900.0) -> TargetScene:
    """A fronto-parallel square (the 'hand') at ``near`` mm over a wall at ``far`` mm."""
    hand = torch.full((n, 1, S, S), math.inf)
    hand[..., 40:60, 40:60] = near
    return TargetScene(hand, torch.full_like(hand, math.inf), torch.full((n, 1, S, S), far))


# --------------------------------------------------------------------------------------------
# Whole generators
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_layout_range_and_labels_match_the_simulator(target) -> None:
    images, labels = target(6, _gen(1), size=64)
    _, sim_labels = simulate_hands(6, _gen(1), size=64)
    kinect, _ = simulate_kinect_hands(6, _gen(1), size=64)
    assert images.shape == (6, 1, 64, 64) and images.dtype == torch.float32
    assert images.min() >= -1.0 and images.max() <= 1.0
    assert set(labels) == set(sim_labels)
    for key in labels:
        assert torch.equal(labels[key], sim_labels[key])
    # Same scene, other sensor: close to the Kinect target but not equal to it.
    assert not torch.equal(images, kinect)
    assert ((images - kinect).abs() < 0.1).float().mean() > 0.8


@pytest.mark.parametrize("target", TARGETS)
def test_deterministic_per_seed(target) -> None:
    a, _ = target(3, _gen(2), size=64)
    b, _ = target(3, _gen(2), size=64)
    c, _ = target(3, _gen(3), size=64)
    assert torch.equal(a, b) and not torch.equal(a, c)


# --------------------------------------------------------------------------------------------
# Time of flight
# --------------------------------------------------------------------------------------------


def test_tof_has_no_projector_shadow_but_mixed_pixels_at_every_edge() -> None:
    scene = _square_scene(4)
    crop = _crop(4, z=1200.0)  # ~1 crop px per ToF sensor px: the footprint reaches the neighbours
    depth = tof_sensor_depth_mm(scene, crop, _gen(1))
    # Where the Kinect's projector leaves a shadow, the ToF camera reads the wall.
    shadow = projector_shadow(scene.depth_mm, crop)
    assert shadow.sum() > 100
    assert (depth[shadow] > 0).all() and (depth[shadow] > 850.0).float().mean() > 0.8
    # Mixed pixels: depths between the square and the wall on all four sides of the square.
    mixed = (depth > 620.0) & (depth < 880.0)
    for band in (mixed[..., 38:42, 45:55], mixed[..., 58:62, 45:55], mixed[..., 45:55, 38:42], mixed[..., 45:55, 58:62]):
        assert band.flatten(1).any(dim=1).all()
    # ... and only near the edge.
    assert not mixed[..., 45:55, 45:55].any() and not mixed[..., :30, :].any()


def test_mixed_pixel_is_the_phase_of_the_summed_phasors() -> None:
    # Half of a pixel's footprint on each surface, equal amplitudes: the phasor sum's phase is
    # the mean phase, so the depth is the mean depth (exact while the phases differ by < pi).
    depth = torch.full((1, 1, S, S), 700.0)
    depth[..., :, 48:] = 800.0
    amplitude = torch.ones_like(depth)
    crop = _crop(1, z=1200.0)  # ~1 crop px per sensor px
    out, amp = mixed_pixels(depth, amplitude, crop, _gen(), sigma_sensor=(0.6, 0.6))
    # Columns 47 and 48 sit symmetrically about the edge: their depths mirror about 750 mm.
    assert out[0, 0, 50, 47].item() + out[0, 0, 50, 48].item() == pytest.approx(1500.0, abs=1e-2)
    assert 705.0 < out[0, 0, 50, 47].item() < 750.0
    # Away from the edge, a flat surface is unchanged and keeps its amplitude.
    assert out[0, 0, 50, 10].item() == pytest.approx(700.0, abs=1e-2)
    assert amp[0, 0, 50, 10].item() == pytest.approx(1.0, abs=1e-4)
    # At the edge the phasors partly cancel: amplitude drops below one.
    assert amp[0, 0, 50, 47].item() < 0.995


def test_multipath_bias_hand_computed_in_a_groove_and_zero_on_a_plane() -> None:
    crop = _crop(1)
    # A tilted plane: no concavity anywhere, no bias.
    ramp = 600.0 + 2.0 * torch.arange(S, dtype=torch.float32).view(1, 1, 1, S).expand(1, 1, S, S)
    assert torch.allclose(multipath_bias(ramp, crop, _gen(), reflectance=(0.2, 0.2)), ramp)
    # A groove 3 px wide and 10 mm deep in a flat surface. At its centre the pairs along
    # 0 and 45/135 deg (both radii) straddle it, the vertical ones do not: F = 6/8, h = 10 mm,
    # r = 0.2 * 0.75 = 0.15, bias = r h / (1 + r).
    depth = torch.full((1, 1, S, S), 600.0)
    depth[..., 47:50] = 610.0
    out = multipath_bias(depth, crop, _gen(), reflectance=(0.2, 0.2))
    assert out[0, 0, 48, 48].item() - 610.0 == pytest.approx(0.15 * 10.0 / 1.15, abs=1e-3)
    assert torch.equal(out[..., 20:30], depth[..., 20:30])  # flat parts away from the groove


def test_amplitude_hand_computed_and_falls_at_grazing_angles() -> None:
    crop = _crop(1, z=1000.0)
    flat = torch.full((1, 1, S, S), 1000.0)
    amp = return_amplitude(flat, torch.ones_like(flat), crop)
    c = S // 2
    # White frontal surface at 1 m near the optical axis: amplitude ~1.
    assert amp[0, 0, c, c].item() == pytest.approx(1.0, abs=2e-3)
    steep = 1000.0 + 20.0 * torch.arange(S, dtype=torch.float32).view(1, 1, 1, S).expand(1, 1, S, S)
    amp_steep = return_amplitude(steep, torch.ones_like(flat), crop)
    assert amp_steep[0, 0, c, c] < 0.5 * amp[0, 0, c, c]


def test_noise_grows_as_amplitude_falls_and_weak_returns_drop() -> None:
    depth = torch.full((2, 1, 64, 64), 700.0)
    amplitude = torch.tensor([1.0, 0.25]).view(2, 1, 1, 1).expand_as(depth)
    noisy = amplitude_noise(depth, amplitude, _gen(), sigma_mm=(1.5, 1.5))
    std = (noisy - depth).flatten(1).std(dim=1)
    assert std[0].item() == pytest.approx(1.5, rel=0.1)
    assert (std[1] / std[0]).item() == pytest.approx(2.0, rel=0.1)
    drop = low_amplitude_dropout(torch.tensor([0.05, 0.2]).view(2, 1, 1, 1), _gen(), threshold=(0.1, 0.1))
    assert drop.flatten().tolist() == [True, False]
    assert round_to_depth_units(torch.tensor([700.4, 700.6, math.inf])).tolist() == [700.0, 701.0, math.inf]


# --------------------------------------------------------------------------------------------
# Active stereo
# --------------------------------------------------------------------------------------------


def test_stereo_half_occlusion_lies_opposite_the_kinect_shadow_and_is_wider() -> None:
    scene = _square_scene(1)
    crop = _crop()
    kinect = projector_shadow(scene.depth_mm, crop)
    stereo = half_occlusion(scene.depth_mm, crop)
    k_cols = kinect[0, 0, 40:60].any(dim=0).nonzero().flatten()
    s_cols = stereo[0, 0, 40:60].any(dim=0).nonzero().flatten()
    assert k_cols.max().item() == 39  # Kinect: left of the square
    assert s_cols.min().item() == 60  # stereo (right imager reference): right of it
    # Width f b (1/z_near - 1/z_far) in crop pixels, 95 mm instead of 75 mm of baseline.
    f = crop.intrinsics.fx * crop.px_per_native.item()
    assert len(s_cols) == pytest.approx(f * STEREO_BASELINE_MM * (1 / 600 - 1 / 900), abs=1.0)
    assert len(s_cols) > len(k_cols) * (STEREO_BASELINE_MM / KINECT_BASELINE_MM) - 1.5
    depth = stereo_sensor_depth_mm(scene, crop, _gen())
    assert (depth[stereo] == 0).all()


def test_edge_fattening_grows_the_foreground() -> None:
    scene = _square_scene(4)
    s = torch.full((4,), 2.0)  # crop px per sensor px
    fat = edge_fattening(scene, s, _gen(), share=(0.2, 0.2))
    area = (fat < 700.0).flatten(1).sum(1).float()
    assert (area > 20 * 20 + 40).all()  # grows by more than half a pixel on every side
    assert torch.equal(fat[..., 0:30, :], scene.depth_mm[..., 0:30, :])  # far from edges unchanged


def test_stereo_noise_grows_with_depth_squared_and_is_spatially_correlated() -> None:
    s = torch.ones(2)
    depth = torch.tensor([500.0, 1000.0]).view(2, 1, 1, 1).expand(2, 1, 64, 64).contiguous()
    noisy = correlated_disparity_noise(depth, s, _gen(), sigma_disparity_px=(0.1, 0.1))
    err = noisy - depth
    std = err.flatten(1).std(dim=1)
    assert (std[1] / std[0]).item() == pytest.approx(4.0, rel=0.15)
    # Neighbouring pixels share their matching window: strong correlation (white noise: ~0).
    e = err[0, 0]
    corr = torch.corrcoef(torch.stack([e[:, :-1].flatten(), e[:, 1:].flatten()]))[0, 1]
    assert corr > 0.6


def test_speckle_holes_are_clustered_and_more_frequent_far_away() -> None:
    s = torch.ones(2)
    depth = torch.tensor([500.0, 1500.0]).view(2, 1, 1, 1).expand(2, 1, 128, 128).contiguous()
    holes = speckle_filter_holes(depth, s, _gen(), fraction_at_1m=(0.01, 0.01))
    frac = holes.flatten(1).float().mean(dim=1)
    assert frac[0] < frac[1]
    assert frac[1].item() == pytest.approx(0.01 * 1.5**2, rel=0.6)
    # Clustered: most hole pixels have a hole neighbour.
    h = holes[1, 0]
    neighbour = h[:, 1:] & h[:, :-1]
    assert neighbour.sum() > 0.5 * h[:, 1:].sum()


# --------------------------------------------------------------------------------------------
# The ideal sensor (content without sensor effects)
# --------------------------------------------------------------------------------------------


def test_ideal_sensor_reports_the_exact_scene_and_zero_where_empty() -> None:
    scene = _square_scene(n=1)
    scene.background_mm[..., :, :10] = math.inf  # no wall on the left edge: nothing to see
    generator = _gen(3)
    state = generator.get_state()
    depth = ideal_sensor(scene, _crop(), generator)
    assert depth.shape == (1, 1, S, S)
    assert depth[0, 0, 50, 50] == 600.0 and depth[0, 0, 10, 80] == 900.0
    assert (depth[..., :, :10] == 0).all()
    assert torch.equal(generator.get_state(), state)  # draws nothing


def test_ideal_sensor_renders_the_targets_hands_without_sensor_effects() -> None:
    """Same poses and scene as the Kinect target (same generator state), no holes or noise."""
    ideal, labels = simulate_target_hands(4, _gen(7), ideal_sensor, size=S)
    kinect, kinect_labels = simulate_kinect_hands(4, _gen(7), size=S)
    assert torch.equal(labels["joints_uvd"], kinect_labels["joints_uvd"])
    foreground = ideal < 0.98
    # Sensor effects make the Kinect crops differ from the exact depth; the ideal crops do not
    # lose foreground pixels to holes or edge dropout.
    assert (kinect[foreground] >= 0.999).sum() > 0
    assert not torch.equal(ideal, kinect)
    assert ideal.min() >= -1 and ideal.max() <= 1
