"""NYU Hand loader on files fabricated per data-formats.md 4.7: PNG packing, crops, labels, errors.

The fabricated frames: a flat hand disc at 800 mm around the projection of PALM_3 (z = 770 mm),
a "forearm" strip at 830 mm below it that the synthdepth render (the disc only) does not cover,
a small "near" patch at 500 mm beside the hand, and a background wall at 2000 mm. Expected crop
values are computed here from the official formulas, independently of the loader.
"""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from simgan_hand.nyu import NYUHandLoader
from simgan_toolkit.plugin.lazy import resolve
from simgan_hand.nyu_files import (
    NYU_EVAL_FILE_INDICES,
    NYU_JOINT_NAMES,
    PALM_3,
    pack_depth_rgb,
    read_depth_png,
    unpack_depth_rgb,
)
from simgan_hand.skeleton import NYU_EVAL_NAMES, NYU_INTRINSICS
from simgan_toolkit.data import DatasetLoader
from simgan_toolkit.errors import ConfigError, DataError

# Official MATLAB helpers (convert_xyz_to_uvd.m): y up in xyz.
FX, FY, CX, CY = 588.036865, 587.075073, 320.0, 240.0
SIZE, CUBE = 224, 300.0
HAND_MM, FOREARM_MM, NEAR_MM, WALL_MM = 800, 830, 500, 2000
RADIUS_PX = 30
#: PALM_3 of the fabricated frames, NYU xyz (y up), mm. Frame 2 sits near the left image edge.
CENTRES_UP = [(20.0, 30.0, 770.0), (-270.0, -10.0, 700.0)]


def official_uv(xyz_up: np.ndarray) -> np.ndarray:
    """(..., 3) NYU xyz (y up) -> (..., 2) image u, v with the official formulas."""
    x, y, z = xyz_up[..., 0], xyz_up[..., 1], xyz_up[..., 2]
    return np.stack([FX * x / z + CX, CY - FY * y / z], axis=-1)


# --------------------------------------------------------------------------------------------
# Fabrication (data-formats.md 4.7)
# --------------------------------------------------------------------------------------------


def fabricate_xyz(centres_up: list[tuple[float, float, float]]) -> np.ndarray:
    """(3, N, 36, 3) float64 joints, y up: PALM_3 at each centre, the others scattered around it
    (z 600-1000); Kinects 2 and 3 are shifted copies so the selected Kinect is visible."""
    rng = np.random.default_rng(0)
    offsets = rng.uniform([-70, -70, -20], [70, 70, 20], size=(36, 3))
    offsets[PALM_3] = 0.0
    k1 = np.array(centres_up)[:, None, :] + offsets[None]
    return np.stack([k1, k1 + [15.0, 0, 0], k1 + [0, 0, 25.0]]).astype(np.float64)


def write_joint_data(folder: Path, xyz: np.ndarray, **override: object) -> None:
    """joint_data.mat with joint_names (1, 36) object array, joint_xyz and joint_uvd."""
    names = np.empty((1, 36), dtype=object)
    names[0, :] = NYU_JOINT_NAMES
    uvd = np.concatenate([official_uv(xyz), xyz[..., 2:]], axis=-1)
    mat = {"joint_names": names, "joint_xyz": xyz, "joint_uvd": uvd}
    mat.update(override)
    scipy.io.savemat(folder / "joint_data.mat", {k: v for k, v in mat.items() if v is not None})


def write_png(path: Path, depth_mm: np.ndarray) -> None:
    Image.fromarray(pack_depth_rgb(depth_mm), "RGB").save(path)


def hand_frames(centre_up: tuple[float, float, float], wall_mm: int = WALL_MM) -> tuple[np.ndarray, np.ndarray]:
    """(depth, synthdepth) (480, 640) int mm of one fabricated frame."""
    uc, vc = official_uv(np.array(centre_up))
    rows, cols = np.mgrid[0:480, 0:640]
    disc = (cols - uc) ** 2 + (rows - vc) ** 2 <= RADIUS_PX**2
    forearm = (np.abs(cols - uc) <= 15) & (rows > vc + RADIUS_PX - 5) & (rows < vc + RADIUS_PX + 80) & ~disc
    near = (np.abs(cols - (uc + 60)) <= 5) & (np.abs(rows - vc) <= 5)
    depth = np.full((480, 640), wall_mm)
    depth[forearm], depth[near], depth[disc] = FOREARM_MM, NEAR_MM, HAND_MM
    synth = np.where(disc, HAND_MM, 0)
    return depth, synth


def write_split(folder: Path, centres_up: list[tuple[float, float, float]], walls: list[int]) -> None:
    folder.mkdir(parents=True)
    write_joint_data(folder, fabricate_xyz(centres_up))
    for f, (centre, wall) in enumerate(zip(centres_up, walls), start=1):
        depth, synth = hand_frames(centre, wall)
        write_png(folder / f"depth_1_{f:07d}.png", depth)
        write_png(folder / f"synthdepth_1_{f:07d}.png", synth)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dataset/train (2 frames: a hand; a hand at the left edge before a wall at hand depth)
    and dataset/test (1 frame)."""
    root = tmp_path_factory.mktemp("nyu") / "dataset"
    write_split(root / "train", CENTRES_UP, [WALL_MM, HAND_MM])
    write_split(root / "test", CENTRES_UP[:1], [WALL_MM])
    return root


@pytest.fixture
def train_copy(dataset: Path, tmp_path: Path) -> Path:
    """A private copy of dataset/train to damage."""
    return Path(shutil.copytree(dataset / "train", tmp_path / "train"))


def read_frame(root: Path, frame: int = 1, **options: object):
    loader = NYUHandLoader(**options)
    units = loader.units(root)
    return loader.read_unit(units[frame - 1])


def crop_geometry(centre_up: tuple[float, float, float]) -> tuple[float, float, float]:
    """Image (uc, vc) of the crop centre and crop pixels per image pixel along u (render.py)."""
    uc, vc = official_uv(np.array(centre_up))
    return float(uc), float(vc), SIZE * centre_up[2] / (CUBE * FX)


def crop_to_image(centre_up: tuple[float, float, float], col: float, row: float) -> tuple[float, float]:
    uc, vc, sx = crop_geometry(centre_up)
    sy = SIZE * centre_up[2] / (CUBE * FY)
    return (col - 111.5) / sx + uc, (row - 111.5) / sy + vc


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def test_depth_png_packing_round_trips(tmp_path: Path) -> None:
    values = np.array([0, 255, 256, 1234, 65535])
    depth = np.zeros((480, 640), dtype=np.int64)
    depth[0, :5] = values
    rgb = pack_depth_rgb(depth)
    assert rgb.dtype == np.uint8 and rgb.shape == (480, 640, 3)
    assert (rgb[..., 0] == 0).all()
    assert rgb[0, :5, 1].tolist() == [0, 0, 1, 4, 255] and rgb[0, :5, 2].tolist() == [0, 255, 0, 210, 255]
    write_png(tmp_path / "d.png", depth)
    decoded = read_depth_png(tmp_path / "d.png")
    assert decoded.dtype == np.float32 and decoded.shape == (480, 640)
    assert decoded[0, :5].tolist() == values.tolist()
    assert unpack_depth_rgb(rgb)[0, :5].tolist() == values.tolist()


def test_official_intrinsics_match_the_simulator_camera_with_y_flipped() -> None:
    xyz_up = fabricate_xyz(CENTRES_UP)[0].reshape(-1, 3)
    xyz_down = torch.from_numpy(xyz_up * [1.0, -1.0, 1.0])
    uvz = NYU_INTRINSICS.project(xyz_down).numpy()
    assert np.abs(uvz[:, :2] - official_uv(xyz_up)).max() < 1e-9


def test_evaluation_joints_follow_the_simulator_order() -> None:
    assert tuple(NYU_JOINT_NAMES[i] for i in NYU_EVAL_FILE_INDICES) == NYU_EVAL_NAMES
    assert NYU_JOINT_NAMES[PALM_3] == "PALM_3" and PALM_3 == 32


def test_mat_round_trip_as_in_the_reference(dataset: Path) -> None:
    mat = scipy.io.loadmat(dataset / "train" / "joint_data.mat")
    assert mat["joint_names"][0][0] == "F1_KNU3_A"
    assert mat["joint_uvd"][0].shape == (2, 36, 3)


# --------------------------------------------------------------------------------------------
# Units, roots, detection
# --------------------------------------------------------------------------------------------


def test_units_come_from_joint_data_without_decoding(dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("units() must not open PNGs")

    monkeypatch.setattr(Image, "open", no_decoding)
    units = NYUHandLoader().units(dataset / "train")
    assert [u.key for u in units] == ["1_0000001", "1_0000002"]
    assert units[1].path == dataset / "train" / "depth_1_0000002.png"
    synth = NYUHandLoader(kind="synthdepth").units(dataset / "train")
    assert synth[0].path == dataset / "train" / "synthdepth_1_0000001.png"
    assert [u.key for u in NYUHandLoader(split="test").units(dataset)] == ["1_0000001"]


def test_roots_and_detection(dataset: Path, tmp_path: Path) -> None:
    assert NYUHandLoader.detect(dataset) and NYUHandLoader.detect(dataset / "train")
    assert not NYUHandLoader.detect(tmp_path)
    with pytest.raises(DataError, match="split"):
        NYUHandLoader().units(dataset)
    with pytest.raises(DataError, match="not an NYU Hand folder"):
        NYUHandLoader().units(tmp_path)
    with pytest.raises(DataError, match="split='train'"):
        NYUHandLoader(split="train").units(dataset / "test")
    # Kinect 2 has joints but no PNGs here.
    with pytest.raises(DataError, match="depth_2_NNNNNNN.png"):
        NYUHandLoader(kinect=2).units(dataset / "train")


def test_split_messages_name_the_split_folders_present(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"holds the NYU split folders train/ and test/; set the option split to 'train' or 'test'"):
        NYUHandLoader().units(dataset)
    only_train = tmp_path / "dataset"
    shutil.copytree(dataset / "train", only_train / "train")
    with pytest.raises(DataError, match=r"holds the NYU split folder train/; set the option split to 'train'$"):
        NYUHandLoader().units(only_train)
    with pytest.raises(DataError, match=r"test: missing joint_data.mat \(\S+ holds only train/\)"):
        NYUHandLoader(split="test").units(only_train)


def test_unit_files_are_the_pngs_read_and_joint_data(dataset: Path) -> None:
    train = dataset / "train"
    names = {
        "depth": ["depth_1_0000002.png", "synthdepth_1_0000002.png", "joint_data.mat"],
        "synthdepth": ["synthdepth_1_0000002.png", "joint_data.mat"],
        "unmasked": ["depth_1_0000002.png", "joint_data.mat"],
    }
    loaders = {"depth": NYUHandLoader(), "synthdepth": NYUHandLoader(kind="synthdepth"), "unmasked": NYUHandLoader(mask="none")}
    for kind, loader in loaders.items():
        assert loader.unit_files(loader.units(train)[1]) == [train / name for name in names[kind]], kind


def test_options_are_checked() -> None:
    for bad in ({"kind": "rgb"}, {"mask": "bbox"}, {"kinect": 4}, {"split": "val"}, {"cube_mm": 0}, {"centre": "x"}):
        with pytest.raises(ConfigError):
            NYUHandLoader(**bad)
    loader = NYUHandLoader()
    assert isinstance(loader, DatasetLoader) and loader.mask == "synthdepth"
    assert NYUHandLoader(kind="synthdepth").mask == "none"
    assert loader.image_shape == (1, 224, 224)
    assert loader.label_shapes == {"joints_uvd": (14, 3), "joints_xyz": (14, 3), "centre_mm": (3,)}


def test_registered(registry) -> None:
    assert resolve(registry.get("dataset", "nyu_hand").factory) is NYUHandLoader


# --------------------------------------------------------------------------------------------
# Crops
# --------------------------------------------------------------------------------------------


def expected_crop(depth_mm: np.ndarray, centre_up: tuple[float, float, float], keep: np.ndarray | None) -> np.ndarray:
    """Independent reference: nearest Kinect pixel at every crop pixel centre, normalised."""
    zc = centre_up[2]
    idx = np.arange(SIZE, dtype=np.float64)
    u, _ = crop_to_image(centre_up, idx, 0.0)
    _, v = crop_to_image(centre_up, 0.0, idx)
    cols, rows = np.floor(u + 0.5).astype(int), np.floor(v + 0.5).astype(int)
    inside = ((rows >= 0) & (rows < 480))[:, None] & ((cols >= 0) & (cols < 640))[None, :]
    z = depth_mm[rows.clip(0, 479)][:, cols.clip(0, 639)].astype(np.float64)
    if keep is not None:
        z = np.where(keep[rows.clip(0, 479)][:, cols.clip(0, 639)], z, 0.0)
    d = (z - zc) / (CUBE / 2)
    return np.where(~inside | (z <= 0) | (d > 1), 1.0, d.clip(-1, 1))


def test_crop_values_without_mask(dataset: Path) -> None:
    out = read_frame(dataset / "train", mask="none")
    img = out.images
    assert img.shape == (1, 1, 224, 224) and img.dtype == torch.float32
    centre = CENTRES_UP[0]
    hand = (HAND_MM - centre[2]) / 150  # 0.2
    assert img[0, 0, 111, 111].item() == pytest.approx(hand) and img[0, 0, 112, 112].item() == pytest.approx(hand)
    assert img[0, 0, 0, 0].item() == 1.0  # wall at 2000 mm: beyond the cube
    # The forearm strip 50 crop px below the centre, the near patch 60 Kinect px to the right.
    row_forearm = 111 + 50
    assert img[0, 0, row_forearm, 111].item() == pytest.approx((FOREARM_MM - centre[2]) / 150)
    _, _, sx = crop_geometry(centre)
    assert img[0, 0, 111, round(111.5 + 60 * sx)].item() == -1.0  # 500 mm: nearer than the cube
    depth, _ = hand_frames(centre)
    np.testing.assert_allclose(img[0, 0].numpy(), expected_crop(depth, centre, None), atol=1e-6)


def test_synthdepth_mask_removes_forearm_and_near_patch(dataset: Path) -> None:
    centre = CENTRES_UP[0]
    img = read_frame(dataset / "train").images[0, 0]  # default mask="synthdepth", dilate 2
    assert img[111, 111].item() == pytest.approx((HAND_MM - centre[2]) / 150)
    assert img[111 + 50, 111].item() == 1.0
    _, _, sx = crop_geometry(centre)
    assert img[111, round(111.5 + 60 * sx)].item() == 1.0
    depth, synth = hand_frames(centre)
    # The disc dilated by 2 px (a 5x5 square): what the loader keeps.
    keep = np.zeros((480, 640), dtype=bool)
    for dr in range(-2, 3):
        for dc in range(-2, 3):
            keep |= np.roll(np.roll(synth > 0, dr, axis=0), dc, axis=1)
    np.testing.assert_allclose(img.numpy(), expected_crop(depth, centre, keep), atol=1e-6)
    # Dilation 0 keeps exactly the synthdepth silhouette; the forearm touching the disc goes.
    img0 = read_frame(dataset / "train", mask_dilate=0).images[0, 0]
    np.testing.assert_allclose(img0.numpy(), expected_crop(depth, centre, synth > 0), atol=1e-6)
    assert (img0 < 1).sum() < (img < 1).sum()


def test_pixels_outside_the_frame_read_as_no_reading(dataset: Path) -> None:
    # Frame 2: hand near the left edge in front of a wall at hand depth, no mask: inside the
    # frame the wall is in the cube, outside it is the far value.
    centre = CENTRES_UP[1]
    img = read_frame(dataset / "train", frame=2, mask="none").images[0, 0]
    uc, _, sx = crop_geometry(centre)
    first_inside = int(np.ceil(111.5 + (-0.5 - uc) * sx))
    assert 0 < first_inside < 111
    assert (img[:, :first_inside] == 1.0).all()
    assert (img[:, first_inside] < 1.0).all()
    depth, _ = hand_frames(centre, HAND_MM)
    np.testing.assert_allclose(img.numpy(), expected_crop(depth, centre, None), atol=1e-6)


def test_synthdepth_kind_crops_the_render(dataset: Path) -> None:
    centre = CENTRES_UP[0]
    out = read_frame(dataset / "train", kind="synthdepth")
    _, synth = hand_frames(centre)
    np.testing.assert_allclose(out.images[0, 0].numpy(), expected_crop(synth, centre, None), atol=1e-6)
    assert out.images[0, 0, 0, 0].item() == 1.0  # background 0 = no reading


def test_centre_of_mass_option(dataset: Path) -> None:
    # Undilated, the masked cube holds only the flat disc at 800 mm around PALM_3's projection.
    out = read_frame(dataset / "train", centre="com", mask_dilate=0)
    x, y, z = CENTRES_UP[0]
    expected = np.array([x, -y, z]) * HAND_MM / z
    np.testing.assert_allclose(out.labels["centre_mm"][0].numpy(), expected, atol=1.5)
    assert out.images[0, 0, 111, 111].item() == pytest.approx(0.0, abs=1e-6)


# --------------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------------


def test_labels_are_projected_crop_pixels_in_simulator_order(dataset: Path) -> None:
    out = read_frame(dataset / "train", mask="none")
    labels = out.labels
    assert labels["joints_uvd"].shape == (1, 14, 3) and labels["joints_uvd"].dtype == torch.float32
    centre = CENTRES_UP[0]
    xyz_up = fabricate_xyz(CENTRES_UP)[0, 0]  # kinect 1, frame 1
    # PALM_3 (last evaluation joint) at the crop centre, depth 0.
    np.testing.assert_allclose(labels["joints_uvd"][0, 13].numpy(), [111.5, 111.5, 0.0], atol=1e-4)
    np.testing.assert_allclose(labels["centre_mm"][0].numpy(), [centre[0], -centre[1], centre[2]], atol=1e-4)
    # Every joint by hand: official uv of the file, then the crop map of render.py.
    uc, vc, sx = crop_geometry(centre)
    sy = SIZE * centre[2] / (CUBE * FY)
    uv = official_uv(xyz_up[list(NYU_EVAL_FILE_INDICES)])
    expected_u = (uv[:, 0] - uc) * sx + 111.5
    expected_v = (uv[:, 1] - vc) * sy + 111.5
    expected_d = (xyz_up[list(NYU_EVAL_FILE_INDICES), 2] - centre[2]) / 150
    got = labels["joints_uvd"][0].numpy()
    np.testing.assert_allclose(got[:, 0], expected_u, atol=1e-3)
    np.testing.assert_allclose(got[:, 1], expected_v, atol=1e-3)
    np.testing.assert_allclose(got[:, 2], expected_d, atol=1e-5)
    # y flip: joints_xyz is y down; a joint above PALM_3 in the image (y up larger) has smaller v.
    xyz = labels["joints_xyz"][0].numpy()
    np.testing.assert_allclose(xyz, xyz_up[list(NYU_EVAL_FILE_INDICES)] * [1, -1, 1], atol=1e-4)
    up = xyz_up[list(NYU_EVAL_FILE_INDICES), 1] > centre[1]
    assert up.any() and (got[up, 1] < 111.5).all() and (got[~up, 1] >= 111.5 - 1e-4).all()


def test_kinect_option_selects_its_joints(dataset: Path, train_copy: Path) -> None:
    for f in (1, 2):
        shutil.copy(train_copy / f"depth_1_{f:07d}.png", train_copy / f"depth_3_{f:07d}.png")
        shutil.copy(train_copy / f"synthdepth_1_{f:07d}.png", train_copy / f"synthdepth_3_{f:07d}.png")
    out = read_frame(train_copy, kinect=3)
    assert out.labels["centre_mm"][0, 2].item() == pytest.approx(CENTRES_UP[0][2] + 25.0)


def test_loader_pickles_and_caches_joint_data(dataset: Path) -> None:
    loader = NYUHandLoader()
    units = loader.units(dataset / "train")
    first = loader.joint_data(dataset / "train")
    assert loader.joint_data(dataset / "train") is first
    clone = pickle.loads(pickle.dumps(loader))
    torch.testing.assert_close(clone.read_unit(units[0]).images, loader.read_unit(units[0]).images)


# --------------------------------------------------------------------------------------------
# Bad files
# --------------------------------------------------------------------------------------------


def test_missing_png_is_an_error_at_read_time(train_copy: Path) -> None:
    (train_copy / "depth_1_0000002.png").unlink()
    loader = NYUHandLoader()
    units = loader.units(train_copy)
    assert len(units) == 2
    loader.read_unit(units[0])
    with pytest.raises(DataError, match="depth_1_0000002.png"):
        loader.read_unit(units[1])
    (train_copy / "synthdepth_1_0000001.png").unlink()
    with pytest.raises(DataError, match="synthdepth_1_0000001.png"):
        loader.read_unit(units[0])
    NYUHandLoader(mask="none").read_unit(units[0])  # no mask: synthdepth not needed


def test_truncated_png(train_copy: Path) -> None:
    path = train_copy / "depth_1_0000001.png"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    loader = NYUHandLoader()
    with pytest.raises(DataError, match="depth_1_0000001.png"):
        loader.read_unit(loader.units(train_copy)[0])


@pytest.mark.parametrize(
    "image",
    [
        Image.fromarray(np.zeros((240, 320, 3), dtype=np.uint8), "RGB"),
        Image.fromarray(np.zeros((480, 640), dtype=np.uint8), "L"),
        Image.fromarray(np.zeros((480, 640, 4), dtype=np.uint8), "RGBA"),
    ],
    ids=["small", "gray", "rgba"],
)
def test_wrong_size_or_mode(train_copy: Path, image: Image.Image) -> None:
    image.save(train_copy / "depth_1_0000001.png")
    loader = NYUHandLoader()
    with pytest.raises(DataError, match=r"depth_1_0000001.png.*640x480 RGB"):
        loader.read_unit(loader.units(train_copy)[0])


def test_bad_joint_data(train_copy: Path) -> None:
    xyz = fabricate_xyz(CENTRES_UP)
    cases = {
        "joint_xyz": {"joint_xyz": None},
        r"\(kinects, N, 36, 3\)": {"joint_xyz": xyz[:, :, :35]},
        "joint_uvd": {"joint_uvd": np.zeros((3, 2, 36))},
        "joint_names": {"joint_names": np.array([["a", "b"]], dtype=object)},
    }
    for message, override in cases.items():
        write_joint_data(train_copy, xyz, **override)
        with pytest.raises(DataError, match=f"joint_data.mat.*{message}"):
            NYUHandLoader().units(train_copy)
    (train_copy / "joint_data.mat").write_bytes(b"not a mat file at all")
    with pytest.raises(DataError, match="joint_data.mat"):
        NYUHandLoader().units(train_copy)


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.99])
def test_truncated_joint_data_says_truncated(train_copy: Path, keep: float) -> None:
    """Cut anywhere, even inside a variable scipy would skip, the file is reported as truncated,
    never as missing a variable."""
    write_joint_data(train_copy, fabricate_xyz(CENTRES_UP))
    path = train_copy / "joint_data.mat"
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(DataError, match=r"joint_data.mat: truncated or damaged \(a data element at byte \d+ needs"):
        NYUHandLoader().units(train_copy)
    path.write_bytes(data[:128])  # the header alone
    with pytest.raises(DataError, match="holds no variables"):
        NYUHandLoader().units(train_copy)


def test_permuted_joint_names_are_followed_for_the_crop_centre_too(tmp_path: Path) -> None:
    """A file listing the same joints in another order: PALM_3 (the crop centre) and the 14
    evaluation joints are all found by name, so the crop is the same as with the standard order."""
    folder = tmp_path / "train"
    write_split(folder, CENTRES_UP[:1], [WALL_MM])
    reference = read_frame(folder, mask="none")
    xyz = fabricate_xyz(CENTRES_UP[:1])
    perm = np.roll(np.arange(36), 1)  # file joint i is standard joint perm[i]
    names = np.empty((1, 36), dtype=object)
    names[0, :] = [NYU_JOINT_NAMES[i] for i in perm]
    write_joint_data(folder, xyz[:, :, perm], joint_names=names)
    out = read_frame(folder, mask="none")
    centre = CENTRES_UP[0]
    np.testing.assert_allclose(out.labels["centre_mm"][0].numpy(), [centre[0], -centre[1], centre[2]], atol=1e-4)
    np.testing.assert_allclose(out.labels["joints_uvd"][0, 13].numpy(), [111.5, 111.5, 0.0], atol=1e-4)
    for name in ("joints_uvd", "joints_xyz", "centre_mm"):
        torch.testing.assert_close(out.labels[name], reference.labels[name])
    torch.testing.assert_close(out.images, reference.images)


def test_joint_uvd_is_checked_without_being_loaded(train_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from simgan_hand.nyu_files import load_joint_data

    asked: list[object] = []
    original = scipy.io.loadmat

    def recording(*args, **kwargs):
        asked.append(kwargs.get("variable_names"))
        return original(*args, **kwargs)

    monkeypatch.setattr(scipy.io, "loadmat", recording)
    data = load_joint_data(train_copy / "joint_data.mat")
    assert asked and all(names is not None and "joint_uvd" not in names for names in asked)
    assert data.palm_index == PALM_3 and data.frames == 2


def test_non_finite_joints_are_a_bad_frame(train_copy: Path) -> None:
    xyz = fabricate_xyz(CENTRES_UP)
    xyz[0, 1, 5, 0] = np.nan  # frame 2, kinect 1
    write_joint_data(train_copy, xyz)
    loader = NYUHandLoader(mask="none")
    units = loader.units(train_copy)
    loader.read_unit(units[0])
    with pytest.raises(DataError, match=r"joint_data.mat: frame 2: joint_xyz holds non-finite"):
        loader.read_unit(units[1])
