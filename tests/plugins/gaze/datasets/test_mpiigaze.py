"""MPIIGaze Normalized loader on fabricated .mat files: units, splits, right-eye mirroring, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.io
import torch

from simgan_gaze.datasets.mpiigaze import MPIIGazeLoader, leave_one_person_out
from simgan_toolkit.errors import ConfigError, DataError


def read_all(loader: MPIIGazeLoader, root):
    parts = [loader.read_unit(u) for u in loader.units(root)]
    return torch.cat([p.images for p in parts]), {k: torch.cat([p.labels[k] for p in parts]) for k in parts[0].labels}


def test_units_and_labels(tmp_path, write_mpiigaze_day):
    write_mpiigaze_day(tmp_path, 0, 1, n=3)
    write_mpiigaze_day(tmp_path, 0, 10, n=2)
    write_mpiigaze_day(tmp_path, 0, 2, n=4)
    write_mpiigaze_day(tmp_path, 1, 1, n=2)
    loader = MPIIGazeLoader()
    units = loader.units(tmp_path)
    assert [u.key for u in units] == ["p00/day01", "p00/day02", "p00/day10", "p01/day01"]
    out = loader.read_unit(units[0])
    assert out.images.shape == (6, 1, 35, 55) and out.images.dtype == torch.float32
    assert out.images.min() >= -1 and out.images.max() <= 1
    for name, shape in loader.label_shapes.items():
        assert out.labels[name].shape == (6, *shape)
    assert out.labels["eye"].tolist() == [0, 0, 0, 1, 1, 1]
    assert out.labels["person"].tolist() == [0] * 6
    assert torch.allclose(out.labels["gaze"].norm(dim=1), torch.ones(6))
    assert read_all(loader, tmp_path)[0].shape[0] == 2 * (3 + 2 + 4 + 2)
    assert MPIIGazeLoader.detect(tmp_path) and MPIIGazeLoader.detect(tmp_path / "Data" / "Normalized")
    assert not MPIIGazeLoader.detect(tmp_path / "Data")
    assert [u.key for u in loader.units(tmp_path / "Data" / "Normalized")] == [u.key for u in units]


def test_right_eye_is_mirrored_with_yaw_negated(tmp_path, write_mpiigaze_day):
    image = np.full((1, 36, 60), 40, dtype=np.uint8)
    image[0, :, :6] = 240  # bright band at the image LEFT of the stored right eye
    gaze = np.array([[0.2, -0.1, -0.9]])
    pose = np.array([[0.0, 0.3, 0.0]])  # head yaw +0.3 rad, pitch 0
    sides = {"gaze": gaze, "image": image, "pose": pose}
    write_mpiigaze_day(tmp_path, 0, 1, n=1, left=sides, right=sides)
    loader = MPIIGazeLoader()
    out = loader.read_unit(loader.units(tmp_path)[0])
    norm = math.sqrt(0.04 + 0.01 + 0.81)
    left, right = out.labels["gaze"].tolist()
    assert left == pytest.approx([0.2 / norm, -0.1 / norm, -0.9 / norm], abs=1e-6)
    assert right == pytest.approx([-0.2 / norm, -0.1 / norm, -0.9 / norm], abs=1e-6)
    # By hand: pitch = asin(0.1 / norm) for both; yaw = atan2(-x, -z) = atan2(-0.2, 0.9), negated.
    pitch, yaw = math.asin(0.1 / norm), math.atan2(-0.2, 0.9)
    assert out.labels["pitch_yaw"][0].tolist() == pytest.approx([pitch, yaw], abs=1e-6)
    assert out.labels["pitch_yaw"][1].tolist() == pytest.approx([pitch, -yaw], abs=1e-6)
    assert out.labels["head_pose"].tolist()[0] == pytest.approx([0.0, 0.3], abs=1e-6)
    assert out.labels["head_pose"].tolist()[1] == pytest.approx([0.0, -0.3], abs=1e-6)
    # Pixels: the band (6 of 60 columns -> ~5.5 of 55) is at the left of the left eye and at the
    # right of the mirrored right eye; rows are untouched.
    bright, dark = 240 / 127.5 - 1, 40 / 127.5 - 1
    assert out.images[0, 0, :, :4].mean().item() == pytest.approx(bright, abs=0.01)
    assert out.images[0, 0, :, 7:].mean().item() == pytest.approx(dark, abs=0.01)
    assert out.images[1, 0, :, -4:].mean().item() == pytest.approx(bright, abs=0.01)
    assert torch.allclose(out.images[1, 0], out.images[0, 0].flip(-1), atol=1e-5)
    unflipped = MPIIGazeLoader(flip_right=False).read_unit(loader.units(tmp_path)[0])
    assert unflipped.labels["gaze"][1].tolist() == pytest.approx(left, abs=1e-6)


def test_single_sample_day_and_eyes_option(tmp_path, write_mpiigaze_day):
    path = write_mpiigaze_day(tmp_path, 3, 5, n=1)
    # The squeeze edge case of data-formats.md 2.2 exists in the file as written:
    squeezed = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    assert squeezed["data"].left.image.shape == (36, 60) and isinstance(squeezed["filenames"], str)
    for eyes, count in (("both", 2), ("left", 1), ("right", 1)):
        loader = MPIIGazeLoader(eyes=eyes, rgb=True)
        out = loader.read_unit(loader.units(tmp_path)[0])
        assert out.images.shape == (count, 3, 35, 55)
        assert out.labels["person"].tolist() == [3] * count


def test_squeezed_arrays_are_accepted(tmp_path):
    # A file whose single sample was saved without the leading 1 (e.g. written from a squeezed load).
    folder = tmp_path / "Data" / "Normalized" / "p00"
    folder.mkdir(parents=True)
    eye = {"gaze": np.array([0.0, 0.0, -1.0]), "image": np.zeros((36, 60), np.uint8), "pose": np.zeros(3)}
    scipy.io.savemat(folder / "day01.mat", {"data": {"left": eye, "right": eye}, "filenames": "0001.jpg"})
    loader = MPIIGazeLoader()
    out = loader.read_unit(loader.units(tmp_path)[0])
    assert out.images.shape == (2, 1, 35, 55)
    assert out.labels["pitch_yaw"].abs().max() < 1e-6


def test_evaluation_subset_selects_listed_samples_in_list_order(tmp_path, write_mpiigaze_day, write_evaluation_list):
    gaze = np.array([[0.1 * i, 0.0, -1.0] for i in range(4)])  # yaw identifies the sample
    write_mpiigaze_day(tmp_path, 0, 1, n=4, left={"gaze": gaze}, right={"gaze": gaze})
    write_mpiigaze_day(tmp_path, 0, 2, n=4)
    write_mpiigaze_day(tmp_path, 0, 3, n=4)  # not listed: no unit
    write_evaluation_list(tmp_path, 0, ["day02/0001.jpg left", "day01/0004.jpg left", "day01/0002.jpg right",
                                        "day01/0001.jpg left", ""])
    loader = MPIIGazeLoader(split="evaluation")
    units = loader.units(tmp_path)
    assert [u.key for u in units] == ["p00/day01", "p00/day02"]
    out = loader.read_unit(units[0])
    assert out.labels["eye"].tolist() == [0, 1, 0]
    yaws = out.labels["pitch_yaw"][:, 1]
    expected = [math.atan2(-0.3, 1.0), -math.atan2(-0.1, 1.0), 0.0]  # 0004 left, 0002 right (mirrored), 0001 left
    assert yaws.tolist() == pytest.approx(expected, abs=1e-6)
    assert len(loader.read_unit(units[1])) == 1
    right_only = MPIIGazeLoader(split="evaluation", eyes="right")
    assert [u.key for u in right_only.units(tmp_path)] == ["p00/day01"]


def test_evaluation_list_errors(tmp_path, write_mpiigaze_day, write_evaluation_list):
    write_mpiigaze_day(tmp_path, 0, 1, n=2)
    loader = MPIIGazeLoader(split="evaluation")
    with pytest.raises(DataError, match=r"p00\.txt.*missing"):
        loader.units(tmp_path)
    lists = write_evaluation_list(tmp_path, 0, ["day01/0001.jpg middle"])
    with pytest.raises(DataError, match=rf"{lists}:1"):
        loader.units(tmp_path)
    write_evaluation_list(tmp_path, 0, ["day07/0001.jpg left"])
    with pytest.raises(DataError, match="day07"):
        loader.units(tmp_path)
    write_evaluation_list(tmp_path, 0, ["day01/0099.jpg left"])
    with pytest.raises(DataError, match="0099.jpg"):
        loader.read_unit(loader.units(tmp_path)[0])


def test_persons_and_leave_one_person_out(tmp_path, write_mpiigaze_day):
    for person in (0, 1, 2):
        write_mpiigaze_day(tmp_path, person, 1, n=1)
    train, test = leave_one_person_out(["p00", 1, "2"], 1)
    assert (train, test) == ([0, 2], [1])
    assert [u.key for u in MPIIGazeLoader(persons=train).units(tmp_path)] == ["p00/day01", "p02/day01"]
    assert [u.key for u in MPIIGazeLoader(exclude_persons="p00,p02").units(tmp_path)] == ["p01/day01"]
    assert [u.key for u in MPIIGazeLoader(persons=2).units(tmp_path)] == ["p02/day01"]
    with pytest.raises(DataError, match="p07"):
        MPIIGazeLoader(persons=[7]).units(tmp_path)
    with pytest.raises(ConfigError):
        leave_one_person_out([0, 2], 1)
    with pytest.raises(ConfigError):
        MPIIGazeLoader(persons=["me"])
    with pytest.raises(ConfigError):
        MPIIGazeLoader(split="random")
    with pytest.raises(ConfigError):
        MPIIGazeLoader(eyes="both_please")


def test_wrong_image_shape_names_file_and_field(tmp_path, write_mpiigaze_day):
    path = write_mpiigaze_day(tmp_path, 0, 1, n=2, right={"image": np.zeros((2, 36, 59), np.uint8)})
    loader = MPIIGazeLoader()
    with pytest.raises(DataError, match=rf"{path}.*data\.right\.image.*\(2, 36, 60\)"):
        loader.read_unit(loader.units(tmp_path)[0])


def test_missing_field_and_corrupt_files(tmp_path, write_mpiigaze_day):
    path = write_mpiigaze_day(tmp_path, 0, 1, n=2)
    loader = MPIIGazeLoader()
    unit = loader.units(tmp_path)[0]
    scipy.io.savemat(path, {"data": {"left": {"gaze": np.zeros((2, 3))}, "right": {}}})
    with pytest.raises(DataError, match=rf"{path}.*data\.left\.image"):
        loader.read_unit(unit)
    scipy.io.savemat(path, {"something": np.zeros(3)})
    with pytest.raises(DataError, match=rf"{path}.*'data'"):
        loader.read_unit(unit)
    path.write_bytes(b"MATLAB 5.0 MAT-file" + b"\0" * 40)
    with pytest.raises(DataError, match=str(path)):
        loader.read_unit(unit)


def test_truncated_mat(tmp_path, write_mpiigaze_day):
    path = write_mpiigaze_day(tmp_path, 0, 1, n=4)
    path.write_bytes(path.read_bytes()[:300])
    loader = MPIIGazeLoader()
    with pytest.raises(DataError, match=str(path)):
        loader.read_unit(loader.units(tmp_path)[0])


def test_not_mpiigaze(tmp_path):
    with pytest.raises(DataError, match="Data/Normalized"):
        MPIIGazeLoader().units(tmp_path)


def test_options_must_have_their_types():
    with pytest.raises(ConfigError, match="flip_right must be true or false, got 'false'"):
        MPIIGazeLoader(flip_right="false")
    with pytest.raises(ConfigError, match="rgb must be true or false"):
        MPIIGazeLoader(rgb=0)
    with pytest.raises(ConfigError, match="option persons"):
        MPIIGazeLoader(persons=3.5)
    with pytest.raises(ConfigError, match="split"):
        MPIIGazeLoader(split=["all"])


def test_detect_tests_names_before_stat(tmp_path, write_mpiigaze_day, monkeypatch):
    """Detecting a large unrelated folder must not stat every entry."""
    from pathlib import Path

    write_mpiigaze_day(tmp_path, 0, 1, n=1)
    for folder in (tmp_path / "Data" / "Normalized", tmp_path / "other"):
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(30):
            (folder / f"file{i}.txt").write_text("")
    stat_calls: list[str] = []
    original = Path.is_dir

    def counting(self):
        stat_calls.append(self.name)
        return original(self)

    monkeypatch.setattr(Path, "is_dir", counting)
    assert not MPIIGazeLoader.detect(tmp_path / "other")
    assert MPIIGazeLoader.detect(tmp_path)
    assert not [name for name in stat_calls if name.startswith("file")]
    MPIIGazeLoader().units(tmp_path)
    assert not [name for name in stat_calls if name.startswith("file")]


def test_a_run_sample_mixes_persons_and_days(tmp_path, write_mpiigaze_day):
    """A unit is a person-day, left eyes then right eyes: a small sample of a run side must still
    mix persons and eyes rather than be the head of one day file."""
    from simgan_toolkit.config import DataSource
    from simgan_toolkit.data.sources import load_side
    from simgan_toolkit.plugin import get_registry

    for person in range(3):
        for day in (1, 2):
            write_mpiigaze_day(tmp_path, person, day, n=40, seed=10 * person + day)
    registry = get_registry()
    data = load_side(registry, registry.create("task", "gaze"), "synthetic", DataSource(path=str(tmp_path), format="mpiigaze"),
                     64, 0, progress=False, say=lambda _: None)
    assert len(data) == 64
    persons = data.labels["person"].tolist()
    assert set(persons) == {0, 1, 2} and max(persons.count(p) for p in set(persons)) <= 40
    assert set(data.labels["eye"].tolist()) == {0, 1}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"pose": np.full((2, 3), np.nan)}, r"data\.right\.pose holds non-finite"),
        ({"image": np.full((2, 36, 60), 300.0)}, r"data\.right\.image must hold 0\.\.255"),
        ({"image": np.array([[["x"] * 60] * 36] * 2)}, r"data\.right\.image must be numeric"),
    ],
)
def test_bad_values_are_data_errors_naming_the_file(tmp_path, write_mpiigaze_day, override, message):
    path = write_mpiigaze_day(tmp_path, 0, 1, n=2, right=override)
    loader = MPIIGazeLoader()
    with pytest.raises(DataError, match=rf"{path}: {message}"):
        loader.read_unit(loader.units(tmp_path)[0])


def test_unit_size_is_known_for_the_evaluation_split(tmp_path, write_mpiigaze_day, write_evaluation_list):
    write_mpiigaze_day(tmp_path, 0, 1, n=3)
    write_evaluation_list(tmp_path, 0, ["day01/0001.jpg left", "day01/0002.jpg right", "day01/0003.jpg right"])
    assert MPIIGazeLoader().unit_size(MPIIGazeLoader().units(tmp_path)[0]) is None
    loader = MPIIGazeLoader(split="evaluation", eyes="right")
    assert loader.unit_size(loader.units(tmp_path)[0]) == 2


def test_unit_files_add_the_evaluation_list(tmp_path, write_mpiigaze_day, write_evaluation_list):
    """``simgan convert`` watches these files: a new evaluation list changes the samples of a day."""
    day = write_mpiigaze_day(tmp_path, 0, 1, n=3)
    lists = write_evaluation_list(tmp_path, 0, ["day01/0001.jpg left"])
    assert MPIIGazeLoader().unit_files(MPIIGazeLoader().units(tmp_path)[0]) == [day]
    loader = MPIIGazeLoader(split="evaluation")
    assert loader.unit_files(loader.units(tmp_path)[0]) == [day, lists]
