"""Clean synthetic hand depth: what a simple depth simulator produces.

Every image is an exact ray-cast z-buffer of the kinematic hand (:mod:`simgan_hand.render`):
capsule fingers, an ellipsoid-and-capsule palm and, depending on the scene (:data:`SCENES`),
the simulator's own simple context:

``"hand"``
    the hand model only, like NYU's ``synthdepth`` renders (background 0 mm);
``"hand_arm"``
    plus a forearm: one straight capsule leaving the wrist along the hand's axis, as hand models
    with a forearm stub (e.g. LibHand) render it;
``"hand_arm_wall"``
    plus, in half of the images, a wall facing the camera 20-200 mm behind the hand.

No sensor effects: every pixel holds the exact depth of the nearest surface or the far value.
The context is deliberately cruder than the target's (:mod:`simgan_hand.kinect`: bent wrist,
two-part forearm, tilted walls and tables): it is what a simulator author knows about the
scene without measuring it.

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

import math
from typing import Literal

import torch
from torch import Tensor

from simgan_hand.render import (
    DEFAULT_SIZE,
    CropParams,
    Primitives,
    crop_for_pose,
    mask_outside_frame,
    render_hand_depth_mm,
    render_primitives,
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


Scene = Literal["hand", "hand_arm", "hand_arm_wall"]
#: What the simulator can render around the hand, from the bare hand model to a simple scene.
SCENES: tuple[str, ...] = ("hand", "hand_arm", "hand_arm_wall")
#: Forearm capsule of the reference hand (scaled with the hand): radius and length, mm.
FOREARM_RADIUS_MM = 24.0
FOREARM_LENGTH_MM = 260.0


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


def simulator_forearm(pose: HandPose, joints: Tensor) -> Primitives:
    """One capsule (N, 1) per hand: the forearm leaving the wrist straight along the hand's
    proximal axis (no wrist bend), radius and length scaled with the hand."""
    n, dev = len(pose), pose.device
    s = pose.scale.view(n, 1)
    proximal = (pose.rotation @ torch.tensor([0.0, -1.0, 0.0], device=dev).view(1, 3, 1)).squeeze(-1)
    wrist = joints[:, 0]
    empty3 = torch.zeros(n, 0, 3, device=dev)
    return Primitives(
        capsule_a=wrist.unsqueeze(1),
        capsule_b=(wrist + FOREARM_LENGTH_MM * s * proximal).unsqueeze(1),
        capsule_radius=FOREARM_RADIUS_MM * s,
        ellipsoid_centre=empty3,
        ellipsoid_axes=torch.zeros(n, 0, 3, 3, device=dev),
        ellipsoid_radii=empty3,
    )


def simulator_wall_mm(joints: Tensor, crop: CropParams, generator: torch.Generator) -> Tensor:
    """Depth (N, 1, S, S) mm of a wall facing the camera 20-200 mm behind each hand's farthest
    joint, present in half of the images (inf elsewhere). Draws 2 numbers per image."""
    n, dev = joints.shape[0], joints.device
    present = torch.rand(n, generator=generator, device=dev) < 0.5
    gap = 20.0 + 180.0 * torch.rand(n, generator=generator, device=dev)
    z = torch.where(present, joints[..., 2].amax(dim=1) + gap, torch.full_like(gap, math.inf))
    wall = z.view(n, 1, 1, 1).expand(n, 1, crop.size, crop.size).contiguous()
    return mask_outside_frame(wall, crop)


def render_synthetic(
    pose: HandPose,
    crop: CropParams,
    joints: Tensor | None = None,
    *,
    scene: Scene = "hand",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Clean simulator crops (N, 1, S, S) in [-1, 1] of the given hands (+1 = far/background).

    ``scene`` is one of :data:`SCENES`; ``"hand_arm_wall"`` needs ``generator`` (wall draws).
    """
    if len(pose) == 0:
        raise ValueError("pose holds no hands; need at least one to render")
    if scene not in SCENES:
        raise ValueError(f"scene must be one of {SCENES}, got {scene!r}")
    if joints is None:
        joints = forward_kinematics(pose)
    depth = render_hand_depth_mm(pose, crop, joints)
    if scene != "hand":
        depth = torch.minimum(depth, render_primitives(simulator_forearm(pose, joints), crop))
    if scene == "hand_arm_wall":
        if generator is None:
            raise ValueError("scene 'hand_arm_wall' needs a generator for the wall")
        depth = torch.minimum(depth, simulator_wall_mm(joints, crop, generator))
    return crop.depth_to_image(depth)


def simulate_hands(
    n: int,
    generator: torch.Generator,
    *,
    device: torch.device | str = "cpu",
    size: int = DEFAULT_SIZE,
    cube_mm: float = DEFAULT_CUBE_MM,
    intrinsics: CameraIntrinsics = NYU_INTRINSICS,
    scene: Scene = "hand",
) -> tuple[Tensor, dict[str, Tensor]]:
    """Sample N hands and render them with the clean simulator.

    Args:
        n: number of images (> 0).
        generator: torch.Generator on ``device``; fixes the output completely.
        device: where images and labels are produced.
        size: crop side in pixels (224 in the paper; any size >= 8 renders the same geometry).
        cube_mm: side of the metric crop cube.
        intrinsics: the depth camera.
        scene: what is rendered around the hand, one of :data:`SCENES`.

    Returns:
        ``(images, labels)``: images (N, 1, size, size) float32 in [-1, 1]; labels as in the
        module docstring.
    """
    check_count(n)
    dev = check_generator(generator, device)
    pose = sample_hand_pose(n, generator, dev, cube_mm=cube_mm, intrinsics=intrinsics)
    crop = crop_for_pose(pose, size, cube_mm, intrinsics)
    joints = forward_kinematics(pose)
    images = render_synthetic(pose, crop, joints, scene=scene, generator=generator)
    return images, hand_labels(pose, crop, joints)
