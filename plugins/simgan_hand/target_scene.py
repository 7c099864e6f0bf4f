"""The scene every hand-depth target camera looks at, and the pipeline that drives a sensor model.

The target generators (:mod:`simgan_hand.kinect`, :mod:`simgan_hand.tof`,
:mod:`simgan_hand.stereo`) sample hands from exactly the simulator's pose distribution (so the
labels mean the same thing and coincide for the same generator state) and render the same
scene, which differs from the simulator's in the ways a real capture does:
:func:`sample_target_shape` (a slightly different hand model: thicker fingers, a fleshier palm,
knuckle bumps), :func:`forearm_capsules` (the arm enters the crop at the wrist),
:func:`background_plane` (a wall or table behind or under the hand, partly inside the cube).
Only the sensor model differs between them: a :data:`Sensor` turns the clean scene layers into
the depth the camera reports (mm, 0 = no reading), and :func:`simulate_target_hands` drives it.

The generator is consumed in a fixed order (pose, then per chunk the scene, then per sub-chunk
the sensor), so each target is deterministic in its seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from simgan_hand.render import (
    DEFAULT_SIZE,
    CropParams,
    Primitives,
    crop_for_pose,
    hand_primitives,
    plane_offset_behind,
    render_plane_depth,
    render_primitives,
    table_normal,
    wall_normal,
)
from simgan_hand.simulator import hand_labels
from simgan_hand.skeleton import (
    DEFAULT_CUBE_MM,
    NYU_INTRINSICS,
    CameraIntrinsics,
    HandPose,
    check_count,
    check_generator,
    forward_kinematics,
    bent_forearm_direction,
    sample_hand_pose,
    uniform as _uniform,  # re-exported: the camera modules draw with it
)

#: Crop pixels per rendering chunk (64 crops of 224 x 224) and per sensor-effect sub-chunk
#: (16 crops): the renderer amortises per-primitive overhead over many crops, the pixel-wise
#: effects run fastest on cache-sized tensors.
CHUNK_PIXELS = 64 * 224 * 224
EFFECT_CHUNK_PIXELS = 16 * 224 * 224


def _finite(z: Tensor) -> Tensor:
    """Valid readings: finite and positive depth (NaN, 0 and inf are "no reading")."""
    return (z > 0) & (z < math.inf)


# --------------------------------------------------------------------------------------------
# Scene
# --------------------------------------------------------------------------------------------


@dataclass
class TargetScene:
    """Clean depth layers (N, 1, S, S) in mm of a target scene; inf where a layer is empty.

    Attributes:
        hand_mm: the hand (Kinect shape variant).
        forearm_mm: the forearm.
        background_mm: the wall or table plane.
    """

    hand_mm: Tensor
    forearm_mm: Tensor
    background_mm: Tensor

    @property
    def foreground_mm(self) -> Tensor:
        """Hand and forearm together (what the camera sees in front of the background)."""
        return torch.minimum(self.hand_mm, self.forearm_mm)

    @property
    def depth_mm(self) -> Tensor:
        """The full clean scene: nearest surface per pixel."""
        return torch.minimum(self.foreground_mm, self.background_mm)


def sample_target_shape(
    n: int, generator: torch.Generator, device: torch.device
) -> dict[str, Tensor]:
    """Per-image shape factors of the target hand model (keyword arguments of
    :func:`simgan_hand.render.hand_primitives`).

    Physical reason: the simulator's capsule hand is an idealisation; a real hand has soft
    tissue that makes fingers slightly thicker than bone-sized capsules, a fleshier palm, and
    knuckles that bulge on the back of the hand. Differences are a few millimetres.
    """
    g = generator
    return {
        "finger_radius": _uniform((n,), 1.02, 1.12, g, device),
        "palm_thickness": _uniform((n,), 1.08, 1.25, g, device),
        "knuckles": _uniform((n,), 1.0, 1.1, g, device),
    }


def forearm_capsules(pose: HandPose, joints: Tensor, generator: torch.Generator) -> Primitives:
    """Two capsules (N, 2) for the forearm: a flattened wrist part and a thicker mid-forearm.

    Physical reason: in a real frame the hand is attached to an arm that enters the crop from
    the wrist; a hand-model render (NYU's ``synthdepth``) stops at the wrist. The forearm
    leaves the wrist along the hand's proximal axis, bent by a random wrist flexion (+-30 deg)
    and radial/ulnar deviation (+-15 deg).
    """
    n, dev, g = len(pose), pose.device, generator
    s = pose.scale.view(n, 1)
    d = bent_forearm_direction(pose, 30.0, 15.0, g)
    wrist = joints[:, 0]
    r_wrist = _uniform((n, 1), 21.0, 25.0, g, dev) * s
    r_mid = r_wrist * _uniform((n, 1), 1.2, 1.35, g, dev)
    a = torch.stack([wrist, wrist + 90.0 * s * d], dim=1)
    b = torch.stack([wrist + 110.0 * s * d, wrist + 280.0 * s * d], dim=1)
    return Primitives.capsules(a, b, torch.cat([r_wrist, r_mid], dim=1))


def background_plane(
    pose: HandPose, joints: Tensor, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """A wall behind or a table under each hand: unit normal (N, 3) and offset (N,), mm.

    The plane is ``{p : normal . p = offset}`` with the camera and hand on the side
    ``normal . p < offset``. Walls face the camera within +-25 deg; tables are horizontal planes
    below the hand seen from 15-55 deg above. The plane keeps 10-160 mm clear of the hand's
    farthest point along the normal, so about half of them reach into the crop cube.

    Physical reason: NYU frames are captured in a room; the wall or the desk behind the hand
    appears in the crop wherever it lies within the cube, and it occludes nothing.
    """
    n, dev, g = len(pose), pose.device, generator
    s = pose.scale.view(n, 1)
    wall = torch.rand((n, 1), generator=g, device=dev) < 0.55
    ax = torch.deg2rad(_uniform((n,), -25.0, 25.0, g, dev))
    ay = torch.deg2rad(_uniform((n,), -25.0, 25.0, g, dev))
    nw = wall_normal(ax, ay)
    phi = torch.deg2rad(_uniform((n,), 15.0, 55.0, g, dev))
    roll = torch.deg2rad(_uniform((n,), -10.0, 10.0, g, dev))
    normal = torch.where(wall, nw, table_normal(phi, roll))
    return normal, plane_offset_behind(joints, normal, s, _uniform((n, 1), 10.0, 160.0, g, dev))


def render_target_scene(
    pose: HandPose, crop: CropParams, generator: torch.Generator, joints: Tensor | None = None
) -> TargetScene:
    """Clean depth layers of the target scene: shape-varied hand, forearm, background plane."""
    if joints is None:
        joints = forward_kinematics(pose)
    shape = sample_target_shape(len(pose), generator, pose.device)
    hand = render_primitives(hand_primitives(pose, joints, **shape), crop)
    forearm = render_primitives(forearm_capsules(pose, joints, generator), crop)
    normal, offset = background_plane(pose, joints, generator)
    return TargetScene(hand, forearm, render_plane_depth(normal, offset, crop))


# --------------------------------------------------------------------------------------------
# Pipeline
# --------------------------------------------------------------------------------------------

#: A sensor model: clean scene layers and their crops -> reported depth (N, 1, S, S) in mm,
#: 0 = no reading. It draws its random effects from the generator it is given.
Sensor = Callable[[TargetScene, CropParams, torch.Generator], Tensor]


def ideal_sensor(scene: TargetScene, crop: CropParams, generator: torch.Generator) -> Tensor:
    """A perfect camera: the exact depth (N, 1, S, S) in mm of the target scene, 0 where empty.

    With it, :func:`simulate_target_hands` renders the target's *content* (hand shape, forearm,
    wall or table) without any sensor effect: training on those images measures how much of
    the simulator-to-target gap is content, which a refiner that keeps labels cannot close
    (``docs/examples/hand_gap_decomposition.py``). Draws nothing from ``generator``.
    """
    depth = scene.depth_mm
    return depth.masked_fill(~torch.isfinite(depth), 0.0)


def target_depth_mm(
    pose: HandPose,
    crop: CropParams,
    generator: torch.Generator,
    sensor: Sensor,
    joints: Tensor | None = None,
) -> Tensor:
    """Depth (N, 1, S, S) in mm that ``sensor`` reports for the given hands; 0 = no reading.

    Works in chunks of about :data:`CHUNK_PIXELS` crop pixels (cache-sized on CPU); the
    generator is consumed chunk after chunk, so the output depends on the chunk size constant.
    """
    if joints is None:
        joints = forward_kinematics(pose)
    chunk = max(4, CHUNK_PIXELS // (crop.size * crop.size))
    parts = [
        _target_chunk(pose[s : s + chunk], crop[s : s + chunk], generator, joints[s : s + chunk], sensor)
        for s in range(0, len(pose), chunk)
    ]
    return torch.cat(parts, dim=0)


def _target_chunk(
    pose: HandPose, crop: CropParams, generator: torch.Generator, joints: Tensor, sensor: Sensor
) -> Tensor:
    """One chunk: render the scene, then the sensor in sub-chunks."""
    scene = render_target_scene(pose, crop, generator, joints)
    sub = max(2, EFFECT_CHUNK_PIXELS // (crop.size * crop.size))
    parts = []
    for s in range(0, len(pose), sub):
        sl = slice(s, s + sub)
        part = TargetScene(scene.hand_mm[sl], scene.forearm_mm[sl], scene.background_mm[sl])
        parts.append(sensor(part, crop[s : s + sub], generator))
    return torch.cat(parts, dim=0)


def render_target_crops(
    pose: HandPose,
    crop: CropParams,
    generator: torch.Generator,
    sensor: Sensor,
    joints: Tensor | None = None,
) -> Tensor:
    """Normalised crops (N, 1, S, S) in [-1, 1] (+1 = far, background, no reading) of ``sensor``."""
    if len(pose) == 0:
        raise ValueError("pose holds no hands; need at least one to render")
    check_generator(generator, pose.device)
    return crop.depth_to_image(target_depth_mm(pose, crop, generator, sensor, joints))


def simulate_target_hands(
    n: int,
    generator: torch.Generator,
    sensor: Sensor,
    *,
    device: torch.device | str = "cpu",
    size: int = DEFAULT_SIZE,
    cube_mm: float = DEFAULT_CUBE_MM,
    intrinsics: CameraIntrinsics = NYU_INTRINSICS,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Sample N hands from the simulator's distribution and render them through ``sensor``.

    Returns:
        ``(images, labels)``: images (N, 1, size, size) float32 in [-1, 1]; labels
        ``joints_uvd`` (N, 14, 3), ``skeleton_xyz`` (N, J, 3), ``centre_mm`` (N, 3), exactly as
        :func:`simgan_hand.simulator.simulate_hands` defines them (identical for the same
        generator state: the pose is drawn first).
    """
    check_count(n)
    dev = check_generator(generator, device)
    pose = sample_hand_pose(n, generator, dev, cube_mm=cube_mm, intrinsics=intrinsics)
    crop = crop_for_pose(pose, size, cube_mm, intrinsics)
    joints = forward_kinematics(pose)
    return render_target_crops(pose, crop, generator, sensor, joints), hand_labels(pose, crop, joints)
