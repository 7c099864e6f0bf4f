"""The simulator's scene context: bare hand, hand + forearm, hand + forearm + wall."""

from __future__ import annotations

import pytest
import torch

from simgan_hand.render import FAR_VALUE, crop_for_pose
from simgan_hand.simulator import (
    FOREARM_LENGTH_MM,
    FOREARM_RADIUS_MM,
    SCENES,
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
    with pytest.raises(ValueError, match="needs a generator"):
        render_synthetic(pose, crop, scene="hand_arm_wall")
    with pytest.raises(ValueError, match="scene must be one of"):
        HandDepthTask(scene="room")  # type: ignore[arg-type]


def test_task_renders_its_scene() -> None:
    bare = HandDepthTask(scene="hand").synthetic(4, 1, torch.device("cpu"))
    full = HandDepthTask().synthetic(4, 1, torch.device("cpu"))
    assert torch.equal(bare.labels["joints_uvd"], full.labels["joints_uvd"])
    assert (full.images <= bare.images).all() and not torch.equal(full.images, bare.images)
