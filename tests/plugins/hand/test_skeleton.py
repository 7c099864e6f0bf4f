"""Kinematic hand: joint layout, NYU joint mapping, camera model, pose sampling and kinematics."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from simgan_hand.skeleton import (
    ABDUCTION_LIMITS_DEG,
    FINGER_BASE,
    FINGER_BONES,
    FLEXION_LIMITS_DEG,
    HAND_CENTRE_JOINT,
    JOINT_NAMES,
    NUM_JOINTS,
    NYU_EVAL_INDICES,
    NYU_EVAL_NAMES,
    NYU_INTRINSICS,
    SCALE_RANGE,
    HandPose,
    forward_kinematics,
    global_rotation,
    sample_hand_pose,
    select_nyu_joints,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _posed(pose: HandPose, **changes: torch.Tensor) -> HandPose:
    return dataclasses.replace(pose, **changes)


def _front_facing(pose: HandPose) -> HandPose:
    """The same hands, palm to the camera, fingers straight up in the image."""
    zero = torch.zeros(len(pose))
    return _posed(pose, rotation=global_rotation(zero, zero, zero))


# --------------------------------------------------------------------------------------------
# Layout and the NYU joints
# --------------------------------------------------------------------------------------------


def test_joint_layout() -> None:
    assert NUM_JOINTS == len(JOINT_NAMES) == 24
    assert len(set(JOINT_NAMES)) == NUM_JOINTS
    assert JOINT_NAMES[HAND_CENTRE_JOINT] == "palm_centre"
    assert len(FINGER_BONES) == 15
    for base, finger in zip(FINGER_BASE, ("thumb", "index", "middle", "ring", "little")):
        assert JOINT_NAMES[base].startswith(finger) and JOINT_NAMES[base + 3] == f"{finger}_tip"


def test_nyu_eval_joints_follow_deepprior_order() -> None:
    # data-formats.md 4.4: restricted joints [0, 3, 6, ..., 32] in this order.
    assert NYU_EVAL_NAMES == (
        "F1_KNU3_A", "F1_KNU2_B", "F2_KNU3_A", "F2_KNU2_B", "F3_KNU3_A", "F3_KNU2_B",
        "F4_KNU3_A", "F4_KNU2_B", "TH_KNU3_A", "TH_KNU3_B", "TH_KNU2_B",
        "PALM_1", "PALM_2", "PALM_3",
    )
    ours = [JOINT_NAMES[i] for i in NYU_EVAL_INDICES]
    # F1 = little, F2 = ring, F3 = middle, F4 = index; KNU3_A = tip, KNU2_B = PIP.
    assert ours[:8] == [
        "little_tip", "little_pip", "ring_tip", "ring_pip",
        "middle_tip", "middle_pip", "index_tip", "index_pip",
    ]
    assert ours[8:11] == ["thumb_tip", "thumb_ip", "thumb_mcp"]
    assert ours[13] == "palm_centre"
    assert set(ours[11:13]) == {"wrist_ulnar", "wrist_radial"}


def test_select_nyu_joints() -> None:
    joints = torch.arange(2 * NUM_JOINTS * 3, dtype=torch.float32).view(2, NUM_JOINTS, 3)
    picked = select_nyu_joints(joints)
    assert picked.shape == (2, 14, 3)
    assert torch.equal(picked[:, 0], joints[:, JOINT_NAMES.index("little_tip")])
    with pytest.raises(ValueError, match="shape"):
        select_nyu_joints(joints[:, :20])


# --------------------------------------------------------------------------------------------
# Camera
# --------------------------------------------------------------------------------------------


def test_pinhole_projection_by_hand() -> None:
    point = torch.tensor([[100.0, -50.0, 800.0]])
    uvz = NYU_INTRINSICS.project(point)
    u = 588.036865 * 100.0 / 800.0 + 320.0  # 393.5046...
    v = 587.075073 * -50.0 / 800.0 + 240.0  # 203.3078... (y down: above the centre)
    assert uvz[0, 0].item() == pytest.approx(u, abs=1e-3)
    assert uvz[0, 1].item() == pytest.approx(v, abs=1e-3)
    assert uvz[0, 2].item() == 800.0
    assert torch.allclose(NYU_INTRINSICS.backproject(uvz), point, atol=1e-3)


# --------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------


def test_sampled_angles_respect_limits() -> None:
    pose = sample_hand_pose(4000, _gen(1))
    flex = torch.rad2deg(pose.flexion)
    abd = torch.rad2deg(pose.abduction)
    lim_f = torch.tensor(FLEXION_LIMITS_DEG)
    lim_a = torch.tensor(ABDUCTION_LIMITS_DEG)
    eps = 1e-3
    assert (flex >= lim_f[..., 0] - eps).all() and (flex <= lim_f[..., 1] + eps).all()
    assert (abd >= lim_a[..., 0] - eps).all() and (abd <= lim_a[..., 1] + eps).all()
    # The poses are varied: open hands and fists both occur.
    pip = flex[:, 1:, 1].mean(dim=1)
    assert (pip < 20).float().mean() > 0.05 and (pip > 70).float().mean() > 0.05


def test_sampled_size_position_and_orientation() -> None:
    pose = sample_hand_pose(4000, _gen(2))
    assert (pose.scale >= SCALE_RANGE[0]).all() and (pose.scale <= SCALE_RANGE[1]).all()
    assert pose.scale.std() > 0.05
    z = pose.centre[:, 2]
    assert (z >= 500).all() and (z <= 900).all()
    rot = pose.rotation
    assert torch.allclose(rot @ rot.transpose(1, 2), torch.eye(3).expand_as(rot), atol=1e-5)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(4000), atol=1e-5)
    # Fingers point up in the image within the roll range (the hand's distal axis is column 1).
    distal = rot[:, :, 1]
    roll = torch.rad2deg(torch.atan2(distal[:, 0], -distal[:, 1]))
    assert roll.abs().max() <= 75.0 + 1e-3
    # Palm or back towards the camera, never edge-on: |cos| of the palm normal vs the optical
    # axis stays >= cos(35 deg) cos(80 deg).
    normal_z = rot[:, 2, 2]
    assert normal_z.abs().min() > math.cos(math.radians(35)) * math.cos(math.radians(80)) - 1e-4
    palm_facing = (normal_z < 0).float().mean()
    assert 0.5 < palm_facing < 0.7


def test_crop_window_stays_in_frame() -> None:
    pose = sample_hand_pose(2000, _gen(3))
    uvz = NYU_INTRINSICS.project(pose.centre)
    half_w = 150.0 * NYU_INTRINSICS.fx / uvz[:, 2]
    half_h = 150.0 * NYU_INTRINSICS.fy / uvz[:, 2]
    assert (uvz[:, 0] - half_w >= 0).all() and (uvz[:, 0] + half_w <= 640).all()
    assert (uvz[:, 1] - half_h >= 0).all() and (uvz[:, 1] + half_h <= 480).all()


def test_deterministic_per_seed() -> None:
    a, b, c = (sample_hand_pose(8, _gen(s)) for s in (5, 5, 6))
    for f in dataclasses.fields(HandPose):
        assert torch.equal(getattr(a, f.name), getattr(b, f.name))
    assert not torch.equal(a.flexion, c.flexion)


def test_bad_inputs_raise() -> None:
    for n in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="positive integer"):
            sample_hand_pose(n, _gen())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="generator is on device"):
        sample_hand_pose(4, _gen(), device="meta")
    with pytest.raises(ValueError, match="torch.Generator"):
        sample_hand_pose(4, 0)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Forward kinematics
# --------------------------------------------------------------------------------------------


def test_bones_keep_their_lengths() -> None:
    pose = sample_hand_pose(256, _gen(4))
    joints = forward_kinematics(pose)
    assert joints.shape == (256, NUM_JOINTS, 3)
    lengths = torch.stack([(joints[:, c] - joints[:, p]).norm(dim=1) for p, c in FINGER_BONES], dim=1)
    assert torch.allclose(lengths, pose.bone_lengths().reshape(256, 15), rtol=1e-4)


def test_palm_centre_is_the_pose_centre() -> None:
    pose = sample_hand_pose(64, _gen(5))
    joints = forward_kinematics(pose)
    assert torch.allclose(joints[:, HAND_CENTRE_JOINT], pose.centre, atol=1e-3)


def test_zero_angles_give_straight_fingers() -> None:
    pose = sample_hand_pose(16, _gen(6))
    pose = _posed(pose, flexion=torch.zeros(16, 5, 3), abduction=torch.zeros(16, 5))
    joints = forward_kinematics(pose)
    for base in FINGER_BASE[1:]:
        chain = joints[:, base : base + 4]
        straight = (chain[:, 3] - chain[:, 0]).norm(dim=1)
        total = (chain[:, 1:] - chain[:, :-1]).norm(dim=2).sum(dim=1)
        assert torch.allclose(straight, total, rtol=1e-5)


def test_front_facing_right_hand_geometry() -> None:
    pose = _front_facing(sample_hand_pose(32, _gen(7)))
    pose = _posed(pose, flexion=torch.zeros(32, 5, 3), abduction=torch.zeros(32, 5))
    j = forward_kinematics(pose)
    idx = {name: i for i, name in enumerate(JOINT_NAMES)}
    # Fingers up (smaller y), thumb on the image right of the little finger (right hand seen
    # from its palm side).
    assert (j[:, idx["middle_tip"], 1] < j[:, idx["wrist"], 1] - 100).all()
    assert (j[:, idx["thumb_tip"], 0] > j[:, idx["little_tip"], 0]).all()
    # Straight fingers lie in the palm plane, here at the palm centre's depth.
    assert torch.allclose(j[:, idx["middle_tip"], 2], pose.centre[:, 2], atol=1e-3)


def test_flexion_curls_fingers_towards_the_palm_side() -> None:
    pose = _front_facing(sample_hand_pose(32, _gen(8)))
    flat = _posed(pose, flexion=torch.zeros(32, 5, 3))
    bent = flat.flexion.clone()
    bent[:, 1] = torch.deg2rad(torch.tensor([60.0, 60.0, 40.0]))
    curled = _posed(flat, flexion=bent)
    tip = JOINT_NAMES.index("index_tip")
    z_flat = forward_kinematics(flat)[:, tip, 2]
    z_curled = forward_kinematics(curled)[:, tip, 2]
    # The palm faces the camera, so curling brings the fingertip nearer to it.
    assert (z_curled < z_flat - 20).all()
