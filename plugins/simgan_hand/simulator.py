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
``"randomised"``
    domain randomisation of the context: a hand model whose soft tissue varies (finger and
    palm thickness, knuckle bumps, :func:`random_hand_shape`), a forearm bent at the wrist with
    a random thickness (:func:`random_forearm`), and in most images a plane (a tilted wall
    behind or a table under the hand, :func:`random_plane`). Its ranges are generic (what a
    capture room may contain), not measured on any one target, and wider than the built-in
    targets' scene.

No sensor effects: every pixel holds the exact depth of the nearest surface or the far value.
The first three contexts are deliberately cruder than the targets' (:mod:`simgan_hand.target_scene`:
bent wrist, two-part forearm, tilted walls and tables): they are what a simulator author knows
about the scene without measuring it. ``"randomised"`` is what one does about not knowing it:
cover a broad range of it (docs/hand.md, "Where the gap comes from").

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
    hand_primitives,
    mask_outside_frame,
    plane_offset_behind,
    render_hand_depth_mm,
    render_plane_depth,
    render_primitives,
    table_normal,
    wall_normal,
)
from simgan_hand.skeleton import (
    DEFAULT_CUBE_MM,
    NYU_INTRINSICS,
    CameraIntrinsics,
    HandPose,
    bent_forearm_direction,
    check_count,
    check_generator,
    forward_kinematics,
    sample_hand_pose,
    select_nyu_joints,
    uniform,
)


Scene = Literal["hand", "hand_arm", "hand_arm_wall", "randomised"]
#: What the simulator can render around the hand, from the bare hand model to a randomised scene.
SCENES: tuple[str, ...] = ("hand", "hand_arm", "hand_arm_wall", "randomised")
#: Scenes that draw random numbers (need a generator).
RANDOM_SCENES: tuple[str, ...] = ("hand_arm_wall", "randomised")
#: Forearm capsule of the reference hand (scaled with the hand): radius and length, mm.
FOREARM_RADIUS_MM = 24.0
FOREARM_LENGTH_MM = 260.0
#: Wrist-to-end length of the ``"randomised"`` scene's forearm (scaled with the hand), mm.
FOREARM_LENGTH_MM_RANDOMISED = 280.0


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
    return Primitives.capsules(wrist.unsqueeze(1), (wrist + FOREARM_LENGTH_MM * s * proximal).unsqueeze(1), FOREARM_RADIUS_MM * s)


def simulator_wall_mm(joints: Tensor, crop: CropParams, generator: torch.Generator) -> Tensor:
    """Depth (N, 1, S, S) mm of a wall facing the camera 20-200 mm behind each hand's farthest
    joint, present in half of the images (inf elsewhere). Draws 2 numbers per image."""
    n, dev = joints.shape[0], joints.device
    present = torch.rand(n, generator=generator, device=dev) < 0.5
    gap = 20.0 + 180.0 * torch.rand(n, generator=generator, device=dev)
    z = torch.where(present, joints[..., 2].amax(dim=1) + gap, torch.full_like(gap, math.inf))
    wall = z.view(n, 1, 1, 1).expand(n, 1, crop.size, crop.size).contiguous()
    return mask_outside_frame(wall, crop)


def random_hand_shape(n: int, generator: torch.Generator, device: torch.device) -> dict[str, Tensor]:
    """Per-image soft-tissue factors of the hand model (keyword arguments of
    :func:`simgan_hand.render.hand_primitives`): finger radius x U(0.95, 1.15), palm thickness
    x U(0.95, 1.3), knuckle bumps in half of the hands (x U(0.9, 1.15) of the bone radius).
    Hands differ in flesh, not in skeleton: the joints (labels) do not move. Draws 4 numbers
    per image."""
    g = generator
    bumps = torch.rand((n,), generator=g, device=device) < 0.5
    return {
        "finger_radius": uniform((n,), 0.95, 1.15, g, device),
        "palm_thickness": uniform((n,), 0.95, 1.3, g, device),
        "knuckles": torch.where(bumps, uniform((n,), 0.9, 1.15, g, device), torch.zeros(n, device=device)),
    }


def random_forearm(pose: HandPose, joints: Tensor, generator: torch.Generator) -> Primitives:
    """Two capsules (N, 2) per hand: a wrist part and a thicker forearm, bent at the wrist.

    The arm leaves the wrist along the hand's proximal axis turned by a flexion of U(-40, 40)
    degrees and a deviation of U(-20, 20) degrees; the wrist part is U(70, 120) mm long with a
    radius of U(19, 27) mm, the forearm reaches 280 mm with x U(1.0, 1.45) that radius (all
    scaled with the hand). Draws 5 numbers per image."""
    n, dev, g = len(pose), pose.device, generator
    s = pose.scale.view(n, 1)
    d = bent_forearm_direction(pose, 40.0, 20.0, g)
    wrist = joints[:, 0]
    elbow_side = wrist + uniform((n, 1), 70.0, 120.0, g, dev) * s * d
    r_wrist = uniform((n, 1), 19.0, 27.0, g, dev) * s
    r_arm = r_wrist * uniform((n, 1), 1.0, 1.45, g, dev)
    return Primitives.capsules(torch.stack([wrist, elbow_side], dim=1),
                               torch.stack([elbow_side, wrist + FOREARM_LENGTH_MM_RANDOMISED * s * d], dim=1),
                               torch.cat([r_wrist, r_arm], dim=1))


def random_plane(pose: HandPose, joints: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """A plane near each hand, present in 90 % of the images: unit normal (N, 3) and offset (N,)
    mm of ``{p : normal . p = offset}`` (offset inf where there is none: no ray meets such a
    plane, :func:`simgan_hand.render.render_plane_depth` gives inf everywhere).

    Half are walls behind the hand tilted by U(-35, 35) degrees about both image axes, half are
    tables under it seen from U(5, 65) degrees above with a roll of U(-20, 20) degrees. The
    plane keeps U(5, 220) mm clear of the hand's surface (its farthest joint along the normal
    plus a 12 mm skin margin, scaled with the hand), so it never hides the hand; it may hide
    part of the forearm, as a table does. Draws 7 numbers per image."""
    n, dev, g = len(pose), pose.device, generator
    s = pose.scale.view(n, 1)
    present = torch.rand((n,), generator=g, device=dev) < 0.9
    wall = torch.rand((n, 1), generator=g, device=dev) < 0.5
    ax, ay = (torch.deg2rad(uniform((n,), -35.0, 35.0, g, dev)) for _ in range(2))
    walls = wall_normal(ax, ay)
    elevation = torch.deg2rad(uniform((n,), 5.0, 65.0, g, dev))
    roll = torch.deg2rad(uniform((n,), -20.0, 20.0, g, dev))
    normal = torch.where(wall, walls, table_normal(elevation, roll))
    offset = plane_offset_behind(joints, normal, s, uniform((n, 1), 5.0, 220.0, g, dev))
    return normal, torch.where(present, offset, torch.full_like(offset, math.inf))


def render_randomised_context_mm(pose: HandPose, crop: CropParams, joints: Tensor, generator: torch.Generator) -> Tensor:
    """Depth (N, 1, S, S) mm of the ``"randomised"`` scene: hand, forearm and plane (z-buffer)."""
    hand = render_primitives(hand_primitives(pose, joints, **random_hand_shape(len(pose), generator, pose.device)), crop)
    forearm = render_primitives(random_forearm(pose, joints, generator), crop)
    plane = render_plane_depth(*random_plane(pose, joints, generator), crop)  # inf offset: no plane
    return torch.minimum(torch.minimum(hand, forearm), plane)


def render_synthetic(
    pose: HandPose,
    crop: CropParams,
    joints: Tensor | None = None,
    *,
    scene: Scene = "hand",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Clean simulator crops (N, 1, S, S) in [-1, 1] of the given hands (+1 = far/background).

    ``scene`` is one of :data:`SCENES`; those of :data:`RANDOM_SCENES` need ``generator``.
    """
    if len(pose) == 0:
        raise ValueError("pose holds no hands; need at least one to render")
    if scene not in SCENES:
        raise ValueError(f"scene must be one of {SCENES}, got {scene!r}")
    if scene in RANDOM_SCENES and generator is None:
        raise ValueError(f"scene {scene!r} needs a generator for its random context")
    if joints is None:
        joints = forward_kinematics(pose)
    if scene == "randomised":
        return crop.depth_to_image(render_randomised_context_mm(pose, crop, joints, generator))
    depth = render_hand_depth_mm(pose, crop, joints)
    if scene != "hand":
        depth = torch.minimum(depth, render_primitives(simulator_forearm(pose, joints), crop))
    if scene == "hand_arm_wall":
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
