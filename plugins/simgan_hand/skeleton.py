"""Kinematic right-hand model, pose sampling, forward kinematics and the NYU evaluation joints.

Coordinate conventions
----------------------
Camera space is OpenCV's, in millimetres: x to the right, y down, z forward (away from the
camera). NOTE: NYU's ``joint_xyz`` has y pointing UP; negate y to compare with it. Image
coordinates are ``(u = column, v = row)`` with pixel centres at integers, and the pinhole
projection is ``u = fx * x / z + cx``, ``v = fy * y / z + cy`` (see :class:`CameraIntrinsics`).

The hand is built in a *hand frame* (mm) attached to the wrist centre:

* ``X`` radial: across the palm towards the thumb side;
* ``Y`` distal: from the wrist towards the middle-finger knuckle;
* ``Z`` palmar: out of the palm (``X x Y = Z``, a right-handed frame for a right hand).

Fingers (index, middle, ring, little) hinge at MCP, PIP and DIP: flexion turns a phalanx from
its rest direction towards ``+Z`` (the palm side); abduction at the MCP turns the finger in the
palm plane about ``Z`` (positive towards the thumb). The thumb has CMC, MCP and IP joints: the CMC
carries two angles (flexion across the palm and palmar abduction out of the palm plane), MCP and
IP flex the thumb towards the palm. Joint angles live in :class:`HandPose` as ``flexion``
(N, 5, 3) and ``abduction`` (N, 5), fingers ordered ``thumb, index, middle, ring, little``.

The global rotation maps the hand frame into camera space. With all global angles zero the palm
faces the camera, the fingers point up in the image and the thumb is on the image right::

    X -> +x,   Y -> -y,   Z -> -z

and ``R = Rz(roll) @ R0 @ Rx(tilt) @ Ry(pronation)``: ``pronation`` turns the hand about its own
long axis (180 deg shows the back of the hand), ``tilt`` bends the whole hand towards/away from
the camera, ``roll`` turns it in the image plane. The translation puts the palm centre
(:data:`HAND_CENTRE_JOINT`) at ``HandPose.centre``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from simgan_toolkit.sampling import TensorBatch, check_count, check_generator

# --------------------------------------------------------------------------------------------
# Camera
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole camera in pixels: ``u = fx * x / z + cx``, ``v = fy * y / z + cy`` (y down).

    Attributes:
        fx: focal length along image columns, px.
        fy: focal length along image rows, px.
        cx: principal point column, px.
        cy: principal point row, px.
        width: image width, px.
        height: image height, px.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def project(self, xyz: Tensor) -> Tensor:
        """Project camera-space points (..., 3) in mm to ``(u, v, z)`` (..., 3): px, px, mm."""
        z = xyz[..., 2]
        u = self.fx * xyz[..., 0] / z + self.cx
        v = self.fy * xyz[..., 1] / z + self.cy
        return torch.stack([u, v, z], dim=-1)

    def backproject(self, uvz: Tensor) -> Tensor:
        """Inverse of :meth:`project`: ``(u, v, z)`` (..., 3) to camera-space mm (..., 3)."""
        z = uvz[..., 2]
        x = (uvz[..., 0] - self.cx) * z / self.fx
        y = (uvz[..., 1] - self.cy) * z / self.fy
        return torch.stack([x, y, z], dim=-1)


#: The NYU hand dataset's Kinect (official ``convert_xyz_to_uvd.m``), 640x480 depth frames.
NYU_INTRINSICS = CameraIntrinsics(
    fx=588.036865, fy=587.075073, cx=320.0, cy=240.0, width=640, height=480
)

# --------------------------------------------------------------------------------------------
# Skeleton layout
# --------------------------------------------------------------------------------------------

FINGERS = ("thumb", "index", "middle", "ring", "little")
#: Joint names per finger, base to tip.
FINGER_JOINTS = {
    "thumb": ("cmc", "mcp", "ip", "tip"),
    "index": ("mcp", "pip", "dip", "tip"),
    "middle": ("mcp", "pip", "dip", "tip"),
    "ring": ("mcp", "pip", "dip", "tip"),
    "little": ("mcp", "pip", "dip", "tip"),
}
#: Every joint of the skeleton, in the order of :func:`forward_kinematics`'s output.
JOINT_NAMES: tuple[str, ...] = ("wrist", "wrist_ulnar", "wrist_radial", "palm_centre") + tuple(
    f"{finger}_{joint}" for finger in FINGERS for joint in FINGER_JOINTS[finger]
)
NUM_JOINTS = len(JOINT_NAMES)
#: The palm centre: the crop centre and the hand's translation reference.
HAND_CENTRE_JOINT = JOINT_NAMES.index("palm_centre")
#: Index of the first (base) joint of each finger; a finger's 4 joints are consecutive.
FINGER_BASE = tuple(JOINT_NAMES.index(f"{f}_{FINGER_JOINTS[f][0]}") for f in FINGERS)
#: The 15 finger bones ``(parent, child)`` (joint indices), thumb first, base to tip.
FINGER_BONES: tuple[tuple[int, int], ...] = tuple(
    (base + k, base + k + 1) for base in FINGER_BASE for k in range(3)
)

#: The 14 NYU evaluation joints (DeepPrior++'s ``restrictedJointsEval``, in that order), as
#: ``(NYU name, joint of this skeleton)``. NYU fingers: F1 little, F2 ring, F3 middle, F4 index,
#: TH thumb; per finger ``KNU3_A`` is the tip, ``KNU3_B`` the DIP (thumb: IP) and ``KNU2_B`` the
#: PIP (thumb: MCP), so each finger contributes its tip and its middle joint. PALM_3 is the palm
#: point every finger links to (the crop centre); PALM_1/PALM_2 are the two sides of the wrist.
#: Which of PALM_1/PALM_2 is the little-finger side is inferred (F1 = little is numbered first),
#: not verified.
NYU_EVAL_JOINTS: tuple[tuple[str, str], ...] = (
    ("F1_KNU3_A", "little_tip"),
    ("F1_KNU2_B", "little_pip"),
    ("F2_KNU3_A", "ring_tip"),
    ("F2_KNU2_B", "ring_pip"),
    ("F3_KNU3_A", "middle_tip"),
    ("F3_KNU2_B", "middle_pip"),
    ("F4_KNU3_A", "index_tip"),
    ("F4_KNU2_B", "index_pip"),
    ("TH_KNU3_A", "thumb_tip"),
    ("TH_KNU3_B", "thumb_ip"),
    ("TH_KNU2_B", "thumb_mcp"),
    ("PALM_1", "wrist_ulnar"),
    ("PALM_2", "wrist_radial"),
    ("PALM_3", "palm_centre"),
)
NYU_EVAL_NAMES: tuple[str, ...] = tuple(nyu for nyu, _ in NYU_EVAL_JOINTS)
#: Indices into :data:`JOINT_NAMES` of the 14 NYU evaluation joints, in NYU order.
NYU_EVAL_INDICES: tuple[int, ...] = tuple(JOINT_NAMES.index(j) for _, j in NYU_EVAL_JOINTS)
#: Links between the 14 evaluation joints for drawing (every finger hangs off PALM_3).
NYU_EVAL_LINKS: tuple[tuple[int, int], ...] = (
    (13, 1), (1, 0), (13, 3), (3, 2), (13, 5), (5, 4), (13, 7), (7, 6),
    (13, 10), (10, 9), (9, 8), (13, 11), (13, 12),
)


def select_nyu_joints(joints: Tensor) -> Tensor:
    """Pick the 14 NYU evaluation joints, in NYU order, from (N, J, C) skeleton joints."""
    if joints.ndim != 3 or joints.shape[1] != NUM_JOINTS:
        raise ValueError(f"joints must have shape (N, {NUM_JOINTS}, C), got {tuple(joints.shape)}")
    return joints[:, list(NYU_EVAL_INDICES)]


# --------------------------------------------------------------------------------------------
# Anthropometry (mm, hand frame, a mid-sized adult hand at scale 1)
# --------------------------------------------------------------------------------------------

#: Palm landmarks ``(X, Y, Z)``; X is scaled by the palm width factor, Y by the palm length one.
_WRIST = (0.0, 0.0, 0.0)
_WRIST_ULNAR = (-21.0, 4.0, 0.0)
_WRIST_RADIAL = (21.0, 4.0, 0.0)
_PALM_CENTRE = (-1.0, 48.0, 0.0)
#: Finger bases: thumb CMC (slightly palmar), then the MCP knuckles.
_FINGER_BASES = (
    (20.0, 16.0, 6.0),
    (24.0, 84.0, 0.0),
    (5.0, 88.0, 0.0),
    (-13.0, 84.0, 0.0),
    (-29.0, 75.0, 0.0),
)
#: Bone lengths base to tip (thumb: metacarpal, proximal, distal; fingers: the 3 phalanges).
#: A tip joint is the centre of the fingertip's rounded end, ~7 mm inside the skin.
BONE_LENGTHS_MM = (
    (44.0, 31.0, 25.0),
    (39.0, 23.0, 19.0),
    (43.0, 27.0, 20.0),
    (40.0, 26.0, 19.0),
    (32.0, 19.0, 17.0),
)
#: Rest direction of each finger in the palm plane, degrees from +Y towards +X (thumb side).
_FINGER_SPLAY_DEG = (38.0, 6.0, 0.0, -6.0, -14.0)
#: Thumb metacarpal's rest elevation out of the palm plane towards +Z, degrees.
_THUMB_REST_ELEVATION_DEG = 20.0
#: Direction the thumb's MCP/IP flexion bends it towards (ulnar and palmar), before
#: orthogonalising against the metacarpal.
_THUMB_BEND = (-0.8, 0.0, 0.6)

#: Joint-angle limits in degrees, (5 fingers, 3 joints, (low, high)). Thumb: CMC flexion across
#: the palm, MCP, IP. Fingers: MCP (negative = hyperextension), PIP, DIP.
FLEXION_LIMITS_DEG = (
    ((-15.0, 45.0), (-10.0, 60.0), (-20.0, 80.0)),
    ((-20.0, 90.0), (0.0, 110.0), (-5.0, 80.0)),
    ((-20.0, 90.0), (0.0, 110.0), (-5.0, 80.0)),
    ((-20.0, 90.0), (0.0, 110.0), (-5.0, 80.0)),
    ((-20.0, 90.0), (0.0, 110.0), (-5.0, 80.0)),
)
#: Abduction limits in degrees, (5, (low, high)): thumb CMC palmar abduction (towards +Z), then
#: MCP abduction of each finger (positive towards the thumb).
ABDUCTION_LIMITS_DEG = ((-15.0, 45.0), (-15.0, 20.0), (-10.0, 10.0), (-15.0, 10.0), (-25.0, 10.0))

#: Sampling ranges.
SCALE_RANGE = (0.85, 1.15)
DEPTH_RANGE_MM = (500.0, 900.0)
ROLL_RANGE_DEG = (-75.0, 75.0)
TILT_RANGE_DEG = (-35.0, 35.0)
#: Pronation: palm towards the camera (|angle| <= 80) with this probability, else the back of
#: the hand (180 +- 60 deg).
PALM_FACING_PROBABILITY = 0.6
#: Crop cube the pose sampler keeps inside the camera frame (the NYU/DeepPrior 300 mm cube).
DEFAULT_CUBE_MM = 300.0


# --------------------------------------------------------------------------------------------
# Pose
# --------------------------------------------------------------------------------------------


@dataclass
class HandPose(TensorBatch):
    """Per-image hand shape and pose; every field has the batch as first dimension.

    Attributes:
        centre: (N, 3) palm centre in camera space, mm.
        rotation: (N, 3, 3) hand frame -> camera rotation.
        scale: (N,) overall hand size factor (1 = the reference hand).
        palm_shape: (N, 2) palm width and length factors.
        proportions: (N, 5, 3) per-bone length factors on top of ``scale``.
        flexion: (N, 5, 3) flexion angles, radians (see module docstring).
        abduction: (N, 5) abduction angles, radians.
    """

    centre: Tensor
    rotation: Tensor
    scale: Tensor
    palm_shape: Tensor
    proportions: Tensor
    flexion: Tensor
    abduction: Tensor

    def bone_lengths(self) -> Tensor:
        """(N, 5, 3) bone lengths in mm, base to tip."""
        base = torch.tensor(BONE_LENGTHS_MM, device=self.device)
        return base * self.proportions * self.scale.view(-1, 1, 1)


def rotation_x(angle: Tensor) -> Tensor:
    """(N, 3, 3) rotations about x by ``angle`` (N,) radians (y turns towards z)."""
    c, s = torch.cos(angle), torch.sin(angle)
    o, z = torch.ones_like(angle), torch.zeros_like(angle)
    return torch.stack([o, z, z, z, c, -s, z, s, c], dim=-1).view(-1, 3, 3)


def rotation_y(angle: Tensor) -> Tensor:
    """(N, 3, 3) rotations about y by ``angle`` (N,) radians (z turns towards x)."""
    c, s = torch.cos(angle), torch.sin(angle)
    o, z = torch.ones_like(angle), torch.zeros_like(angle)
    return torch.stack([c, z, s, z, o, z, -s, z, c], dim=-1).view(-1, 3, 3)


def rotation_z(angle: Tensor) -> Tensor:
    """(N, 3, 3) rotations about z by ``angle`` (N,) radians (x turns towards y)."""
    c, s = torch.cos(angle), torch.sin(angle)
    o, z = torch.ones_like(angle), torch.zeros_like(angle)
    return torch.stack([c, -s, z, s, c, z, z, z, o], dim=-1).view(-1, 3, 3)


def global_rotation(roll: Tensor, tilt: Tensor, pronation: Tensor) -> Tensor:
    """Hand frame -> camera rotation ``Rz(roll) @ R0 @ Rx(tilt) @ Ry(pronation)``, (N, 3, 3)."""
    r0 = torch.diag(torch.tensor([1.0, -1.0, -1.0], device=roll.device, dtype=roll.dtype))
    return rotation_z(roll) @ r0 @ rotation_x(tilt) @ rotation_y(pronation)


def uniform(
    shape: tuple[int, ...], low: float, high: float, g: torch.Generator, dev: torch.device
) -> Tensor:
    """Samples from U(low, high) with the given shape (the hand plugin's scene draws)."""
    return low + (high - low) * torch.rand(shape, generator=g, device=dev)


def bent_forearm_direction(pose: HandPose, max_flexion_deg: float, max_deviation_deg: float, generator: torch.Generator) -> Tensor:
    """(N, 3) unit direction from the wrist towards the elbow: the hand's proximal axis turned by
    a wrist flexion of U(-max_flexion_deg, max_flexion_deg) and a radial/ulnar deviation of
    U(-max_deviation_deg, max_deviation_deg). Draws 2 numbers per hand (flexion, then deviation)."""
    n, dev = len(pose), pose.device
    flex = torch.deg2rad(uniform((n,), -max_flexion_deg, max_flexion_deg, generator, dev))
    deviation = torch.deg2rad(uniform((n,), -max_deviation_deg, max_deviation_deg, generator, dev))
    proximal = torch.tensor([0.0, -1.0, 0.0], device=dev).expand(n, 3).unsqueeze(-1)
    return (pose.rotation @ rotation_x(flex) @ rotation_z(deviation) @ proximal).squeeze(-1)


def _limits(dev: torch.device) -> tuple[Tensor, Tensor]:
    """Flexion (5, 3, 2) and abduction (5, 2) limits in radians."""
    flex = torch.deg2rad(torch.tensor(FLEXION_LIMITS_DEG, device=dev))
    abd = torch.deg2rad(torch.tensor(ABDUCTION_LIMITS_DEG, device=dev))
    return flex, abd


def clamp_to_limits(flexion: Tensor, abduction: Tensor) -> tuple[Tensor, Tensor]:
    """Clamp (N, 5, 3) flexion and (N, 5) abduction (radians) into the joint limits."""
    flex, abd = _limits(flexion.device)
    flexion = torch.maximum(torch.minimum(flexion, flex[..., 1]), flex[..., 0])
    abduction = torch.maximum(torch.minimum(abduction, abd[..., 1]), abd[..., 0])
    return flexion, abduction


def sample_finger_angles(
    n: int, generator: torch.Generator, device: torch.device
) -> tuple[Tensor, Tensor]:
    """Plausible joint angles: flexion (N, 5, 3) and abduction (N, 5), radians, within limits.

    Real hand poses are not independent per joint: fingers curl together (a grip synergy),
    PIP and DIP are coupled by the tendons (DIP ~ 2/3 PIP) and spread fingers are straight.
    Half the hands draw one shared curl for all fingers plus a small per-finger deviation
    (open hand ... fist); the other half set each finger open or closed on its own (pointing,
    V-sign, pinch-like shapes). Per-joint jitter then breaks the synergy a little.
    """
    g, dev = generator, device
    shared = uniform((n, 1), 0.0, 1.0, g, dev)
    shared = shared + 0.12 * torch.randn((n, 5), generator=g, device=dev)
    closed = torch.rand((n, 5), generator=g, device=dev) < 0.5
    closed_curl = uniform((n, 5), 0.6, 1.0, g, dev)
    open_curl = uniform((n, 5), 0.0, 0.3, g, dev)
    own = torch.where(closed, closed_curl, open_curl)
    use_shared = torch.rand((n, 1), generator=g, device=dev) < 0.5
    curl = torch.where(use_shared, shared, own).clamp(0.0, 1.0)

    def deg(x: Tensor) -> Tensor:
        return torch.deg2rad(x)

    jitter = uniform((n, 5, 3), -1.0, 1.0, g, dev)
    c = curl[:, 1:]
    mcp = deg(-10.0 + 95.0 * c + 12.0 * jitter[:, 1:, 0])
    pip = deg(3.0 + 100.0 * c + 10.0 * jitter[:, 1:, 1])
    dip = pip * (2.0 / 3.0) + deg(8.0 * jitter[:, 1:, 2])
    ct = curl[:, 0]
    cmc = deg(-10.0 + 50.0 * ct + 8.0 * jitter[:, 0, 0])
    t_mcp = deg(50.0 * ct + 8.0 * jitter[:, 0, 1])
    t_ip = deg(70.0 * ct + 10.0 * jitter[:, 0, 2])
    thumb = torch.stack([cmc, t_mcp, t_ip], dim=1).unsqueeze(1)
    flexion = torch.cat([thumb, torch.stack([mcp, pip, dip], dim=2)], dim=1)

    # Spread: fingers fan out (index towards the thumb, little away from it); curled fingers
    # close up, as the collateral ligaments tighten in flexion.
    spread = uniform((n, 1), -0.3, 1.0, g, dev) * (1.0 - c)
    max_spread = torch.deg2rad(torch.tensor([15.0, 3.0, -10.0, -20.0], device=dev))
    fingers_abd = spread * max_spread + deg(uniform((n, 4), -4.0, 4.0, g, dev))
    thumb_abd = deg(uniform((n, 1), -10.0, 40.0, g, dev))
    abduction = torch.cat([thumb_abd, fingers_abd], dim=1)
    return clamp_to_limits(flexion, abduction)


def sample_hand_pose(
    n: int,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
    *,
    depth_range: tuple[float, float] = DEPTH_RANGE_MM,
    cube_mm: float = DEFAULT_CUBE_MM,
    intrinsics: CameraIntrinsics = NYU_INTRINSICS,
) -> HandPose:
    """Draw N random right hands in front of the camera.

    Sizes vary (``scale`` in :data:`SCALE_RANGE`, palm and bone proportions +-4-8 %); joint
    angles follow :func:`sample_finger_angles`; the global orientation is that of a hand held
    up in front of a depth camera: fingers up +-75 deg in the image, tilted +-35 deg, palm or
    back of the hand towards the camera (never edge-on beyond 80 deg from palm-facing). The palm
    centre sits at a depth in ``depth_range`` and at an image position that keeps the
    ``cube_mm`` crop window inside the camera frame.

    Args:
        n: number of hands (> 0).
        generator: random generator on ``device``.
        device: where the returned tensors live.
        depth_range: palm-centre depth range, mm.
        cube_mm: side of the crop cube kept inside the frame, mm.
        intrinsics: the camera.

    Returns:
        HandPose with N entries.
    """
    check_count(n)
    dev = check_generator(generator, device)
    g = generator

    def u(low: float, high: float, *shape: int) -> Tensor:
        return uniform((n, *shape), low, high, g, dev)

    scale = u(*SCALE_RANGE)
    palm_shape = torch.stack([u(0.92, 1.08), u(0.94, 1.06)], dim=1)
    proportions = u(0.94, 1.06, 5, 1) * u(0.96, 1.04, 5, 3)
    flexion, abduction = sample_finger_angles(n, g, dev)

    roll = torch.deg2rad(u(*ROLL_RANGE_DEG))
    tilt = torch.deg2rad(u(*TILT_RANGE_DEG))
    palm_facing = torch.rand(n, generator=g, device=dev) < PALM_FACING_PROBABILITY
    pronation = torch.where(palm_facing, u(-80.0, 80.0), 180.0 + u(-60.0, 60.0))
    rotation = global_rotation(roll, tilt, torch.deg2rad(pronation))

    z = u(*depth_range)
    # Keep the crop window (cube_mm wide at the centre depth) inside the frame, 4 px margin.
    half_w = (intrinsics.width / 2 - 4.0 - 0.5 * cube_mm * intrinsics.fx / z).clamp_min(0.0)
    half_h = (intrinsics.height / 2 - 4.0 - 0.5 * cube_mm * intrinsics.fy / z).clamp_min(0.0)
    uc = intrinsics.cx + half_w * u(-1.0, 1.0)
    vc = intrinsics.cy + half_h * u(-1.0, 1.0)
    centre = intrinsics.backproject(torch.stack([uc, vc, z], dim=1))
    return HandPose(
        centre=centre,
        rotation=rotation,
        scale=scale,
        palm_shape=palm_shape,
        proportions=proportions,
        flexion=flexion,
        abduction=abduction,
    )


def hand_frame_joints(pose: HandPose) -> Tensor:
    """Joint positions (N, J, 3) in the hand frame (mm, wrist at the origin, scaled)."""
    n, dev = len(pose), pose.device
    s = pose.scale.view(n, 1)
    shape = torch.cat([pose.palm_shape, torch.ones(n, 1, device=dev)], dim=1) * s  # (N, 3)

    def palm_point(p: tuple[float, float, float]) -> Tensor:
        return torch.tensor(p, device=dev) * shape

    bases = torch.tensor(_FINGER_BASES, device=dev) * shape.unsqueeze(1)  # (N, 5, 3)
    lengths = pose.bone_lengths()
    flex, abd = pose.flexion, pose.abduction
    zero, one = torch.zeros(n, device=dev), torch.ones(n, device=dev)
    z_axis = torch.stack([zero, zero, one], dim=1)

    # Fingers: a planar chain in the plane spanned by the splayed rest direction and +Z.
    splay = torch.deg2rad(torch.tensor(_FINGER_SPLAY_DEG[1:], device=dev)) + abd[:, 1:]  # (N, 4)
    d0 = torch.stack([torch.sin(splay), torch.cos(splay), torch.zeros_like(splay)], dim=-1)
    cum = torch.cumsum(flex[:, 1:], dim=2)  # (N, 4, 3)
    dirs = torch.cos(cum).unsqueeze(-1) * d0.unsqueeze(2)
    dirs = dirs + torch.sin(cum).unsqueeze(-1) * z_axis.view(n, 1, 1, 3)
    steps = dirs * lengths[:, 1:].unsqueeze(-1)
    mcp = bases[:, 1:].unsqueeze(2)
    fingers = torch.cat([mcp, mcp + torch.cumsum(steps, dim=2)], dim=2)

    # Thumb: the CMC sets the metacarpal's direction (across the palm, out of its plane); MCP
    # and IP then flex it towards the palm.
    gamma = math.radians(_FINGER_SPLAY_DEG[0]) - flex[:, 0, 0]
    alpha = math.radians(_THUMB_REST_ELEVATION_DEG) + abd[:, 0]
    ca = torch.cos(alpha)
    t = torch.stack([ca * torch.sin(gamma), ca * torch.cos(gamma), torch.sin(alpha)], dim=1)
    w = torch.tensor(_THUMB_BEND, device=dev).expand(n, 3)
    b = torch.nn.functional.normalize(w - (w * t).sum(1, keepdim=True) * t, dim=1)
    phi1 = flex[:, 0, 1:2]
    phi2 = phi1 + flex[:, 0, 2:3]
    cmc = bases[:, 0]
    mcp = cmc + lengths[:, 0, 0:1] * t
    ip = mcp + lengths[:, 0, 1:2] * (torch.cos(phi1) * t + torch.sin(phi1) * b)
    tip = ip + lengths[:, 0, 2:3] * (torch.cos(phi2) * t + torch.sin(phi2) * b)
    thumb = torch.stack([cmc, mcp, ip, tip], dim=1)

    palm = torch.stack(
        [palm_point(p) for p in (_WRIST, _WRIST_ULNAR, _WRIST_RADIAL, _PALM_CENTRE)], dim=1
    )
    return torch.cat([palm, thumb, fingers.reshape(n, 16, 3)], dim=1)


def hand_to_camera(pose: HandPose, points: Tensor) -> Tensor:
    """Map hand-frame points (N, P, 3) to camera space (N, P, 3), mm.

    The hand frame's palm centre lands on ``pose.centre``.
    """
    centre_local = _palm_centre_local(pose)
    local = points - centre_local.unsqueeze(1)
    return local @ pose.rotation.transpose(1, 2) + pose.centre.unsqueeze(1)


def _palm_centre_local(pose: HandPose) -> Tensor:
    """(N, 3) palm centre in the hand frame."""
    n, dev = len(pose), pose.device
    shape = torch.cat([pose.palm_shape, torch.ones(n, 1, device=dev)], dim=1)
    return torch.tensor(_PALM_CENTRE, device=dev) * shape * pose.scale.view(n, 1)


def forward_kinematics(pose: HandPose) -> Tensor:
    """Camera-space joint positions (N, J, 3) in mm, in :data:`JOINT_NAMES` order."""
    if len(pose) == 0:
        raise ValueError("pose holds no hands")
    return hand_to_camera(pose, hand_frame_joints(pose))
