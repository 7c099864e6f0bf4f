"""The simulator's scene context: bare hand, hand + forearm, hand + forearm + wall, randomised."""

from __future__ import annotations

import pytest
import torch

import math

from simgan_hand.render import FAR_VALUE, crop_for_pose, hand_primitives, render_plane_depth, render_primitives
from simgan_hand.simulator import (
    FOREARM_LENGTH_MM,
    FOREARM_RADIUS_MM,
    SCENES,
    random_forearm,
    random_hand_shape,
    random_plane,
    render_randomised_context_mm,
    render_synthetic,
    simulate_hands,
    simulator_wall_mm,
)
from simgan_hand.skeleton import forward_kinematics, sample_hand_pose
from simgan_hand.task import HandDepthTask


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_labels_do_not_depend_on_the_scene() -> None:
    labels = [simulate_hands(6, _gen(3), size=64, scene=s)[1] for s in SCENES]
    for other in labels[1:]:
        assert all(torch.equal(labels[0][k], other[k]) for k in labels[0])


def test_context_only_adds_nearer_surfaces_and_the_hand_is_unchanged() -> None:
    hand, _ = simulate_hands(8, _gen(4), size=96, scene="hand")
    arm, _ = simulate_hands(8, _gen(4), size=96, scene="hand_arm")
    full, _ = simulate_hands(8, _gen(4), size=96, scene="hand_arm_wall")
    # Adding surfaces can only bring depth nearer (a z-buffer min), never push it away.
    assert (arm <= hand).all() and (full <= arm).all()
    # The forearm covers new pixels in every image (it always leaves the 300 mm cube's crop).
    assert ((arm < FAR_VALUE) & (hand == FAR_VALUE)).flatten(1).any(1).all()
    # The wall lies behind the hand: where the hand is seen, it still is.
    on_hand = hand < FAR_VALUE
    assert torch.equal(full[on_hand], arm[on_hand])


def test_forearm_axis_points_are_seen_at_their_front_surface() -> None:
    """A point 100 mm down the forearm axis projects onto forearm pixels whose depth is the
    capsule's front surface: between (z - radius) and z, by hand from the capsule geometry."""
    pose = sample_hand_pose(16, _gen(5))
    crop = crop_for_pose(pose, 224)
    joints = forward_kinematics(pose)
    image = render_synthetic(pose, crop, joints, scene="hand_arm")
    proximal = (pose.rotation @ torch.tensor([0.0, -1.0, 0.0]).view(1, 3, 1)).squeeze(-1)
    s = pose.scale.view(-1, 1)
    point = joints[:, 0] + 100.0 * s * proximal
    uvd = crop.project(point.unsqueeze(1))[:, 0]
    checked = 0
    for i in range(16):
        u, v = uvd[i, :2].round().long().tolist()
        if not (0 <= u < 224 and 0 <= v < 224):
            continue  # the axis point leaves the crop for a forearm pointing out of view
        value = image[i, 0, v, u]
        if value == FAR_VALUE:
            continue  # occluded by nothing but beyond the cube: the arm recedes past zc + 150 mm
        depth_mm = value * 150.0 + crop.centre_mm[i, 2]
        r = FOREARM_RADIUS_MM * pose.scale[i]
        # The hand may occlude the arm (nearer still), but nothing is seen behind the arm's front.
        assert depth_mm <= point[i, 2] + 1.0
        assert depth_mm >= point[i, 2] - r - 40.0  # hand in front: at most a palm thickness more
        checked += 1
    assert checked >= 8
    assert FOREARM_LENGTH_MM > 100.0


def test_wall_is_fronto_parallel_behind_the_hand_in_about_half_the_images() -> None:
    pose = sample_hand_pose(400, _gen(6))
    crop = crop_for_pose(pose, 16)
    joints = forward_kinematics(pose)
    wall = simulator_wall_mm(joints, crop, _gen(7))
    present = torch.isfinite(wall).flatten(1).any(1)
    assert 0.4 < present.float().mean() < 0.6
    z = wall[present]
    flat = wall[present].flatten(1)
    finite = torch.isfinite(flat)
    # One depth per image (a plane facing the camera), 20-200 mm behind the farthest joint.
    per_image = torch.where(finite, flat, flat.nan_to_num(posinf=0)).amax(1)
    assert ((flat == per_image[:, None]) | ~finite).all()
    gap = per_image - joints[present][..., 2].amax(1)
    assert gap.min() >= 20.0 - 1e-3 and gap.max() <= 200.0 + 1e-3
    assert z.numel() > 0


def test_wall_in_the_image_has_its_normalised_depth() -> None:
    pose = sample_hand_pose(64, _gen(8))
    crop = crop_for_pose(pose, 64)
    joints = forward_kinematics(pose)
    image = render_synthetic(pose, crop, joints, scene="hand_arm_wall", generator=_gen(9))
    wall = simulator_wall_mm(joints, crop, _gen(9))
    corner = image[:, 0, 0, 0]  # the top-left corner: background or wall in these poses
    expected = ((wall[:, 0, 0, 0] - crop.centre_mm[:, 2]) / 150.0).clamp(max=FAR_VALUE)
    expected = expected.nan_to_num(posinf=FAR_VALUE)
    hand_free = render_synthetic(pose, crop, joints, scene="hand_arm")[:, 0, 0, 0] == FAR_VALUE
    assert hand_free.sum() > 32
    assert torch.allclose(corner[hand_free], expected[hand_free], atol=1e-5)


def test_bad_scene_and_missing_generator_are_clear_errors() -> None:
    pose = sample_hand_pose(2, _gen())
    crop = crop_for_pose(pose, 32)
    with pytest.raises(ValueError, match="scene must be one of"):
        render_synthetic(pose, crop, scene="room")  # type: ignore[arg-type]
    for scene in ("hand_arm_wall", "randomised"):
        with pytest.raises(ValueError, match=f"scene '{scene}' needs a generator"):
            render_synthetic(pose, crop, scene=scene)
    with pytest.raises(ValueError, match="scene must be one of"):
        HandDepthTask(scene="room")  # type: ignore[arg-type]


def test_task_renders_its_scene() -> None:
    bare = HandDepthTask(scene="hand").synthetic(4, 1, torch.device("cpu"))
    full = HandDepthTask(scene="hand_arm_wall").synthetic(4, 1, torch.device("cpu"))
    assert torch.equal(bare.labels["joints_uvd"], full.labels["joints_uvd"])
    assert (full.images <= bare.images).all() and not torch.equal(full.images, bare.images)


# ---------------------------------------------------------------- the randomised scene


def test_randomised_hand_shape_ranges_and_knuckles_in_about_half() -> None:
    shape = random_hand_shape(2000, _gen(10), torch.device("cpu"))
    assert 0.95 <= shape["finger_radius"].min() and shape["finger_radius"].max() <= 1.15
    assert 0.95 <= shape["palm_thickness"].min() and shape["palm_thickness"].max() <= 1.3
    bumps = shape["knuckles"] > 0
    assert 0.45 < bumps.float().mean() < 0.55
    assert 0.9 <= shape["knuckles"][bumps].min() and shape["knuckles"][bumps].max() <= 1.15


def test_randomised_forearm_leaves_the_wrist_bent_by_at_most_the_drawn_angles() -> None:
    pose = sample_hand_pose(500, _gen(11))
    joints = forward_kinematics(pose)
    arm = random_forearm(pose, joints, _gen(12))
    assert arm.capsule_a.shape == (500, 2, 3) and arm.capsule_radius.shape == (500, 2)
    torch.testing.assert_close(arm.capsule_a[:, 0], joints[:, 0])  # starts at the wrist
    torch.testing.assert_close(arm.capsule_a[:, 1], arm.capsule_b[:, 0])  # the two parts join
    s = pose.scale
    direction = arm.capsule_b[:, 1] - joints[:, 0]
    torch.testing.assert_close(direction.norm(dim=1), 280.0 * s)
    proximal = (pose.rotation @ torch.tensor([0.0, -1.0, 0.0]).view(1, 3, 1)).squeeze(-1)
    bend = torch.rad2deg(torch.acos((direction / direction.norm(dim=1, keepdim=True) * proximal).sum(1).clamp(-1, 1)))
    # flexion <= 40 and deviation <= 20 degrees about perpendicular axes: the bend is at most
    # acos(cos 40 cos 20) = 44.0 degrees; a straight arm (the other scenes) is rare
    assert bend.max() <= math.degrees(math.acos(math.cos(math.radians(40)) * math.cos(math.radians(20)))) + 1e-3
    assert (bend > 20).float().mean() > 0.4
    r_wrist, r_arm = arm.capsule_radius.unbind(1)
    assert (19.0 * s - 1e-4 <= r_wrist).all() and (r_wrist <= 27.0 * s + 1e-4).all()
    assert (r_arm >= r_wrist - 1e-4).all() and (r_arm <= 1.45 * r_wrist + 1e-4).all()


def test_randomised_plane_clears_the_hand_and_is_a_wall_or_a_table() -> None:
    pose = sample_hand_pose(1000, _gen(13))
    joints = forward_kinematics(pose)
    normal, offset = random_plane(pose, joints, _gen(14))
    present = torch.isfinite(offset)
    assert 0.87 < present.float().mean() < 0.93
    torch.testing.assert_close(normal.norm(dim=1), torch.ones(1000))
    # every joint lies on the camera's side, 12 mm (scaled with the hand) + 5 to 220 mm before the plane
    clearance = offset[present] - (joints[present] * normal[present].unsqueeze(1)).sum(-1).amax(1)
    skin = 12.0 * pose.scale[present]
    assert (clearance >= skin + 5.0 - 1e-3).all() and (clearance <= skin + 220.0 + 1e-3).all()
    # walls face the camera (normal mostly +z); tables lie under the hand (normal mostly +y, down)
    table = normal[:, 1] > normal[:, 2].abs() * math.tan(math.radians(25))
    assert 0.4 < table.float().mean() < 0.6
    assert (normal[:, 2] >= math.sin(math.radians(5)) - 1e-5).all()  # seen from the front or above


def test_randomised_scene_is_its_parts_and_never_hides_the_hand() -> None:
    pose = sample_hand_pose(12, _gen(15))
    crop = crop_for_pose(pose, 64)
    joints = forward_kinematics(pose)
    g = _gen(16)  # the parts drawn in the scene's order from one generator
    hand = render_primitives(hand_primitives(pose, joints, **random_hand_shape(12, g, pose.device)), crop)
    forearm = render_primitives(random_forearm(pose, joints, g), crop)
    normal, offset = random_plane(pose, joints, g)
    plane = render_plane_depth(normal, offset, crop)
    scene = render_randomised_context_mm(pose, crop, joints, _gen(16))
    torch.testing.assert_close(scene, torch.minimum(torch.minimum(hand, forearm), plane))
    on_hand = torch.isfinite(hand)
    assert on_hand.any() and (plane[on_hand] > hand[on_hand]).all()  # the plane stays behind the hand
    image = render_synthetic(pose, crop, joints, scene="randomised", generator=_gen(16))
    torch.testing.assert_close(image, crop.depth_to_image(scene))
    assert not torch.equal(image, render_synthetic(pose, crop, joints, scene="randomised", generator=_gen(17)))


def test_hand_depth_renders_the_randomised_scene_and_hand_depth_wall_the_old_one(registry) -> None:
    task = registry.create("task", "hand_depth")
    base = registry.create("task", "hand_depth_wall")
    assert (task.scene, base.scene) == ("randomised", "hand_arm_wall")
    cpu = torch.device("cpu")
    assert torch.equal(task.target(2, 5, cpu), base.target(2, 5, cpu))
    ours, theirs = task.synthetic(3, 6, cpu), base.synthetic(3, 6, cpu)
    assert torch.equal(ours.labels["joints_uvd"], theirs.labels["joints_uvd"])
    assert not torch.equal(ours.images, theirs.images)
