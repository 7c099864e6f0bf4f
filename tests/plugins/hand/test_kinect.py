"""Kinect-like target: layout, scene content and each structured-light effect on its own."""

from __future__ import annotations

import math

import pytest
import torch

from simgan_hand.kinect import (
    DISPARITY_STEP_PX,
    KINECT_BASELINE_MM,
    add_depth_noise,
    correlation_window_smoothing,
    depth_discontinuities,
    flying_pixels,
    grazing_dropout,
    occluding_edge_dropout,
    projector_shadow,
    quantise_disparity,
    random_holes,
    render_kinect_scene,
    render_plane_depth,
    sensor_depth_mm,
    simulate_kinect_hands,
)
from simgan_hand.render import FAR_VALUE, crop_for_pose, crop_params, render_hand_depth_mm
from simgan_hand.simulator import simulate_hands
from simgan_hand.skeleton import NYU_INTRINSICS, forward_kinematics, sample_hand_pose

FB = NYU_INTRINSICS.fx * KINECT_BASELINE_MM
S = 96


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _crop(n: int = 1, z: float = 750.0, size: int = S):
    return crop_params(torch.tensor([[0.0, 0.0, z]]).expand(n, 3).contiguous(), out=size)


def _square_scene(n: int = 2, near: float = 600.0, far: float = 900.0) -> tuple[torch.Tensor, torch.Tensor]:
    """A fronto-parallel square at ``near`` mm over a wall at ``far`` mm: (fg, bg) depth maps."""
    fg = torch.full((n, 1, S, S), math.inf)
    fg[..., 40:60, 40:60] = near
    bg = torch.full((n, 1, S, S), far)
    return fg, bg


# --------------------------------------------------------------------------------------------
# Whole generator
# --------------------------------------------------------------------------------------------


def test_layout_and_labels_match_the_simulator() -> None:
    images, labels = simulate_kinect_hands(6, _gen(1), size=64)
    sim, sim_labels = simulate_hands(6, _gen(1), size=64)
    assert images.shape == (6, 1, 64, 64) and images.dtype == torch.float32
    assert images.min() >= -1.0 and images.max() <= 1.0
    assert set(labels) == set(sim_labels)
    for key in labels:
        assert torch.equal(labels[key], sim_labels[key])
    assert ((images - sim).abs().mean((1, 2, 3)) > 0.02).all()


def test_deterministic_per_seed() -> None:
    a, _ = simulate_kinect_hands(4, _gen(2), size=64)
    b, _ = simulate_kinect_hands(4, _gen(2), size=64)
    c, _ = simulate_kinect_hands(4, _gen(3), size=64)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="positive integer"):
        simulate_kinect_hands(0, _gen())
    with pytest.raises(ValueError, match="generator is on device"):
        simulate_kinect_hands(2, _gen(), device="meta")


def test_missing_readings_are_the_far_value() -> None:
    pose = sample_hand_pose(8, _gen(4))
    crop = crop_for_pose(pose, S)
    scene = render_kinect_scene(pose, crop, _gen(5))
    depth = sensor_depth_mm(scene, crop, _gen(6))
    image = crop.depth_to_image(depth)
    clean = crop.depth_to_image(scene.depth_mm)
    lost = (depth == 0) & (clean < FAR_VALUE)
    # Shadows, edges, grazing rims and holes remove readings inside the cube in every image.
    assert (lost.sum((1, 2, 3)) > 10).all()
    assert (image[lost] == FAR_VALUE).all()


# --------------------------------------------------------------------------------------------
# Scene
# --------------------------------------------------------------------------------------------


def test_forearm_and_background_are_present() -> None:
    n = 24
    pose = sample_hand_pose(n, _gen(7))
    crop = crop_for_pose(pose, 64)
    joints = forward_kinematics(pose)
    scene = render_kinect_scene(pose, crop, _gen(8), joints)
    forearm_seen = (scene.forearm_mm < scene.hand_mm) & torch.isfinite(scene.forearm_mm)
    assert (forearm_seen.sum((1, 2, 3)) > 20).float().mean() > 0.9
    # The background plane reaches into the crop cube in a good share of images ...
    plane_in_cube = crop.depth_to_image(scene.background_mm) < FAR_VALUE
    assert (plane_in_cube.sum((1, 2, 3)) > 50).float().mean() > 0.25
    # ... and never cuts through the hand.
    hand = torch.isfinite(scene.hand_mm)
    assert (scene.hand_mm[hand] < scene.background_mm[hand]).all()
    # The target hand model is a little fleshier than the simulator's.
    sim_area = torch.isfinite(render_hand_depth_mm(pose, crop, joints)).float().sum((1, 2, 3))
    assert (hand.float().sum((1, 2, 3)) > sim_area).float().mean() > 0.9


def test_plane_depth_by_hand() -> None:
    crop = _crop()
    normal = torch.tensor([[0.0, 0.0, 1.0]])
    z = render_plane_depth(normal, torch.tensor([880.0]), crop)
    assert torch.allclose(z, torch.full_like(z, 880.0))
    tilted = torch.nn.functional.normalize(torch.tensor([[0.0, 1.0, 1.0]]), dim=1)
    z = render_plane_depth(tilted, torch.tensor([880.0 / math.sqrt(2)]), crop)
    # y + z = 880 with y = z * ray_y: lower rows (y > 0) are nearer.
    assert z[0, 0, 47, 47].item() == pytest.approx(880.0 / (1.0 + crop.pixel_rays()[1][0, 47, 0].item()), rel=1e-5)
    assert z[0, 0, -1, 0] < z[0, 0, 0, 0]


# --------------------------------------------------------------------------------------------
# Sensor effects
# --------------------------------------------------------------------------------------------


def test_noise_std_grows_with_depth_squared() -> None:
    near = torch.full((64, 1, 32, 32), 500.0)
    far = torch.full((64, 1, 32, 32), 900.0)
    sigma = (0.08, 0.08)
    noisy_near = add_depth_noise(near, _gen(1), sigma)
    noisy_far = add_depth_noise(far, _gen(1), sigma)
    std_near, std_far = (noisy_near - 500).std(), (noisy_far - 900).std()
    assert std_near.item() == pytest.approx(500.0**2 * 0.08 / FB, rel=0.05)
    assert (std_far / std_near).item() == pytest.approx((900 / 500) ** 2, rel=0.05)
    assert abs((noisy_far - 900).mean().item()) < 0.1
    # No reading stays no reading.
    empty = torch.full((2, 1, 8, 8), math.inf)
    assert torch.isinf(add_depth_noise(empty, _gen())).all()


def test_quantisation_step_grows_with_depth() -> None:
    def steps(z0: float) -> torch.Tensor:
        ramp = torch.linspace(z0, z0 + 40.0, 4001).view(1, 1, 1, -1)
        levels = torch.unique(quantise_disparity(ramp))
        return levels.diff()

    near, far = steps(500.0).median(), steps(900.0).median()
    assert near.item() == pytest.approx(520.0**2 * DISPARITY_STEP_PX / FB, rel=0.05)
    assert (far / near).item() == pytest.approx((900 / 500) ** 2, rel=0.1)
    # Quantised depths are exact disparity levels.
    z = quantise_disparity(torch.full((1, 1, 1, 1), 777.0))
    assert (FB / z / DISPARITY_STEP_PX - (FB / z / DISPARITY_STEP_PX).round()).abs().max() < 1e-3


def test_projector_shadow_falls_on_the_far_side_from_the_projector() -> None:
    fg, bg = _square_scene(1)
    depth = torch.minimum(fg, bg)
    crop = _crop()
    shadow = projector_shadow(depth, crop)
    width = FB * (1 / 600 - 1 / 900) * crop.px_per_native.item()  # ~10 crop px
    cols = shadow[0, 0, 40:60].any(dim=0).nonzero().flatten()
    assert len(cols) > 0
    # Projector on the image right (+x): the shadow is a strip just LEFT of the square.
    assert cols.max().item() == 39
    # Background column u is shadowed iff u > 40 - width (the square's left edge moved by the
    # disparity difference).
    assert 40 - width - 1e-3 < cols.min().item() <= 40 - width + 1 + 1e-3
    assert not shadow[..., :, 60:].any() and not shadow[..., 40:60, 40:60].any()
    assert not shadow[..., :40, :].any() and not shadow[..., 60:, :].any()
    # A projector on the other side mirrors the shadow.
    mirrored = projector_shadow(depth, crop, baseline_mm=-KINECT_BASELINE_MM)
    cols = mirrored[0, 0, 40:60].any(dim=0).nonzero().flatten()
    assert cols.min().item() == 60 and not mirrored[..., :, :40].any()


def test_flying_pixels_lie_between_foreground_and_background() -> None:
    fg, bg = _square_scene(4)
    depth = torch.minimum(fg, bg)
    crop = _crop(4)
    out, flying = flying_pixels(depth, crop.px_per_native, _gen(1), probability=(1.0, 1.0))
    assert flying.sum() > 50
    values = out[flying]
    assert (values > 600.0).all() and (values < 900.0).all()
    edge, _, _ = depth_discontinuities(depth)
    assert (flying <= edge).all()
    assert torch.equal(out[~flying], depth[~flying])


def test_edge_dropout_only_on_occluding_edges() -> None:
    fg, bg = _square_scene(4)
    depth = torch.minimum(fg, bg)
    crop = _crop(4)
    drop = occluding_edge_dropout(depth, crop.px_per_native, _gen(2), probability=(1.0, 1.0))
    edge, _, _ = depth_discontinuities(depth)
    assert drop.sum() > 50 and (drop <= edge).all()
    # The edge is the square's outline on both sides (3x3 neighbourhoods): 22^2 - 18^2 px.
    assert (edge.sum((1, 2, 3)) == 22 * 22 - 18 * 18).all()
    assert not edge[..., :30, :].any()


def test_grazing_surfaces_lose_their_readings() -> None:
    crop = _crop(2)
    steep = torch.nn.functional.normalize(torch.tensor([[math.sin(math.radians(85)), 0.0, math.cos(math.radians(85))]]), dim=1)
    mild = torch.nn.functional.normalize(torch.tensor([[math.sin(math.radians(30)), 0.0, math.cos(math.radians(30))]]), dim=1)
    normals = torch.cat([steep, mild])
    depth = render_plane_depth(normals, torch.tensor([750.0 * normals[0, 2].item(), 750.0 * normals[1, 2].item()]), crop)
    valid = torch.isfinite(depth)
    drop = grazing_dropout(depth, crop, _gen(), max_angle_deg=(75.0, 75.0))
    assert drop[0][valid[0]].float().mean() > 0.9
    assert not drop[1].any()


def test_correlation_window_rounds_corners_and_closes_thin_gaps() -> None:
    fg, bg = _square_scene(1)
    fg[..., 40:60, 50] = math.inf  # a one-pixel slit through the square
    crop = _crop(1, size=S)
    px = torch.tensor([2.0])  # a coarse window: sigma 2-3.6 crop px
    out = correlation_window_smoothing(fg, bg, px, _gen(), sigma_native=(1.5, 1.5))
    is_fg = out < 800
    assert is_fg[0, 0, 45:55, 50].all()  # the slit is closed
    assert not is_fg[0, 0, 40, 40] and not is_fg[0, 0, 59, 59]  # corners are rounded
    assert torch.allclose(out[0, 0, 45:55, 44:47], torch.tensor(600.0))  # flat inside
    assert torch.equal(out[~is_fg], bg[~is_fg])  # background untouched
    assert crop.size == S


def test_random_holes_are_small_blobs() -> None:
    n = 16
    px = torch.full((n,), 1.0)
    holes = random_holes((n, 1, S, S), px, _gen(3), count=(3, 6), radius_native=(2.0, 3.0))
    area = holes.float().sum((1, 2, 3))
    assert (area > 0).all()
    # 3-6 discs of radius 2-3 px: at most ~6 * pi * 9 pixels.
    assert (area < 6 * math.pi * 9 + 12).all() and area.mean() > 3 * math.pi * 4 * 0.5
    none = random_holes((n, 1, S, S), px, _gen(3), count=(0, 0))
    assert not none.any()


def test_sensor_chain_keeps_values_near_the_clean_depth() -> None:
    """Away from edges, the sensor moves depth by noise and quantisation only (mm scale)."""
    pose = sample_hand_pose(6, _gen(9))
    crop = crop_for_pose(pose, S)
    scene = render_kinect_scene(pose, crop, _gen(10))
    depth = sensor_depth_mm(scene, crop, _gen(11))
    clean = scene.depth_mm
    edge, _, _ = depth_discontinuities(clean)
    far_from_edges = ~torch.nn.functional.max_pool2d(edge.float(), 9, 1, 4).bool()
    keep = (depth > 0) & far_from_edges & torch.isfinite(clean)
    diff = (depth - clean)[keep].abs()
    assert keep.sum() > 1000
    assert diff.median() < 3.0 and diff.quantile(0.99) < 15.0
