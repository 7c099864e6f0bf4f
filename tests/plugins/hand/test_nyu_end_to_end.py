"""The NYU Hand loader through the real user paths: ``simgan convert`` and a smoke ``simgan run``.

Fabricated per data-formats.md 4.7 (a trimmed copy of test_nyu.py's fabrication): 640x480 depth
PNGs with depth = G*256 + B mm, a hand disc at 800 mm around PALM_3's projection, a forearm strip
at 830 mm below it that the synthdepth render (the disc only) does not cover, a wall at 2000 mm.
Expected labels and pixels come from the official NYU formulas, not from the loader.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from simgan_hand.nyu_files import NYU_EVAL_FILE_INDICES, NYU_JOINT_NAMES, PALM_3, pack_depth_rgb
from simgan_toolkit.data import read_attrs, read_images_h5

# Official MATLAB helpers (convert_xyz_to_uvd.m): y up in xyz.
FX, FY, CX, CY = 588.036865, 587.075073, 320.0, 240.0
SIZE, CUBE = 224, 300.0
HAND_MM, FOREARM_MM, WALL_MM, RADIUS_PX = 800, 830, 2000, 30
#: PALM_3 of each fabricated frame, NYU xyz (y up), mm.
TRAIN_CENTRES = [(20.0, 30.0, 770.0), (-40.0, 10.0, 700.0), (60.0, -20.0, 820.0)]
TEST_CENTRES = [(0.0, 0.0, 750.0), (30.0, -30.0, 800.0)]


# --- fabrication ------------------------------------------------------------------------------
def official_uv(xyz_up: np.ndarray) -> np.ndarray:
    x, y, z = xyz_up[..., 0], xyz_up[..., 1], xyz_up[..., 2]
    return np.stack([FX * x / z + CX, CY - FY * y / z], axis=-1)


def fabricate_xyz(centres_up: list[tuple[float, float, float]]) -> np.ndarray:
    """(3, N, 36, 3) joints, y up: PALM_3 at each centre, the others scattered around it."""
    offsets = np.random.default_rng(0).uniform([-70, -70, -20], [70, 70, 20], size=(36, 3))
    offsets[PALM_3] = 0.0
    k1 = np.array(centres_up)[:, None, :] + offsets[None]
    return np.stack([k1, k1 + [15.0, 0, 0], k1 + [0, 0, 25.0]])


def write_png(path: Path, depth_mm: np.ndarray) -> None:
    Image.fromarray(pack_depth_rgb(depth_mm), "RGB").save(path)


def write_split(folder: Path, centres_up: list[tuple[float, float, float]]) -> None:
    folder.mkdir(parents=True)
    xyz = fabricate_xyz(centres_up)
    names = np.empty((1, 36), dtype=object)
    names[0, :] = NYU_JOINT_NAMES
    uvd = np.concatenate([official_uv(xyz), xyz[..., 2:]], axis=-1)
    scipy.io.savemat(folder / "joint_data.mat", {"joint_names": names, "joint_xyz": xyz, "joint_uvd": uvd})
    rows, cols = np.mgrid[0:480, 0:640]
    for f, centre in enumerate(centres_up, start=1):
        uc, vc = official_uv(np.array(centre))
        disc = (cols - uc) ** 2 + (rows - vc) ** 2 <= RADIUS_PX**2
        forearm = (np.abs(cols - uc) <= 15) & (rows > vc + RADIUS_PX - 5) & (rows < vc + RADIUS_PX + 80) & ~disc
        depth = np.full((480, 640), WALL_MM)
        depth[forearm], depth[disc] = FOREARM_MM, HAND_MM
        write_png(folder / f"depth_1_{f:07d}.png", depth)
        write_png(folder / f"synthdepth_1_{f:07d}.png", np.where(disc, HAND_MM, 0))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``dataset/train`` (3 frames) and ``dataset/test`` (2 frames), the NYU layout."""
    root = tmp_path_factory.mktemp("nyu") / "dataset"
    write_split(root / "train", TRAIN_CENTRES)
    write_split(root / "test", TEST_CENTRES)
    return root


def expected_uvd(centres_up: list[tuple[float, float, float]]) -> np.ndarray:
    """(N, 14, 3) crop (u, v, d) of the evaluation joints, by hand: official uv of each joint,
    then the crop map (crop pixels per image pixel = 224 zc / (300 f), centre on 111.5)."""
    xyz = fabricate_xyz(centres_up)[0][:, list(NYU_EVAL_FILE_INDICES)]  # kinect 1
    out = []
    for frame, centre in zip(xyz, centres_up):
        uc, vc = official_uv(np.array(centre))
        zc = centre[2]
        uv = official_uv(frame)
        u = (uv[:, 0] - uc) * SIZE * zc / (CUBE * FX) + 111.5
        v = (uv[:, 1] - vc) * SIZE * zc / (CUBE * FY) + 111.5
        out.append(np.stack([u, v, (frame[:, 2] - zc) / (CUBE / 2)], axis=1))
    return np.stack(out)


# --- convert ----------------------------------------------------------------------------------
def test_convert_nyu_train_depth_and_synthdepth(cli, dataset, tmp_path):
    out = tmp_path / "nyu_train_depth.h5"
    code, stdout, err = cli("convert", dataset / "train", out, "--format", "auto", "--no-progress")
    assert code == 0, err
    assert stdout.strip() == f"converted 3 images from 3 files (nyu_hand) -> {out}"
    got = read_images_h5(out)
    assert got.images.shape == (3, 1, SIZE, SIZE) and got.images.dtype == torch.float32
    assert {k: tuple(v.shape) for k, v in got.labels.items()} == {
        "joints_uvd": (3, 14, 3), "joints_xyz": (3, 14, 3), "centre_mm": (3, 3)}
    np.testing.assert_allclose(got.labels["joints_uvd"].numpy(), expected_uvd(TRAIN_CENTRES), atol=1e-3)
    # PALM_3 (the last evaluation joint) is the crop centre; centre_mm is y down.
    np.testing.assert_allclose(got.labels["joints_uvd"][:, 13].numpy(), [[111.5, 111.5, 0.0]] * 3, atol=1e-4)
    np.testing.assert_allclose(got.labels["centre_mm"].numpy(), np.array(TRAIN_CENTRES) * [1, -1, 1], atol=1e-4)
    for i, (_, _, zc) in enumerate(TRAIN_CENTRES):
        img = got.images[i, 0]
        assert img[111, 111].item() == pytest.approx((HAND_MM - zc) / 150, abs=1e-6)  # the hand disc
        assert img[0, 0].item() == 1.0  # the wall, beyond the cube's back face
        assert img[111 + 50, 111].item() == 1.0  # the forearm: outside the synthdepth mask
    attrs = read_attrs(out)
    assert (attrs["kind"], attrs["source_format"], attrs["count"]) == ("real", "nyu_hand", 3)

    # The paired synthetic source: the synthdepth renders, from the dataset root with split=train.
    synth = tmp_path / "nyu_train_synthdepth.h5"
    code, stdout, err = cli("convert", dataset, synth, "--option", "split=train", "--option", "kind=synthdepth",
                            "--kind", "synthetic", "--no-progress")
    assert code == 0, err
    s = read_images_h5(synth)
    assert s.images.shape == (3, 1, SIZE, SIZE)
    assert torch.equal(s.labels["joints_uvd"], got.labels["joints_uvd"])
    # Same hand pixels as the masked real frame; the render has no forearm and no wall.
    assert torch.equal(s.images[:, 0, 111, 111], got.images[:, 0, 111, 111])
    assert (s.images[:, 0, 111 + 50, 111] == 1.0).all() and (s.images[:, 0, 0, 0] == 1.0).all()
    assert read_attrs(synth)["kind"] == "synthetic"
    # Without the mask the forearm stays in the crop, at its own depth.
    unmasked = tmp_path / "unmasked.h5"
    assert cli("convert", dataset / "train", unmasked, "--option", "mask=none", "--no-progress")[0] == 0
    forearm = read_images_h5(unmasked).images[:, 0, 111 + 50, 111]
    np.testing.assert_allclose(forearm.numpy(), [(FOREARM_MM - c[2]) / 150 for c in TRAIN_CENTRES], atol=1e-6)


def test_convert_again_after_joint_data_was_replaced(cli, dataset, tmp_path):
    """Every frame reads the split's joint_data.mat: a new one under the same name makes the
    finished file out of date (not "already converted" with the old labels)."""
    train = tmp_path / "train"
    write_split(train, TRAIN_CENTRES[:1])
    out = tmp_path / "t.h5"
    assert cli("convert", train, out, "--no-progress")[0] == 0
    old = read_images_h5(out).labels["joints_xyz"]
    joints = train / "joint_data.mat"
    xyz = fabricate_xyz(TRAIN_CENTRES[:1]) + [0.0, 0.0, 10.0]  # the whole hand 10 mm further away
    scipy.io.savemat(joints, {"joint_xyz": xyz})
    code, stdout, err = cli("convert", train, out, "--no-progress")
    assert code == 0, err
    assert stdout.startswith(f"{out} is out of date: {joints} changed (size ")
    new = read_images_h5(out).labels["joints_xyz"]
    np.testing.assert_allclose((new - old)[..., 2].numpy(), 10.0, atol=1e-4)


# --- run --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_smoke_hand_run_reads_nyu(cli, dataset, tmp_path):
    real = tmp_path / "nyu_train_depth.h5"
    assert cli("convert", dataset / "train", real, "--no-progress")[0] == 0
    config = tmp_path / "hand-nyu.toml"
    root = json.dumps(str(dataset))
    config.write_text(
        'task = "hand_depth"\n'
        "[data]\n"
        f"target = {json.dumps(str(real))}\n"
        f"target_train = {json.dumps(str(real))}\n"
        f'synthetic = {{ path = {root}, format = "nyu_hand", options = {{ split = "train", kind = "synthdepth" }} }}\n'
        f'test = {{ path = {root}, format = "nyu_hand", options = {{ split = "test" }} }}\n'
    )
    out = tmp_path / "run"
    code, stdout, err = cli("run", "--config", config, "--profile", "smoke", "--out", out, "--device", "cpu", "--no-progress")
    assert code == 0, err
    assert f"data.target: 3 images from {real} (format toolkit-h5)" in stdout
    assert f"data.test: 2 images from {dataset} (format nyu_hand)" in stdout
    assert f"data.synthetic: 3 images from {dataset} (format nyu_hand)" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["task"], summary["profile"]) == ("hand_depth", "smoke")
    assert summary["data_counts"] == {"synthetic": 3, "target": 3, "test": 2, "target_train": 3}
    test_source = summary["data"]["test"]
    assert (test_source["path"], test_source["format"], test_source["options"]) == (str(dataset), "nyu_hand", {"split": "test"})
    assert set(summary["estimators"]) == {"synthetic", "refined", "target"}
    for metrics in summary["estimators"].values():
        assert 0.0 <= metrics["pck_5"] <= 100.0 and len([k for k in metrics if k.startswith("curve/")]) == 21
    assert set(summary["label_preservation"]) == {"joint_depth_change_mm", "silhouette_iou", "hand_depth_change_mm"}
    refined = read_images_h5(out / "refined.h5")
    assert refined.images.shape == (3, 1, SIZE, SIZE)
    # The refined set keeps the synthdepth frames' labels (rows shuffled by the run's seed).
    centres = sorted(refined.labels["centre_mm"].tolist())
    expected = sorted((np.array(TRAIN_CENTRES) * [1, -1, 1]).tolist())
    np.testing.assert_allclose(centres, expected, atol=1e-3)
