"""Depth rendering and NYU-style crops: camera geometry, exact ray casting, labels, rotation."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from simgan_hand.render import (
    BONE_RADII_MM,
    FAR_VALUE,
    Primitives,
    capsule_ray_depth,
    crop_for_pose,
    crop_params,
    ellipsoid_ray_depth,
    hand_primitives,
    render_hand_depth_mm,
    render_primitives,
)
from simgan_hand.augment import rotation_matrix, warp_sample
from simgan_hand.simulator import simulate_hands
from simgan_hand.skeleton import (
    HAND_CENTRE_JOINT,
    JOINT_NAMES,
    NUM_JOINTS,
    NYU_INTRINSICS,
    forward_kinematics,
    global_rotation,
    sample_hand_pose,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _capsules(a: torch.Tensor, b: torch.Tensor, r: torch.Tensor) -> Primitives:
    """Capsule-only primitives for one scene."""
    empty = torch.zeros(1, 0, 3)
    return Primitives(a[None], b[None], r[None], empty, torch.zeros(1, 0, 3, 3), empty)


# --------------------------------------------------------------------------------------------
# Crop geometry
# --------------------------------------------------------------------------------------------


def test_crop_centre_window_and_metric_scale() -> None:
    centre = torch.tensor([[40.0, -25.0, 600.0], [-80.0, 30.0, 850.0]])
    crop = crop_params(centre, 300.0, NYU_INTRINSICS, 224)
    uvd = crop.project(centre.unsqueeze(1))[:, 0]
    assert torch.allclose(uvd, torch.tensor([[111.5, 111.5, 0.0]] * 2), atol=1e-3)
    # The window is the cube's front face projected at the centre depth.
    window = crop.window()
    width = window[:, 2] - window[:, 0]
    assert torch.allclose(width, 300.0 * NYU_INTRINSICS.fx / centre[:, 2], rtol=1e-5)
    # A point at the cube's side (150 mm right of the centre, same depth) is on the crop edge;
    # a point at the cube's far face has normalised depth +1.
    side = (centre + torch.tensor([150.0, 0.0, 0.0])).unsqueeze(1)
    assert torch.allclose(crop.project(side)[:, 0, 0], torch.full((2,), 111.5 + 112.0), atol=1e-3)
    back = (centre + torch.tensor([0.0, 0.0, 150.0])).unsqueeze(1)
    assert torch.allclose(crop.project(back)[:, 0, 2], torch.ones(2))
    # Image <-> crop maps are inverse.
    uv = torch.rand(2, 5, 2) * 600
    assert torch.allclose(crop.crop_to_image(crop.image_to_crop(uv)), uv, atol=1e-3)


def test_pixel_rays_hit_their_own_pixels() -> None:
    crop = crop_params(torch.tensor([[30.0, 10.0, 700.0]]), out=32)
    rx, ry = crop.pixel_rays()
    depth = 650.0
    points = torch.stack(
        [depth * rx.expand(1, 32, 32), depth * ry.expand(1, 32, 32), torch.full((1, 32, 32), depth)], dim=-1
    ).view(1, -1, 3)
    uvd = crop.project(points).view(32, 32, 3)
    rows, cols = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    assert torch.allclose(uvd[..., 0], cols, atol=1e-3) and torch.allclose(uvd[..., 1], rows, atol=1e-3)


def test_crop_params_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="shape"):
        crop_params(torch.zeros(3))
    with pytest.raises(ValueError, match="in front"):
        crop_params(torch.tensor([[0.0, 0.0, 100.0]]))
    with pytest.raises(ValueError, match="crop size"):
        crop_params(torch.tensor([[0.0, 0.0, 600.0]]), out=4)


# --------------------------------------------------------------------------------------------
# Ray casting against independent references
# --------------------------------------------------------------------------------------------


def _sphere_trace(a: torch.Tensor, b: torch.Tensor, r: torch.Tensor, rays: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Float64 sphere tracing of rays (P, 3) (unit z) against capsules: depth and certainty."""
    a, b, r, rays = a.double(), b.double(), r.double(), rays.double()
    unit = rays / rays.norm(dim=1, keepdim=True)
    s = torch.zeros(rays.shape[0], dtype=torch.float64)
    for _ in range(400):
        p = s[:, None, None] * unit[:, None, :]  # (P, 1, 3)
        ab = b - a
        h = (((p - a) * ab).sum(-1) / (ab * ab).sum(-1)).clamp(0.0, 1.0)
        sdf = ((p - a - h[..., None] * ab).norm(dim=-1) - r).amin(dim=1)
        s = torch.where(s < 3000, s + sdf, s)
    hit = sdf.abs() < 1e-6
    miss = s >= 3000
    depth = s * unit[:, 2]
    return torch.where(hit, depth, torch.full_like(depth, math.inf)), hit | miss


def test_capsules_match_sphere_tracing() -> None:
    g = _gen(11)
    centre = torch.tensor([15.0, -20.0, 640.0])
    a = centre + (torch.rand(6, 3, generator=g) - 0.5) * 120
    b = centre + (torch.rand(6, 3, generator=g) - 0.5) * 120
    a[5] = centre
    b[5] = centre + torch.tensor([400.0, 250.0, 150.0])  # leaves the crop: window clamping
    r = 4.0 + 10.0 * torch.rand(6, generator=g)
    crop = crop_params(centre[None], out=40)
    depth = render_primitives(_capsules(a, b, r), crop)[0, 0]
    rx, ry = crop.pixel_rays()
    rays = torch.stack([rx.expand(1, 40, 40), ry.expand(1, 40, 40), torch.ones(1, 40, 40)], dim=-1).view(-1, 3)
    ref, certain = _sphere_trace(a, b, r, rays)
    ref, certain = ref.view(40, 40).float(), certain.view(40, 40)
    assert certain.float().mean() > 0.97
    both = certain & torch.isfinite(ref)
    assert both.sum() > 100
    assert torch.equal(torch.isfinite(depth)[certain], torch.isfinite(ref)[certain])
    # float32 ray casting is accurate to a few hundredths of a millimetre.
    assert (depth[both] - ref[both]).abs().max() < 0.05


def test_sphere_depth_by_hand() -> None:
    c = torch.tensor([30.0, -20.0, 700.0])
    crop = crop_params(c[None], out=33)  # odd size: pixel 16 is the centre's ray
    tiny = torch.tensor([0.0, 0.0, 1e-3])
    depth = render_primitives(_capsules((c - tiny)[None], (c + tiny)[None], torch.tensor([10.0])), crop)
    # Along the ray through the centre, the sphere starts 10 mm before it.
    expected = (c.norm() - 10.0) * c[2] / c.norm()
    assert depth[0, 0, 16, 16].item() == pytest.approx(expected.item(), abs=0.01)


def test_ellipsoid_hits_are_first_surface_points() -> None:
    g = _gen(12)
    centre = torch.tensor([[-10.0, 25.0, 720.0]])
    axes = torch.linalg.qr(torch.randn(3, 3, generator=g))[0].T[None]
    radii = torch.tensor([[45.0, 30.0, 12.0]])
    crop = crop_params(centre, cube_mm=120.0, out=32)
    rx, ry = crop.pixel_rays()
    z = ellipsoid_ray_depth(centre, axes, radii, rx, ry)[0]
    rays = torch.stack([rx.expand(1, 32, 32)[0], ry.expand(1, 32, 32)[0], torch.ones(32, 32)], dim=-1)
    m = (axes[0] / radii[0, :, None]).double()

    def level(points: torch.Tensor) -> torch.Tensor:
        return ((points.double() - centre[0].double()) @ m.T).norm(dim=-1)

    hit = torch.isfinite(z)
    assert 100 < hit.sum() < 1024
    on_surface = level(z[hit, None] * rays[hit])
    assert torch.allclose(on_surface, torch.ones_like(on_surface), atol=1e-3)
    # No point of a ray before its hit (or anywhere, for a miss) is inside the ellipsoid.
    t = torch.linspace(600.0, 850.0, 2001)
    along = level(t[:, None, None, None] * rays[None])  # (T, 32, 32)
    before = t[:, None, None] < torch.where(hit, z, torch.full_like(z, math.inf)) - 1e-2
    assert (along[before] > 1.0 - 1e-6).all()


def test_windowed_render_equals_full_grid() -> None:
    pose = sample_hand_pose(12, _gen(13))
    crop = crop_for_pose(pose, 64)
    prims = hand_primitives(pose, knuckles=1.05)
    windowed = render_primitives(prims, crop)
    rx, ry = crop.pixel_rays()
    full = torch.full((12, 64, 64), math.inf)
    for k in range(prims.capsule_a.shape[1]):
        full = torch.minimum(
            full, capsule_ray_depth(prims.capsule_a[:, k], prims.capsule_b[:, k], prims.capsule_radius[:, k], rx, ry)
        )
    for k in range(prims.ellipsoid_centre.shape[1]):
        full = torch.minimum(
            full,
            ellipsoid_ray_depth(prims.ellipsoid_centre[:, k], prims.ellipsoid_axes[:, k], prims.ellipsoid_radii[:, k], rx, ry),
        )
    assert torch.equal(torch.isfinite(windowed[:, 0]), torch.isfinite(full))
    fin = torch.isfinite(full)
    assert torch.allclose(windowed[:, 0][fin], full[fin], atol=1e-3)


# --------------------------------------------------------------------------------------------
# Rendered crops and labels
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [64, 224])
def test_joints_lie_on_the_rendered_hand(size: int) -> None:
    n = 48 if size == 64 else 12
    pose = sample_hand_pose(n, _gen(14))
    crop = crop_for_pose(pose, size)
    joints = forward_kinematics(pose)
    image = crop.depth_to_image(render_hand_depth_mm(pose, crop, joints))
    uvd = crop.project(joints)
    col, row = uvd[..., 0].round().long(), uvd[..., 1].round().long()
    inside = (col >= 0) & (col < size) & (row >= 0) & (row < size)
    assert inside.float().mean() > 0.98
    idx = torch.arange(n)[:, None].expand(n, NUM_JOINTS)
    value = image[idx[inside], 0, row[inside], col[inside]]
    d = uvd[..., 2][inside]
    # Every joint sits inside the hand's solid, so its pixel shows the hand (not background)
    # and the surface seen there is no farther than the joint itself.
    assert (value < FAR_VALUE).all()
    assert (value <= d + 1e-3).all()
    # Most joints are near the visible surface rather than hidden behind other fingers.
    gap_mm = (d - value) * 150.0
    assert (gap_mm <= 15.0).float().mean() > 0.5


def test_flat_hand_surface_is_one_bone_radius_in_front_of_its_joints() -> None:
    """An open hand facing the camera hides nothing, so at every finger joint's pixel the
    surface seen is the front of the joint's own (largest adjacent) bone: one radius nearer."""
    n, size = 16, 224
    pose = sample_hand_pose(n, _gen(21))
    zero = torch.zeros(n)
    pose = dataclasses.replace(
        pose,
        rotation=global_rotation(zero, zero, zero),
        flexion=torch.zeros(n, 5, 3),
        abduction=torch.zeros(n, 5),
    )
    crop = crop_for_pose(pose, size)
    joints = forward_kinematics(pose)
    depth = render_hand_depth_mm(pose, crop, joints)[:, 0]
    uvd = crop.project(joints)
    radii = torch.tensor(BONE_RADII_MM) * pose.scale.view(n, 1, 1)  # (N, 5, 3) mm
    names = {name: i for i, name in enumerate(JOINT_NAMES)}
    checks = []
    for f, finger in enumerate(("thumb", "index", "middle", "ring", "little")):
        mid, end = ("ip", "tip") if finger == "thumb" else ("dip", "tip")
        joints_radius = {end: radii[:, f, 2], mid: torch.maximum(radii[:, f, 1], radii[:, f, 2])}
        if finger != "thumb":
            joints_radius["pip"] = torch.maximum(radii[:, f, 0], radii[:, f, 1])
        checks += [(names[f"{finger}_{j}"], r) for j, r in joints_radius.items()]
    rx, ry = crop.pixel_rays()
    for j, r in checks:
        col, row = uvd[:, j, 0].round().long(), uvd[:, j, 1].round().long()
        ray_len = torch.sqrt(rx[torch.arange(n), 0, col] ** 2 + ry[torch.arange(n), row, 0] ** 2 + 1.0)
        # Along the ray (nearly through the joint) the joint's own sphere starts exactly r in
        # front of it; its bone's cylinder at most r / cos(ray angle). Pixel rounding moves the
        # ray by < 1 mm at 224 px.
        gap = joints[:, j].norm(dim=1) - depth[torch.arange(n), row.clamp(0, size - 1), col.clamp(0, size - 1)] * ray_len
        # A big hand's straight middle finger can reach past the 150 mm half cube.
        inside = (col >= 0) & (col < size) & (row >= 0) & (row < size)
        assert inside.float().mean() > 0.8
        gap, r = gap[inside], r[inside]
        assert (gap >= r - 1.0).all() and (gap <= r * ray_len[inside] + 1.0).all(), JOINT_NAMES[j]


@pytest.mark.parametrize("size", [64, 96, 224])
def test_hand_centre_at_crop_centre(size: int) -> None:
    images, labels = simulate_hands(8, _gen(15), size=size)
    palm3 = labels["joints_uvd"][:, 13]
    assert torch.allclose(palm3, torch.tensor([(size - 1) / 2, (size - 1) / 2, 0.0]).expand(8, 3), atol=1e-3)
    assert torch.allclose(labels["skeleton_xyz"][:, HAND_CENTRE_JOINT], labels["centre_mm"], atol=1e-3)
    c = size // 2
    assert (images[:, 0, c - 1 : c + 1, c - 1 : c + 1] < FAR_VALUE).all()


def test_range_and_background_value() -> None:
    images, labels = simulate_hands(32, _gen(16), size=96)
    assert images.shape == (32, 1, 96, 96) and images.dtype == torch.float32
    assert images.min() >= -1.0 and images.max() <= 1.0
    fg = images < FAR_VALUE
    frac = fg.float().mean((1, 2, 3))
    assert (frac > 0.03).all() and (frac < 0.6).all()
    # Background is exactly the far value; the hand lies around the centre depth.
    assert (images[~fg] == FAR_VALUE).all()
    assert images[fg].abs().max() < 0.9
    assert set(labels) == {"joints_uvd", "skeleton_xyz", "centre_mm"}
    assert labels["joints_uvd"].shape == (32, 14, 3) and labels["skeleton_xyz"].shape == (32, NUM_JOINTS, 3)


def test_resolution_changes_only_sampling() -> None:
    pose = sample_hand_pose(16, _gen(17))
    crop_big, crop_small = crop_for_pose(pose, 224), crop_for_pose(pose, 112)
    big = crop_big.depth_to_image(render_hand_depth_mm(pose, crop_big))
    small = crop_small.depth_to_image(render_hand_depth_mm(pose, crop_small))
    # Same window: crop coordinates scale as (u + 0.5) * 112 / 224 - 0.5.
    joints = forward_kinematics(pose)
    uv_big, uv_small = crop_big.project(joints), crop_small.project(joints)
    assert torch.allclose((uv_big[..., :2] + 0.5) / 2 - 0.5, uv_small[..., :2], atol=1e-3)
    assert torch.allclose(uv_big[..., 2], uv_small[..., 2])
    # Hand area (as a fraction of the crop) and mean hand depth agree.
    fa, fb = (big < 1).float().mean((1, 2, 3)), (small < 1).float().mean((1, 2, 3))
    assert torch.allclose(fa, fb, rtol=0.05)
    da = (big * (big < 1)).sum((1, 2, 3)) / (big < 1).sum((1, 2, 3))
    db = (small * (small < 1)).sum((1, 2, 3)) / (small < 1).sum((1, 2, 3))
    assert torch.allclose(da, db, atol=0.01)


def test_simulator_deterministic_and_bad_inputs() -> None:
    a, la = simulate_hands(6, _gen(18), size=64)
    b, lb = simulate_hands(6, _gen(18), size=64)
    c, _ = simulate_hands(6, _gen(19), size=64)
    assert torch.equal(a, b) and torch.equal(la["joints_uvd"], lb["joints_uvd"])
    assert not torch.equal(a, c)
    with pytest.raises(ValueError, match="positive integer"):
        simulate_hands(0, _gen())
    with pytest.raises(ValueError, match="generator is on device"):
        simulate_hands(2, _gen(), device="meta")
    with pytest.raises(ValueError, match="crop size"):
        simulate_hands(2, _gen(), size=4)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_layout_and_is_deterministic() -> None:
    g1 = torch.Generator(device="cuda").manual_seed(3)
    g2 = torch.Generator(device="cuda").manual_seed(3)
    a, la = simulate_hands(8, g1, device="cuda", size=96)
    b, _ = simulate_hands(8, g2, device="cuda", size=96)
    assert a.is_cuda and la["joints_uvd"].is_cuda and torch.equal(a, b)
    with pytest.raises(ValueError, match="generator is on device"):
        simulate_hands(2, _gen(), device="cuda")


# --------------------------------------------------------------------------------------------
# In-plane rotation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("angle_deg", [30.0, -45.0, 90.0, 137.0])
def test_rotation_moves_marker_to_rotated_label(angle_deg: float) -> None:
    size = 64
    points = torch.tensor([[10.0, 20.0], [45.0, 12.0], [30.0, 50.0], [31.5, 31.5]])
    image = torch.ones(len(points), 1, size, size)
    for i, (u, v) in enumerate(points.long().tolist()):
        image[i, 0, v - 1 : v + 2, u - 1 : u + 2] = -1.0  # 3x3 marker centred on the label
    labels = torch.cat([points, torch.full((len(points), 1), -0.2)], dim=1).unsqueeze(1)
    labels[3, 0, :2] = torch.tensor([31.0, 31.0])
    rotated, new = warp_sample(image, labels, rotation_matrix(angle_deg, size, n=len(points)))
    assert torch.equal(new[..., 2], labels[..., 2])
    for i in range(len(points)):
        u, v = new[i, 0, :2].round().long().tolist()
        if 0 <= u < size and 0 <= v < size:
            assert rotated[i, 0, v, u] < 0
        marker = (rotated[i, 0] < 0).nonzero().float()
        assert (marker.mean(0).flip(0) - new[i, 0, :2]).norm() < 0.5
    if angle_deg % 90:
        assert (rotated[:, 0, 0, 0] == FAR_VALUE).all()  # uncovered corners are background


def test_rotation_direction_and_rendered_hand() -> None:
    c = 31.5
    labels = torch.tensor([[[c + 10.0, c, 0.0]]])
    _, new = warp_sample(torch.ones(1, 1, 64, 64), labels, rotation_matrix(90.0, 64))
    # Counter-clockwise as displayed: right of the centre goes up (smaller row).
    assert torch.allclose(new[0, 0, :2], torch.tensor([c, c - 10.0]), atol=1e-4)
    images, lab = simulate_hands(8, _gen(20), size=96)
    matrices = torch.cat([rotation_matrix(a, 96) for a in torch.linspace(-20, 20, 8).tolist()])  # the paper's +-20 deg
    rot, uvd = warp_sample(images, lab["joints_uvd"], matrices)
    col, row = uvd[..., 0].round().long(), uvd[..., 1].round().long()
    ok = (col >= 0) & (col < 96) & (row >= 0) & (row < 96)
    idx = torch.arange(8)[:, None].expand(8, 14)
    assert (rot[idx[ok], 0, row[ok], col[ok]] < FAR_VALUE).float().mean() > 0.95
