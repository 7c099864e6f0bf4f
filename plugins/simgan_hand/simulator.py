"""Clean synthetic hand depth: what a simple depth simulator produces.

Every image is an exact ray-cast z-buffer of the kinematic hand (:mod:`simgan_hand.render`):
capsule fingers, an ellipsoid-and-capsule palm, nothing else. No forearm, no background
surfaces, no sensor effects: every pixel holds the exact depth of the hand surface or the far
value. This plays the role of NYU's ``synthdepth`` renders (hand model only, background 0 mm);
:mod:`simgan_hand.kinect` adds what a real Kinect frame has.

Labels (the same for the Kinect-like target given the same generator state):

``joints_uvd`` (N, 14, 3)
    The 14 NYU evaluation joints (:data:`simgan_hand.skeleton.NYU_EVAL_JOINTS`, NYU order):
    crop column ``u`` and row ``v`` in pixels of the ``size x size`` crop (pixel centres at
    integers) and depth ``d`` normalised like the image, ``(z - zc) / (cube / 2)``, not clipped.
    A very long, straight finger of a large hand can reach past the 150 mm half cube, so in
    about 0.2 % of images a joint lies outside ``[0, size - 1]``.
``skeleton_xyz`` (N, J, 3)
    All :data:`simgan_hand.skeleton.JOINT_NAMES` joints in camera space, mm (y down).
``centre_mm`` (N, 3)
    The crop centre (the palm centre, NYU's PALM_3), camera space, mm.
"""

from __future__ import annotations

import torch
from torch import Tensor

from simgan_hand.render import (
    DEFAULT_SIZE,
    CropParams,
    crop_for_pose,
    render_hand_depth_mm,
)
from simgan_hand.skeleton import (
    DEFAULT_CUBE_MM,
    NYU_INTRINSICS,
    CameraIntrinsics,
    HandPose,
    check_count,
    check_generator,
    forward_kinematics,
    sample_hand_pose,
    select_nyu_joints,
)


def hand_labels(
    pose: HandPose, crop: CropParams, joints: Tensor | None = None
) -> dict[str, Tensor]:
    """Labels of N hands in their crops: ``joints_uvd``, ``skeleton_xyz``, ``centre_mm``."""
    if joints is None:
        joints = forward_kinematics(pose)
    return {
        "joints_uvd": select_nyu_joints(crop.project(joints)),
        "skeleton_xyz": joints,
        "centre_mm": crop.centre_mm,
    }


def render_synthetic(pose: HandPose, crop: CropParams, joints: Tensor | None = None) -> Tensor:
    """Clean simulator crops (N, 1, S, S) in [-1, 1] of the given hands (+1 = far/background)."""
    if len(pose) == 0:
        raise ValueError("pose holds no hands; need at least one to render")
    return crop.depth_to_image(render_hand_depth_mm(pose, crop, joints))


def simulate_hands(
    n: int,
    generator: torch.Generator,
    *,
    device: torch.device | str = "cpu",
    size: int = DEFAULT_SIZE,
    cube_mm: float = DEFAULT_CUBE_MM,
    intrinsics: CameraIntrinsics = NYU_INTRINSICS,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Sample N hands and render them with the clean simulator.

    Args:
        n: number of images (> 0).
        generator: torch.Generator on ``device``; fixes the output completely.
        device: where images and labels are produced.
        size: crop side in pixels (224 in the paper; any size >= 8 renders the same geometry).
        cube_mm: side of the metric crop cube.
        intrinsics: the depth camera.

    Returns:
        ``(images, labels)``: images (N, 1, size, size) float32 in [-1, 1]; labels as in the
        module docstring.
    """
    check_count(n)
    dev = check_generator(generator, device)
    pose = sample_hand_pose(n, generator, dev, cube_mm=cube_mm, intrinsics=intrinsics)
    crop = crop_for_pose(pose, size, cube_mm, intrinsics)
    joints = forward_kinematics(pose)
    return render_synthetic(pose, crop, joints), hand_labels(pose, crop, joints)
