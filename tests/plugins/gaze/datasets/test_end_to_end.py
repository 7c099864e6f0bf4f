"""The gaze dataset loaders through the real user paths, on fabricated files.

``simgan convert`` (in-process, the installed plugins' registry) on UnityEyes and MPIIGaze
trees, a truncated JPEG with and without ``--skip-bad``, an interrupted conversion continued
by rerunning it, and a smoke ``simgan run`` whose every side comes from disk. Expected labels are
computed here from the formulas of data-formats.md 1.4 / 2, not taken from the loaders.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from simgan_gaze.datasets.unityeyes import UnityEyesLoader
from simgan_toolkit.data import read_attrs, read_images_h5
from simgan_toolkit.data.reading import SkippedFilesWarning

#: UnityEyes frame number -> look_vec (Unity camera space, y up). Frame 10 after 3 checks that
#: frames are read in numeric (not string) order.
LOOK_VECS = {1: (0.3404, 0.3879, -0.8566), 2: (0.0, 0.0, -1.0), 3: (-0.2, -0.1, -0.9), 10: (0.5, 0.0, -0.8)}
#: Crop scale of the conftest scene at 640x480: 55 px over 1.5 * (60 + 68) = 192 frame px.
SCALE = 55 / 192
#: The pupil sits (15, +5 up) frame px from the eye centre, which lands on crop pixel (27, 17).
PUPIL_CROP = (27 + 15 * SCALE, 17 - 5 * SCALE)


def expected_labels(look_vec: tuple[float, float, float]) -> tuple[list[float], list[float]]:
    """(gaze, [pitch, yaw]) by hand: y flipped into the OpenCV convention, MPIIGaze angles."""
    x, y, z = look_vec
    n = math.sqrt(x * x + y * y + z * z)
    return [x / n, -y / n, z / n], [math.asin(y / n), math.atan2(-x, -z)]


@pytest.fixture
def unityeyes(tmp_path, write_unityeyes, unityeyes_json) -> Path:
    """``UnityEyes/imgs/{1,2,3,10}.{json,jpg}`` at 640x480, one look_vec each."""
    root = tmp_path / "UnityEyes"
    for n, look in LOOK_VECS.items():
        write_unityeyes(root / "imgs", n, doc=unityeyes_json(640, 480, look_vec=look))
    return root


def read_directly(root: Path) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    loader = UnityEyesLoader()
    parts = [loader.read_unit(u) for u in loader.units(root)]
    return torch.cat([p.images for p in parts]), {k: torch.cat([p.labels[k] for p in parts]) for k in parts[0].labels}


# --- (a) UnityEyes -> HDF5 -------------------------------------------------------------------
def test_convert_unityeyes_with_format_auto(cli, unityeyes, tmp_path):
    out = tmp_path / "unityeyes.h5"
    code, stdout, err = cli("convert", unityeyes, out, "--format", "auto", "--kind", "synthetic", "--no-progress")
    assert code == 0, err
    assert stdout.strip() == f"converted 4 images from 4 files (unityeyes) -> {out}"
    got = read_images_h5(out)
    assert got.images.shape == (4, 1, 35, 55) and got.images.dtype == torch.float32
    assert set(got.labels) == {"gaze", "pitch_yaw", "pupil_centre", "landmarks"}
    # Row order is numeric frame order 1, 2, 3, 10; labels by hand.
    for row, look in enumerate(LOOK_VECS.values()):
        gaze, pitch_yaw = expected_labels(look)
        assert got.labels["gaze"][row].tolist() == pytest.approx(gaze, abs=1e-6)
        assert got.labels["pitch_yaw"][row].tolist() == pytest.approx(pitch_yaw, abs=1e-6)
        assert got.labels["pupil_centre"][row].tolist() == pytest.approx(PUPIL_CROP, abs=2e-3)
        # The bright pupil disc is where the label says: the image is not flipped.
        brightest = int(got.images[row, 0].argmax())
        assert abs(brightest % 55 - PUPIL_CROP[0]) <= 1 and abs(brightest // 55 - PUPIL_CROP[1]) <= 1
    # The data-formats.md 1.4 sample: pitch +22.8 deg (looking up), yaw -21.7 deg.
    assert torch.rad2deg(got.labels["pitch_yaw"][0]).tolist() == pytest.approx([22.8, -21.7], abs=0.05)
    # Identical to what the loader returns directly.
    images, labels = read_directly(unityeyes)
    assert torch.equal(got.images, images)
    assert all(torch.equal(got.labels[k], labels[k]) for k in labels)
    attrs = read_attrs(out)
    assert (attrs["kind"], attrs["source_format"], attrs["count"], attrs["skipped_files"]) == ("synthetic", "unityeyes", 4, 0)
    assert attrs["source_root"] == str(unityeyes.absolute())


# --- (b) MPIIGaze evaluation subset -> HDF5 --------------------------------------------------
def halves(left_value: int, right_value: int, n: int) -> np.ndarray:
    """(n, 36, 60) uint8 eyes: columns 0-29 at ``left_value + 10 i``, columns 30-59 at ``right_value``."""
    image = np.full((n, 36, 60), right_value, dtype=np.uint8)
    for i in range(n):
        image[i, :, :30] = left_value + 10 * i
    return image


def unit_value(v: float) -> float:
    return v / 127.5 - 1


@pytest.fixture
def mpiigaze(tmp_path, write_mpiigaze_day, write_evaluation_list) -> Path:
    """p00: day01 (3 samples), day02 (2); p01: day01 (3). p01's evaluation list names 2 samples."""
    root = tmp_path / "MPIIGaze"
    gaze = np.array([[0.1, 0.0, -1.0], [0.0, 0.2, -1.0], [0.3, -0.1, -0.9]])
    pose = np.tile([0.0, 0.3, 0.0], (3, 1))  # head yaw +0.3 rad, pitch 0
    for person, day, n in [(0, 1, 3), (0, 2, 2), (1, 1, 3)]:
        write_mpiigaze_day(
            root, person, day, n=n,
            left={"gaze": gaze[:n], "image": halves(40, 200, n), "pose": pose[:n]},
            right={"gaze": gaze[:n], "image": halves(100, 220, n), "pose": pose[:n]},
        )
    write_evaluation_list(root, 1, ["day01/0003.jpg right", "day01/0001.jpg left"])
    return root


def test_convert_mpiigaze_evaluation_subset_of_one_person(cli, mpiigaze, tmp_path):
    out = tmp_path / "test.h5"
    code, stdout, err = cli("convert", mpiigaze, out, "--option", "split=evaluation", "--option", "persons=p01",
                            "--kind", "real", "--no-progress")
    assert code == 0, err
    assert stdout.strip() == f"converted 2 images from 1 files (mpiigaze) -> {out}"
    got = read_images_h5(out)
    assert got.images.shape == (2, 1, 35, 55)
    assert set(got.labels) == {"gaze", "pitch_yaw", "head_pose", "person", "eye"}
    # List order: p01 day01 sample 3 (right eye, mirrored), then sample 1 (left eye).
    assert got.labels["eye"].tolist() == [1, 0] and got.labels["person"].tolist() == [1, 1]
    right, left = got.images[0, 0], got.images[1, 0]
    # Mirrored right eye: its columns 30-59 (220) now on the left, columns 0-29 (100 + 20) on the right.
    assert right[:, 0].tolist() == pytest.approx([unit_value(220)] * 35, abs=1e-5)
    assert right[:, -1].tolist() == pytest.approx([unit_value(120)] * 35, abs=1e-5)
    assert left[:, 0].tolist() == pytest.approx([unit_value(40)] * 35, abs=1e-5)
    assert left[:, -1].tolist() == pytest.approx([unit_value(200)] * 35, abs=1e-5)
    # Gaze (0.3, -0.1, -0.9) of the right eye with x negated; (0.1, 0, -1) of the left eye.
    n3, n1 = math.sqrt(0.09 + 0.01 + 0.81), math.sqrt(1.01)
    assert got.labels["gaze"][0].tolist() == pytest.approx([-0.3 / n3, -0.1 / n3, -0.9 / n3], abs=1e-6)
    assert got.labels["gaze"][1].tolist() == pytest.approx([0.1 / n1, 0.0, -1.0 / n1], abs=1e-6)
    # pitch = asin(-y), yaw = atan2(-x, -z).
    assert got.labels["pitch_yaw"][0].tolist() == pytest.approx([math.asin(0.1 / n3), math.atan2(0.3, 0.9)], abs=1e-6)
    assert got.labels["pitch_yaw"][1].tolist() == pytest.approx([0.0, math.atan2(-0.1, 1.0)], abs=1e-6)
    # Head yaw +0.3 rad, negated for the mirrored eye.
    assert got.labels["head_pose"].flatten().tolist() == pytest.approx([0.0, -0.3, 0.0, 0.3], abs=1e-6)
    attrs = read_attrs(out)
    assert (attrs["kind"], attrs["source_format"]) == ("real", "mpiigaze")
    assert json.loads(attrs["source_options"]) == {"split": "evaluation", "persons": "p01"}

    # The other half of leave-one-person-out: every sample of everyone but p01.
    train = tmp_path / "train.h5"
    code, stdout, err = cli("convert", mpiigaze, train, "--format", "mpiigaze", "--option", "exclude_persons=p01", "--no-progress")
    assert code == 0, err
    assert stdout.strip() == f"converted 10 images from 2 files (mpiigaze) -> {train}"
    labels = read_images_h5(train).labels
    assert labels["person"].tolist() == [0] * 10
    assert labels["eye"].tolist() == [0, 0, 0, 1, 1, 1, 0, 0, 1, 1]  # per day file: left eyes, then right eyes


# --- (c) a smoke run with every side from disk -------------------------------------------------
@pytest.mark.slow
def test_smoke_run_reads_unityeyes_and_mpiigaze(cli, unityeyes, mpiigaze, tmp_path):
    real = tmp_path / "mpiigaze_train.h5"
    code, _, err = cli("convert", mpiigaze, real, "--option", "exclude_persons=p01", "--no-progress")
    assert code == 0, err
    config = tmp_path / "gaze-real.toml"
    config.write_text(
        'task = "gaze"\n'
        f"[data]\nsynthetic = {json.dumps(str(unityeyes))}\n"  # a plain path: format auto
        f"target = {json.dumps(str(real))}\n"
        f'target_train = {{ path = {json.dumps(str(real))}, format = "toolkit-h5" }}\n'
        f'[data.test]\npath = {json.dumps(str(mpiigaze))}\nformat = "mpiigaze"\n'
        'options = { split = "evaluation", persons = ["p01"] }\n'
    )
    out = tmp_path / "run"
    code, stdout, err = cli("run", "--config", config, "--profile", "smoke", "--out", out, "--device", "cpu", "--no-progress")
    assert code == 0, err
    assert f"data.synthetic: 4 images from {unityeyes} (format unityeyes), fewer than data.n_synthetic = 64" in stdout
    assert f"data.target: 10 images from {real} (format toolkit-h5)" in stdout
    assert f"data.test: 2 images from {mpiigaze} (format mpiigaze)" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["task"], summary["profile"]) == ("gaze", "smoke")
    assert summary["data_counts"] == {"synthetic": 4, "target": 10, "test": 2, "target_train": 10}
    assert summary["data"]["test"]["options"] == {"split": "evaluation", "persons": ["p01"]}
    assert set(summary["estimators"]) == {"synthetic", "refined", "target"}
    for metrics in summary["estimators"].values():
        assert 0 <= metrics["angular_error_deg"] <= 180
    # UnityEyes crops carry pupil_centre, so the gaze label check ran.
    assert set(summary["label_preservation"]) >= {"pupil_shift_px_mean"}
    # The refined set keeps the UnityEyes labels (rows shuffled by the run's seed).
    refined = read_images_h5(out / "refined.h5")
    assert refined.images.shape == (4, 1, 35, 55)
    expected = sorted(expected_labels(look)[1] for look in LOOK_VECS.values())
    got = sorted(refined.labels["pitch_yaw"].tolist())
    assert [v for row in got for v in row] == pytest.approx([v for row in expected for v in row], abs=1e-6)


# --- (d) a truncated JPEG ---------------------------------------------------------------------
def test_truncated_jpeg_stops_the_conversion_unless_skip_bad(cli, unityeyes, tmp_path):
    jpg = unityeyes / "imgs" / "3.jpg"
    data = jpg.read_bytes()
    jpg.write_bytes(data[: len(data) // 2])
    out = tmp_path / "u.h5"
    code, stdout, err = cli("convert", unityeyes, out, "--no-progress")
    assert code == 2
    assert err.startswith("simgan: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert str(jpg) in err and "truncated" in err
    assert not out.exists()
    # Rerun with --skip-bad: continues after frames 1, 2 and skips 3, counting it.
    with pytest.warns(SkippedFilesWarning, match=r"skipped 1 of 4 units \(1 image not read\):\n  \S+3\.json: \S+3\.jpg: not a complete JPEG"):
        code, stdout, err = cli("convert", unityeyes, out, "--skip-bad", "--no-progress")
    assert code == 0, err
    assert stdout.splitlines() == [
        f"resuming {out}: 2 of 4 files already converted (2 images)",
        f"converted 3 images from 3 files (unityeyes, 1 skipped) -> {out}",
    ]
    attrs = read_attrs(out)
    assert (attrs["count"], attrs["skipped_files"]) == (3, 1)
    assert [path for path, _ in json.loads(attrs["skipped"])] == [str(unityeyes / "imgs" / "3.json")]
    loader = UnityEyesLoader()
    good = [loader.read_unit(u) for u in loader.units(unityeyes) if u.key != "3"]
    assert torch.equal(read_images_h5(out).images, torch.cat([g.images for g in good]))
    # A fresh conversion with --skip-bad gives the same file.
    fresh = tmp_path / "fresh.h5"
    with pytest.warns(SkippedFilesWarning, match="skipped 1 of 4 "):
        code, stdout, err = cli("convert", unityeyes, fresh, "--skip-bad", "--no-progress")
    assert code == 0 and stdout.strip() == f"converted 3 images from 3 files (unityeyes, 1 skipped) -> {fresh}"
    assert torch.equal(read_images_h5(fresh).images, read_images_h5(out).images)


# --- (e) resume ------------------------------------------------------------------------------
def test_interrupted_conversion_continues_to_identical_content(cli, unityeyes, tmp_path, monkeypatch):
    reference = tmp_path / "reference.h5"
    assert cli("convert", unityeyes, reference, "--no-progress")[0] == 0

    original = UnityEyesLoader.read_unit
    calls: list[str] = []

    def interrupting(self, unit):
        calls.append(unit.key)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(self, unit)

    monkeypatch.setattr(UnityEyesLoader, "read_unit", interrupting)
    out = tmp_path / "u.h5"
    code, _, err = cli("convert", unityeyes, out, "--no-progress")
    assert code == 130 and "interrupted (run the same command again to continue)" in err
    assert not out.exists() and (tmp_path / "u.h5.partial").exists() and (tmp_path / "u.h5.partial.json").exists()

    calls.clear()
    code, stdout, err = cli("convert", unityeyes, out, "--no-progress")
    assert code == 0, err
    assert stdout.splitlines() == [
        f"resuming {out}: 2 of 4 files already converted (2 images)",
        f"converted 4 images from 4 files (unityeyes) -> {out}",
    ]
    assert calls == ["3", "10"]  # only the frames not yet converted were read
    assert not (tmp_path / "u.h5.partial").exists() and not (tmp_path / "u.h5.partial.json").exists()
    got, want = read_images_h5(out), read_images_h5(reference)
    assert torch.equal(got.images, want.images)
    assert set(got.labels) == set(want.labels) and all(torch.equal(got.labels[k], want.labels[k]) for k in want.labels)
