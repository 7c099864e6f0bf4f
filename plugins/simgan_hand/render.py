"""Depth rendering of the kinematic hand and the NYU-style metric crop.

Crop convention (DeepPrior/NYU, continuous version)
---------------------------------------------------
A crop is a metric cube of side ``cube_mm`` (300 mm, the NYU train/test_1 cube) centred on the
hand centre ``(xc, yc, zc)`` (the palm-centre joint, NYU's PALM_3). Its front face projects at
the centre depth to an image window of ``cube_mm * fx / zc`` by ``cube_mm * fy / zc`` pixels
around the centre's projection ``(uc, vc)``; the window is resampled (point-sampled, like
DeepPrior's nearest-neighbour resize) to ``size x size`` crop pixels. Crop pixel centres are
integers ``0 .. size - 1`` and the centre's projection lands exactly on ``(size - 1) / 2``::

    u_crop = (u_image - uc) * sx + (size - 1) / 2,      sx = size * zc / (cube_mm * fx)

(same for v with fy), so one crop pixel spans ``cube_mm / size`` mm at the centre depth in both
directions. Unlike DeepPrior the window is not rounded to whole image pixels. Depth inside the
cube is normalised to ``d = (z - zc) / (cube_mm / 2)`` and clipped to ``[-1, 1]``; pixels with no
surface, or a surface beyond the cube's back face, get the far value ``+1`` (NYU stores "no
reading" as 0 mm, which DeepPrior's crop also sends to the far value). Joint labels use the same
maps without clipping.

Rendering
---------
The hand is a union of primitives: capsules (a sphere of constant radius swept along a segment)
for the 15 finger bones and the palm edges, and a flattened ellipsoid for the palm body. Each
crop pixel casts its camera ray and takes the nearest analytic intersection (exact
perspective). Every primitive is only evaluated inside the window of crop pixels covered by its
projected bounding box, and the windows are merged with a z-buffer minimum, so the cost scales
with the hand's area rather than ``size**2 x primitives``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import torch
from torch import Tensor

from simgan_hand.skeleton import (
    DEFAULT_CUBE_MM,
    FINGER_BONES,
    JOINT_NAMES,
    NYU_INTRINSICS,
    CameraIntrinsics,
    HandPose,
    forward_kinematics,
)

#: Crop side in pixels used by the SimGAN hand experiments.
DEFAULT_SIZE = 224
#: Normalised depth of background, "no reading" and everything beyond the cube.
FAR_VALUE = 1.0
#: Crop pixels per rendering chunk (64 crops of 224 x 224): keeps the per-primitive windows
#: cache-sized on CPU while amortising the per-primitive overhead at small sizes.
CHUNK_PIXELS = 64 * 224 * 224
#: Radii (mm, scale 1) of the finger bones in :data:`FINGER_BONES` order (thumb first). The
#: thumb's metacarpal capsule is fat: it also stands in for the thenar eminence.
BONE_RADII_MM = (
    (12.0, 9.8, 8.8),
    (9.0, 8.2, 7.4),
    (9.2, 8.4, 7.6),
    (8.7, 7.9, 7.2),
    (7.8, 7.1, 6.5),
)
#: Palm: half thickness of the body ellipsoid and radii of the edge capsules (mm, scale 1).
PALM_HALF_THICKNESS_MM = 13.0
PALM_EDGE_RADIUS_MM = 11.0
WRIST_RADIUS_MM = 12.5
THENAR_RADIUS_MM = 11.0
WEB_RADIUS_MM = 5.5

_J = {name: i for i, name in enumerate(JOINT_NAMES)}


# --------------------------------------------------------------------------------------------
# Crop
# --------------------------------------------------------------------------------------------


@dataclass
class CropParams:
    """NYU-style metric crops of N images (see the module docstring).

    Attributes:
        centre_mm: (N, 3) crop centre in camera space, mm.
        centre_uv: (N, 2) its projection in the full camera image, px.
        scale: (N, 2) crop pixels per image pixel along u and v.
        cube_mm: side of the crop cube, mm.
        size: crop side, px.
        intrinsics: the camera.
    """

    centre_mm: Tensor
    centre_uv: Tensor
    scale: Tensor
    cube_mm: float
    size: int
    intrinsics: CameraIntrinsics = field(default=NYU_INTRINSICS)

    def __len__(self) -> int:
        return int(self.centre_mm.shape[0])

    @property
    def device(self) -> torch.device:
        return self.centre_mm.device

    def __getitem__(self, index: slice | Tensor) -> CropParams:
        """Select a sub-batch of crops."""
        return CropParams(
            self.centre_mm[index], self.centre_uv[index], self.scale[index],
            self.cube_mm, self.size, self.intrinsics,
        )

    @property
    def pixel_centre(self) -> float:
        """Crop coordinate of the crop centre, ``(size - 1) / 2``."""
        return (self.size - 1) / 2.0

    @property
    def px_per_native(self) -> Tensor:
        """(N,) crop pixels per camera-image pixel (horizontal)."""
        return self.scale[:, 0]

    def image_to_crop(self, uv: Tensor) -> Tensor:
        """Map full-image pixel coordinates (N, ..., 2) to crop pixel coordinates (N, ..., 2)."""
        shape = (len(self),) + (1,) * (uv.ndim - 2) + (2,)
        return (uv - self.centre_uv.view(shape)) * self.scale.view(shape) + self.pixel_centre

    def crop_to_image(self, uv: Tensor) -> Tensor:
        """Inverse of :meth:`image_to_crop`."""
        shape = (len(self),) + (1,) * (uv.ndim - 2) + (2,)
        return (uv - self.pixel_centre) / self.scale.view(shape) + self.centre_uv.view(shape)

    def window(self) -> Tensor:
        """(N, 4) crop window in the full image, ``(u0, v0, u1, v1)`` of its outer pixel edges."""
        half = 0.5 * self.size / self.scale
        return torch.cat([self.centre_uv - half, self.centre_uv + half], dim=1)

    def normalise_depth(self, z: Tensor) -> Tensor:
        """``(z - zc) / (cube_mm / 2)`` for depths (N, ...) in mm; no clipping."""
        zc = self.centre_mm[:, 2].view((-1,) + (1,) * (z.ndim - 1))
        return (z - zc) / (0.5 * self.cube_mm)

    def depth_to_image(self, z: Tensor) -> Tensor:
        """Depth maps (N, ...) in mm (0, inf or NaN = no reading) to crop values in [-1, 1].

        Nearer than the cube clips to -1; beyond it, or no reading, is the far value +1.
        """
        d = self.normalise_depth(z)
        # NaN, 0 and -inf fail z > 0; +inf lands beyond the cube.
        missing = ~(z > 0) | (d > FAR_VALUE)
        return d.clamp(-1.0, 1.0).masked_fill(missing, FAR_VALUE)

    def project(self, xyz: Tensor) -> Tensor:
        """Camera-space points (N, P, 3) mm to crop ``(u, v, d)`` (N, P, 3): px, px, normalised."""
        uvz = self.intrinsics.project(xyz)
        uv = self.image_to_crop(uvz[..., :2])
        return torch.cat([uv, self.normalise_depth(uvz[..., 2:])], dim=-1)

    def ray_coefficients(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(ax, bx, ay, by)``, each (N,): the ray of crop pixel (col j, row i) is
        ``(ax + bx * j, ay + by * i, 1)`` (camera space, unit depth)."""
        k = self.intrinsics
        bx = 1.0 / (self.scale[:, 0] * k.fx)
        by = 1.0 / (self.scale[:, 1] * k.fy)
        ax = (self.centre_uv[:, 0] - k.cx) / k.fx - self.pixel_centre * bx
        ay = (self.centre_uv[:, 1] - k.cy) / k.fy - self.pixel_centre * by
        return ax, bx, ay, by

    def pixel_rays(self) -> tuple[Tensor, Tensor]:
        """Rays of the crop pixel centres: ``x/z`` per column (N, 1, S), ``y/z`` per row
        (N, S, 1)."""
        ax, bx, ay, by = self.ray_coefficients()
        idx = torch.arange(self.size, device=self.device, dtype=ax.dtype)
        rx = ax.view(-1, 1, 1) + bx.view(-1, 1, 1) * idx.view(1, 1, -1)
        ry = ay.view(-1, 1, 1) + by.view(-1, 1, 1) * idx.view(1, -1, 1)
        return rx, ry

    def inside_frame(self) -> Tensor:
        """(N, 1, S, S) bool: the crop pixel's centre lies inside the camera image."""
        idx = torch.arange(self.size, device=self.device, dtype=self.scale.dtype)
        diagonal = torch.stack([idx, idx], dim=-1).unsqueeze(0).expand(len(self), -1, -1)
        u = self.crop_to_image(diagonal)
        k = self.intrinsics
        ok_u = (u[..., 0] >= -0.5) & (u[..., 0] < k.width - 0.5)
        ok_v = (u[..., 1] >= -0.5) & (u[..., 1] < k.height - 0.5)
        return (ok_v.unsqueeze(2) & ok_u.unsqueeze(1)).unsqueeze(1)


def crop_params(
    centre_mm: Tensor,
    cube_mm: float = DEFAULT_CUBE_MM,
    intrinsics: CameraIntrinsics = NYU_INTRINSICS,
    out: int = DEFAULT_SIZE,
) -> CropParams:
    """NYU-style crops of side ``cube_mm`` around ``centre_mm`` (N, 3), resampled to ``out`` px.

    Raises:
        ValueError: on a bad shape, a non-positive cube or size, or a centre behind the camera.
    """
    if centre_mm.ndim != 2 or centre_mm.shape[1] != 3:
        raise ValueError(f"centre_mm must have shape (N, 3), got {tuple(centre_mm.shape)}")
    if not cube_mm > 0:
        raise ValueError(f"cube_mm must be positive, got {cube_mm}")
    if isinstance(out, bool) or not isinstance(out, int) or out < 8:
        raise ValueError(f"crop size must be an integer >= 8, got {out!r}")
    z = centre_mm[:, 2]
    if not bool((z > 0.5 * cube_mm).all()):
        raise ValueError("crop centres must lie more than cube_mm / 2 in front of the camera")
    centre_uv = intrinsics.project(centre_mm)[:, :2]
    scale = torch.stack(
        [out * z / (cube_mm * intrinsics.fx), out * z / (cube_mm * intrinsics.fy)], dim=1
    )
    return CropParams(centre_mm, centre_uv, scale, float(cube_mm), out, intrinsics)


def crop_for_pose(
    pose: HandPose,
    size: int = DEFAULT_SIZE,
    cube_mm: float = DEFAULT_CUBE_MM,
    intrinsics: CameraIntrinsics = NYU_INTRINSICS,
) -> CropParams:
    """The crop centred on each pose's palm centre (``pose.centre``)."""
    return crop_params(pose.centre, cube_mm, intrinsics, size)


# --------------------------------------------------------------------------------------------
# Primitives
# --------------------------------------------------------------------------------------------


@dataclass
class Primitives:
    """Solid primitives of N scenes, camera space, mm.

    Attributes:
        capsule_a: (N, K, 3) segment start points.
        capsule_b: (N, K, 3) segment end points.
        capsule_radius: (N, K) radii.
        ellipsoid_centre: (N, E, 3) centres.
        ellipsoid_axes: (N, E, 3, 3) unit axis directions, one per row.
        ellipsoid_radii: (N, E, 3) semi-axis lengths along those rows.
    """

    capsule_a: Tensor
    capsule_b: Tensor
    capsule_radius: Tensor
    ellipsoid_centre: Tensor
    ellipsoid_axes: Tensor
    ellipsoid_radii: Tensor

    @classmethod
    def capsules(cls, a: Tensor, b: Tensor, radius: Tensor) -> Primitives:
        """Capsules only (no ellipsoid): ends ``a``, ``b`` (N, K, 3) and radii (N, K)."""
        n, dev = a.shape[0], a.device
        empty3 = torch.zeros(n, 0, 3, device=dev)
        return cls(a, b, radius, empty3, torch.zeros(n, 0, 3, 3, device=dev), empty3)

    def __len__(self) -> int:
        return int(self.capsule_a.shape[0])

    def __getitem__(self, index: slice | Tensor) -> Primitives:
        """Select a sub-batch of scenes."""
        return Primitives(**{f.name: getattr(self, f.name)[index] for f in fields(self)})


def _per_image(x: float | Tensor, n: int, dev: torch.device) -> Tensor:
    """A float or (N,) tensor as an (N, 1) tensor."""
    if isinstance(x, Tensor):
        return x.to(dev, torch.float32).reshape(-1, 1).expand(n, 1)
    return torch.full((n, 1), float(x), device=dev)


def hand_primitives(
    pose: HandPose,
    joints: Tensor | None = None,
    *,
    finger_radius: float | Tensor = 1.0,
    palm_thickness: float | Tensor = 1.0,
    knuckles: float | Tensor = 0.0,
) -> Primitives:
    """Capsules and ellipsoids of N hands (camera space, mm).

    Fingers: one capsule per bone with :data:`BONE_RADII_MM`. Palm: a flattened ellipsoid over
    the metacarpals plus capsules along its radial and ulnar edges, the knuckle row and the
    wrist, so it has the flat-topped, round-edged cross-section of a real palm; a thenar
    capsule joins the thumb's base to the palm and a thin one spans the first web space
    (thumb MCP to index MCP).

    Args:
        pose: the hands.
        joints: (N, J, 3) their joints (``forward_kinematics(pose)`` if None).
        finger_radius: factor on the finger radii (float or (N,)).
        palm_thickness: factor on the palm's thickness (float or (N,)).
        knuckles: if > 0, a sphere of ``knuckles`` x the bone radius on every finger MCP and
            PIP, shifted to the back of the hand (knuckle bumps); 0 leaves them out.
    """
    n, dev = len(pose), pose.device
    if joints is None:
        joints = forward_kinematics(pose)
    s = pose.scale.view(n, 1)
    fr = _per_image(finger_radius, n, dev)
    pt = _per_image(palm_thickness, n, dev)
    parent = torch.tensor([p for p, _ in FINGER_BONES], device=dev)
    child = torch.tensor([c for _, c in FINGER_BONES], device=dev)
    radii = torch.tensor(BONE_RADII_MM, device=dev).view(1, 15) * s * fr

    j = joints
    wrist, w_uln, w_rad = j[:, _J["wrist"]], j[:, _J["wrist_ulnar"]], j[:, _J["wrist_radial"]]
    mcps = j[:, [_J["index_mcp"], _J["middle_mcp"], _J["ring_mcp"], _J["little_mcp"]]]
    # Edge capsules start a little inside the wrist points so the palm's heel is rounded.
    heel_rad = w_rad + 0.25 * (mcps[:, 0] - w_rad)
    heel_uln = w_uln + 0.25 * (mcps[:, 3] - w_uln)
    # Thenar eminence: from the thumb's CMC into the palm; first web space: thumb MCP to the
    # index MCP, thin.
    t_cmc, t_mcp = j[:, _J["thumb_cmc"]], j[:, _J["thumb_mcp"]]
    thenar_end = 0.5 * (j[:, _J["palm_centre"]] + t_mcp)
    palm_a = torch.stack([heel_rad, heel_uln, mcps[:, 0], w_rad, t_cmc, t_mcp], dim=1)
    palm_b = torch.stack([mcps[:, 0], mcps[:, 3], mcps[:, 3], w_uln, thenar_end, mcps[:, 0]], dim=1)
    edge_r = PALM_EDGE_RADIUS_MM * s * pt
    palm_r = torch.cat(
        [
            edge_r,
            edge_r,
            edge_r * 0.95,
            WRIST_RADIUS_MM * s * pt,
            THENAR_RADIUS_MM * s * pt,
            WEB_RADIUS_MM * s,
        ],
        dim=1,
    )

    # Palm body: an ellipsoid aligned with the hand frame (rows: X radial, Y distal, Z palmar).
    axes = pose.rotation.transpose(1, 2).unsqueeze(1)  # (N, 1, 3, 3)
    centre = 0.5 * (0.5 * (w_rad + w_uln) + mcps.mean(dim=1))
    half_width = 0.5 * (mcps[:, 0] - mcps[:, 3]).norm(dim=1, keepdim=True) + 4.0 * s
    half_length = 0.5 * (mcps[:, 1] - wrist).norm(dim=1, keepdim=True) + 2.0 * s
    half_thick = PALM_HALF_THICKNESS_MM * s * pt
    e_centre = centre.unsqueeze(1)
    e_radii = torch.cat([half_width, half_length, half_thick], dim=1).unsqueeze(1)

    if isinstance(knuckles, Tensor) or knuckles > 0:
        kn = _per_image(knuckles, n, dev)
        # MCP and PIP joints of the four fingers (bones 3, 4, 6, 7, ... start at them).
        bone_ids = torch.tensor([3, 4, 6, 7, 9, 10, 12, 13], device=dev)
        centres = j[:, parent[bone_ids]]
        # Bumps sit on the back of the hand: shift along -Z (dorsal) of the hand frame.
        dorsal = -pose.rotation[:, :, 2].unsqueeze(1)
        r = radii[:, bone_ids] * kn
        centres = centres + dorsal * (0.25 * radii[:, bone_ids]).unsqueeze(-1)
        e_centre = torch.cat([e_centre, centres], dim=1)
        eye = torch.eye(3, device=dev).expand(n, 8, 3, 3)
        axes = torch.cat([axes, eye], dim=1)
        e_radii = torch.cat([e_radii, r.unsqueeze(-1).expand(n, 8, 3)], dim=1)

    return Primitives(
        capsule_a=torch.cat([j[:, parent], palm_a], dim=1),
        capsule_b=torch.cat([j[:, child], palm_b], dim=1),
        capsule_radius=torch.cat([radii, palm_r], dim=1),
        ellipsoid_centre=e_centre,
        ellipsoid_axes=axes,
        ellipsoid_radii=e_radii,
    )


def bone_radii(pose: HandPose) -> Tensor:
    """(N, 15) finger-bone radii in mm (simulator shape), :data:`FINGER_BONES` order."""
    return torch.tensor(BONE_RADII_MM, device=pose.device).view(1, 15) * pose.scale.view(-1, 1)


# --------------------------------------------------------------------------------------------
# Ray casting
# --------------------------------------------------------------------------------------------


def _v(x: Tensor) -> Tensor:
    return x.view(-1, 1, 1)


def capsule_ray_depth(a: Tensor, b: Tensor, r: Tensor, rx: Tensor, ry: Tensor) -> Tensor:
    """Depth of the first hit of camera rays ``(rx, ry, 1)`` with capsules; inf where missed.

    Args:
        a: (C, 3) segment starts, mm.
        b: (C, 3) segment ends, mm.
        r: (C,) radii, mm.
        rx: (C, 1, W) ray ``x/z`` per column.
        ry: (C, H, 1) ray ``y/z`` per row.

    Returns:
        (C, H, W) depth ``z`` (= the ray parameter, since rays have unit z) in mm.

    The cylinder is solved in the plane perpendicular to its axis ``u``: with ``q`` the camera's
    offset from the axis and ``w`` the ray's perpendicular part, ``|q + t w|^2 = r^2``. A hit
    whose axial coordinate falls before ``a`` (after ``b``) is replaced by the hit with the
    sphere at ``a`` (``b``), as for any convex capsule. Every per-pixel term is a sum of a
    per-column and a per-row part, which keeps the arithmetic to a few dozen element ops.
    """
    ba = b - a
    length = ba.norm(dim=1).clamp_min(1e-6)
    u = ba / length.unsqueeze(1)
    au = (a * u).sum(1)
    q = au.unsqueeze(1) * u - a
    qq = (q * q).sum(1)
    r2 = r * r
    du = _v(u[:, 0]) * rx + (_v(u[:, 1]) * ry + _v(u[:, 2]))
    qr = _v(q[:, 0]) * rx + (_v(q[:, 1]) * ry + _v(q[:, 2]))
    rr = rx * rx + (ry * ry + 1.0)
    ww = (rr - du * du).clamp_min_(1e-12)
    disc = qr * qr - ww * _v(qq - r2)
    hit = disc >= 0
    t = -(qr + disc.clamp_min_(0.0).sqrt_()) / ww
    s = t * du - _v(au)
    body = hit & (s >= 0) & (s <= _v(length))
    # Caps: the sphere at the end the cylinder hit fell beyond.
    before = s < 0
    ca = _v(a[:, 0]) * rx + (_v(a[:, 1]) * ry + _v(a[:, 2]))
    cb = _v(b[:, 0]) * rx + (_v(b[:, 1]) * ry + _v(b[:, 2]))
    cc = torch.where(before, ca, cb)
    k = torch.where(before, _v((a * a).sum(1) - r2), _v((b * b).sum(1) - r2))
    disc_c = cc * cc - rr * k
    cap_hit = hit & (disc_c >= 0)
    t_cap = (cc - disc_c.clamp_min_(0.0).sqrt_()) / rr
    inf = torch.full_like(t, math.inf)
    return torch.where(body, t, torch.where(cap_hit, t_cap, inf))


def ellipsoid_ray_depth(
    centre: Tensor, axes: Tensor, radii: Tensor, rx: Tensor, ry: Tensor
) -> Tensor:
    """Depth of the first hit of camera rays ``(rx, ry, 1)`` with ellipsoids; inf where missed.

    Args:
        centre: (C, 3) centres, mm.
        axes: (C, 3, 3) unit axis directions (rows).
        radii: (C, 3) semi-axes, mm.
        rx: (C, 1, W) ray ``x/z`` per column.
        ry: (C, H, 1) ray ``y/z`` per row.

    Returns:
        (C, H, W) depth in mm. Solved in the ellipsoid's unit-sphere coordinates
        ``p' = M (p - c)``, ``M = diag(1 / radii) @ axes``.
    """
    m = axes / radii.unsqueeze(-1)
    o = -(m @ centre.unsqueeze(-1)).squeeze(-1)  # (C, 3): camera in unit-sphere coordinates
    d = [_v(m[:, k, 0]) * rx + (_v(m[:, k, 1]) * ry + _v(m[:, k, 2])) for k in range(3)]
    a = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
    om = (o.unsqueeze(-1) * m).sum(1)  # o^T M: b = (o^T M) . ray
    bq = _v(om[:, 0]) * rx + (_v(om[:, 1]) * ry + _v(om[:, 2]))
    disc = bq * bq - a * _v((o * o).sum(1) - 1.0)
    hit = disc >= 0
    t = -(bq + disc.clamp_min_(0.0).sqrt_()) / a
    return torch.where(hit, t, torch.full_like(t, math.inf))


def _project_bbox(
    lo: Tensor, hi: Tensor, kx: Tensor, ox: Tensor, ky: Tensor, oy: Tensor
) -> tuple[Tensor, ...]:
    """Crop-pixel bounding boxes (each (C, K)) of axis-aligned boxes ``[lo, hi]`` (C, K, 3).

    The projection of a box in front of the camera is the convex hull of its 8 projected
    corners, so their extremes bound every solid inside it.
    """
    z = torch.stack([lo[..., 2], hi[..., 2]], dim=-1).clamp_min(1.0)  # (C, K, 2)
    xs = torch.stack([lo[..., 0], hi[..., 0]], dim=-1)
    ys = torch.stack([lo[..., 1], hi[..., 1]], dim=-1)
    px = xs.unsqueeze(-1) / z.unsqueeze(-2)  # (C, K, 2 x, 2 z)
    py = ys.unsqueeze(-1) / z.unsqueeze(-2)
    u0 = px.flatten(-2).amin(-1) * kx.view(-1, 1) + ox.view(-1, 1)
    u1 = px.flatten(-2).amax(-1) * kx.view(-1, 1) + ox.view(-1, 1)
    v0 = py.flatten(-2).amin(-1) * ky.view(-1, 1) + oy.view(-1, 1)
    v1 = py.flatten(-2).amax(-1) * ky.view(-1, 1) + oy.view(-1, 1)
    return u0, v0, u1, v1


def _splat_windows(
    canvas: Tensor,
    bbox: tuple[Tensor, ...],
    size: int,
    ray: tuple[Tensor, Tensor, Tensor, Tensor],
    depth_fn,
    params: tuple[Tensor, ...],
) -> None:
    """Evaluate primitive k of every image on its window and z-min it into ``canvas`` (C, S*S).

    The window has the same size for the whole chunk (its largest bounding box) and is shifted
    to lie inside the crop, which keeps every visible pixel of the primitive inside it.
    """
    ax, bx, ay, by = ray
    # Only the part of a bounding box inside the crop matters; a box entirely outside
    # collapses to an empty interval at the border.
    u0, v0, u1, v1 = (x.clamp(-1.0, float(size)) for x in bbox)
    c, dev = canvas.shape[0], canvas.device
    # Window sides per primitive, fetched in one transfer (one sync on a GPU).
    sides = torch.stack([(u1 - u0).amax(0), (v1 - v0).amax(0)]).ceil().add(2).clamp(1, size)
    for k, (wx, wy) in enumerate(sides.long().T.tolist()):
        ox = torch.ceil(u0[:, k]).clamp(0, size - wx).long()
        oy = torch.ceil(v0[:, k]).clamp(0, size - wy).long()
        cols = ox.view(c, 1) + torch.arange(wx, device=dev).view(1, wx)  # (C, wx)
        rows = oy.view(c, 1) + torch.arange(wy, device=dev).view(1, wy)
        rx = (ax.view(c, 1) + bx.view(c, 1) * cols.to(ax.dtype)).unsqueeze(1)
        ry = (ay.view(c, 1) + by.view(c, 1) * rows.to(ay.dtype)).unsqueeze(2)
        z = depth_fn(*(p[:, k] for p in params), rx, ry)
        index = (rows.unsqueeze(2) * size + cols.unsqueeze(1)).view(c, -1)
        canvas.scatter_reduce_(1, index, z.view(c, -1), reduce="amin")


def render_primitives(prims: Primitives, crop: CropParams) -> Tensor:
    """Z-buffer depth (N, 1, S, S) in mm of the primitives seen through the crops; inf = empty.

    Pixels whose centre falls outside the camera frame are empty too.
    """
    n, size = len(prims), crop.size
    if n != len(crop):
        raise ValueError(f"{n} scenes but {len(crop)} crops")
    out = []
    chunk = max(8, CHUNK_PIXELS // (size * size))
    for start in range(0, n, chunk):
        sl = slice(start, start + chunk)
        p, cr = prims[sl], crop[sl]
        c = len(p)
        ray = cr.ray_coefficients()
        ax, bx, ay, by = ray
        kx, ky = 1.0 / bx, 1.0 / by
        canvas = torch.full((c, size * size), math.inf, device=cr.device)
        r = p.capsule_radius.unsqueeze(-1)
        lo = torch.minimum(p.capsule_a, p.capsule_b) - r
        hi = torch.maximum(p.capsule_a, p.capsule_b) + r
        bbox = _project_bbox(lo, hi, kx, -ax * kx, ky, -ay * ky)
        capsules = (p.capsule_a, p.capsule_b, p.capsule_radius)
        _splat_windows(canvas, bbox, size, ray, capsule_ray_depth, capsules)
        if p.ellipsoid_centre.shape[1] > 0:
            # Half extents of an ellipsoid's axis-aligned bounding box.
            ext = ((p.ellipsoid_axes * p.ellipsoid_radii.unsqueeze(-1)) ** 2).sum(-2).sqrt()
            c0, c1 = p.ellipsoid_centre - ext, p.ellipsoid_centre + ext
            bbox = _project_bbox(c0, c1, kx, -ax * kx, ky, -ay * ky)
            ellipsoids = (p.ellipsoid_centre, p.ellipsoid_axes, p.ellipsoid_radii)
            _splat_windows(canvas, bbox, size, ray, ellipsoid_ray_depth, ellipsoids)
        out.append(canvas.view(c, 1, size, size))
    z = torch.cat(out, dim=0)
    return mask_outside_frame(z, crop)


def mask_outside_frame(depth_mm: Tensor, crop: CropParams) -> Tensor:
    """Set pixels whose centre falls outside the camera image to inf (no surface seen)."""
    w = crop.window()
    k = crop.intrinsics
    inside = (w[:, :2] >= -0.5).all() & (w[:, 2] <= k.width - 0.5).all()
    if bool(inside & (w[:, 3] <= k.height - 0.5).all()):
        return depth_mm
    return depth_mm.masked_fill(~crop.inside_frame(), math.inf)


# --------------------------------------------------------------------------------------------
# Hand rendering and labels
# --------------------------------------------------------------------------------------------


def render_hand_depth_mm(pose: HandPose, crop: CropParams, joints: Tensor | None = None) -> Tensor:
    """Clean hand depth (N, 1, S, S) in mm through the given crops; inf where no hand."""
    return render_primitives(hand_primitives(pose, joints), crop)


def render_plane_depth(normal: Tensor, offset: Tensor, crop: CropParams) -> Tensor:
    """Depth (N, 1, S, S) in mm of planes ``normal . p = offset`` seen through the crops; inf
    where a ray does not meet the plane in front of the camera."""
    rx, ry = crop.pixel_rays()
    nx, ny, nz = (normal[:, k].view(-1, 1, 1) for k in range(3))
    nd = nx * rx + (ny * ry + nz)
    t = offset.view(-1, 1, 1) / nd
    ok = (nd > 1e-6) & (t > 0)
    z = torch.where(ok, t, torch.full_like(t, math.inf)).unsqueeze(1)
    return mask_outside_frame(z, crop)


def wall_normal(tilt_x: Tensor, tilt_y: Tensor) -> Tensor:
    """(N, 3) unit normals of walls facing the camera, tilted by ``tilt_x`` about the image's x
    axis and ``tilt_y`` about its y axis, (N,) radians (0, 0: the normal is the optical axis)."""
    return torch.stack([torch.sin(tilt_y) * torch.cos(tilt_x), -torch.sin(tilt_x), torch.cos(tilt_y) * torch.cos(tilt_x)], dim=1)


def table_normal(elevation: Tensor, roll: Tensor) -> Tensor:
    """(N, 3) unit normals of tables under the hand (pointing down, y, and away from the camera)
    seen from ``elevation`` above the line of sight and rolled by ``roll``, (N,) radians."""
    return torch.stack(
        [-torch.sin(roll) * torch.cos(elevation), torch.cos(roll) * torch.cos(elevation), torch.sin(elevation)], dim=1
    )


def plane_offset_behind(joints: Tensor, normal: Tensor, scale: Tensor, gap: Tensor) -> Tensor:
    """(N,) offsets of planes ``normal . p = offset`` (normal (N, 3)) that keep ``gap`` (N, 1) mm
    clear of the hand: beyond its farthest joint (N, J, 3) along the normal plus a 12 mm skin
    margin scaled with the hand (``scale`` (N, 1)); at least 1 mm."""
    reach = (joints * normal.unsqueeze(1)).sum(-1).amax(dim=1, keepdim=True) + 12.0 * scale
    return (reach + gap).clamp_min(1.0).squeeze(1)
