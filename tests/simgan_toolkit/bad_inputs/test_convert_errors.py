"""Bad inputs to ``simgan convert``: each gets one ``simgan: error:`` line naming the file or
option, exit 2, no traceback, and leaves every file as it was.

The sources are fabricated in the real on-disk formats of the installed dataset plugins
(MPIIGaze ``.mat`` day files, Kaggle ``.h5``, NYU ``joint_data.mat``, toolkit HDF5), as small as
the loaders accept. ``CASES`` also feeds the table in ``docs/bad-inputs.md``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import scipy.io
import torch

from simgan_toolkit.data import read_attrs, read_images_h5, write_images_h5
from simgan_toolkit.data.reading import SkippedFilesWarning
from simgan_toolkit.task import LabelledImages
from simgan_toolkit.testing import BadInput, check_bad_input, mount_tmpfs, read_only_folder, run_cli, unmount_under

# --------------------------------------------------------------------------------------------
# Fabricated sources, in the real formats
# --------------------------------------------------------------------------------------------


def write_day(root: Path, day: int, value: int = 100, n: int = 2, images: np.ndarray | None = None) -> Path:
    """MPIIGaze ``root/Data/Normalized/p00/dayNN.mat`` (MATLAB v5, the Normalized layout):
    ``n`` left and ``n`` right eyes of flat intensity ``value`` (or ``images``, (n, 36, 60)
    uint8), gaze tilted by ``value``."""
    folder = root / "Data" / "Normalized" / "p00"
    folder.mkdir(parents=True, exist_ok=True)
    gaze = np.tile([value / 1000, 0.0, -1.0], (n, 1))
    side = {"gaze": gaze / np.linalg.norm(gaze, axis=1, keepdims=True),
            "image": np.full((n, 36, 60), value, np.uint8) if images is None else images, "pose": np.zeros((n, 3))}
    filenames = np.array([[f"{i + 1:04d}.jpg"] for i in range(n)], dtype=object)
    path = folder / f"day{day:02d}.mat"
    scipy.io.savemat(path, {"data": {"left": side, "right": side}, "filenames": filenames})
    return path


def write_mpiigaze(root: Path, days: int = 4, bad: tuple[int, ...] = ()) -> Path:
    """An MPIIGaze folder with ``days`` day files of person p00; the days in ``bad`` are garbage."""
    for day in range(1, days + 1):
        path = write_day(root, day, value=10 * day)
        if day in bad:
            path.write_bytes(b"not a MATLAB file")
    return root


def replace(path: Path, write: object) -> None:
    """Rewrite ``path`` (``write()`` does it) and move its modification time 2 s on, so the change
    shows on file systems with coarse timestamps too."""
    write()  # type: ignore[operator]
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


def write_kaggle(path: Path, labelled: bool = True, n: int = 2) -> Path:
    """Kaggle eye-gaze ``gaze.h5`` (``image/<i>`` 35x55 uint8 and ``look_vec``) or, unlabelled,
    ``real_gaze.h5``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        for i in range(n):
            f.create_dataset(f"image/{i}", data=np.full((35, 55), 100, np.uint8))
        if labelled:
            f.create_dataset("look_vec", data=np.tile([0.3, 0.4, -0.85, 0.0], (n, 1)).astype(np.float32))
    return path


def write_toolkit_h5(path: Path) -> Path:
    """A toolkit HDF5 file (``simgan convert`` output) of 300 small images."""
    write_images_h5(path, LabelledImages(torch.zeros(300, 1, 35, 55)), {"kind": "real"})
    return path


def write_nyu_split(folder: Path) -> Path:
    """An NYU split folder as far as listing it goes: ``joint_data.mat`` (joint_xyz, 3 Kinects,
    1 frame) and a ``depth_1_0000001.png`` name."""
    folder.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(folder / "joint_data.mat", {"joint_xyz": np.full((3, 1, 36, 3), 500.0)})
    (folder / "depth_1_0000001.png").write_bytes(b"")
    return folder


def truncate(path: Path) -> Path:
    """Cut ``path`` to half its size, like an interrupted download."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def convert(*argv: str) -> int:
    """``simgan convert ARGV --no-progress`` in this process; its exit code."""
    return run_cli(["convert", *argv, "--no-progress"]).exit_code


# --------------------------------------------------------------------------------------------
# Setups: each prepares files under root and returns the placeholders of its argv
# --------------------------------------------------------------------------------------------


def _setup(*steps: Callable[[Path], object]) -> Callable[[Path], Mapping[str, str]]:
    """A :class:`BadInput` setup that runs each ``step(root)`` in turn (no placeholders)."""

    def setup(root: Path) -> Mapping[str, str]:
        for step in steps:
            step(root)
        return {}

    return setup


def _ds(root: Path) -> None:
    write_mpiigaze(root / "ds")


def _text(relative: str, content: str = "mine") -> Callable[[Path], None]:
    """A step writing the text file ``root/relative`` (a file of the user's)."""

    def step(root: Path) -> None:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(content)

    return step


@pytest.fixture(autouse=True)
def _unmount_after(tmp_path: Path) -> Iterator[None]:
    """Unmount what a case mounted under its folder, so pytest can remove it."""
    yield
    unmount_under(tmp_path)


def _read_only(relative: str) -> Callable[[Path], None]:
    """A step making the folder ``root/relative`` unwritable: a read-only mount for root (who
    writes through mode bits), mode 555 for others."""

    def step(root: Path) -> None:
        read_only_folder(root / relative)

    return step


def _full_disk(root: Path) -> None:
    """A dataset of ~1 MB of incompressible eyes, and a 256 kB filesystem at ``root/full``."""
    rng = np.random.default_rng(0)
    for day in (1, 2):
        write_day(root / "ds", day, n=30, images=rng.integers(0, 256, (30, 36, 60), np.uint8))
    mount_tmpfs(root / "full", "256k")


def _stopped_at_day3(root: Path) -> Path:
    """An MPIIGaze folder whose conversion to o.h5 stopped at a bad day03 (days 1-2 converted)."""
    write_mpiigaze(root / "ds", bad=(3,))
    assert convert(str(root / "ds"), str(root / "o.h5")) == 2
    assert (root / "o.h5.partial").exists()
    return root / "ds"


def _replace_day1(root: Path) -> None:
    replace(root / "ds" / "Data" / "Normalized" / "p00" / "day01.mat", lambda: write_day(root / "ds", 1, value=200))


#: The files an interrupted conversion keeps for a rerun.
PARTIAL = ("o.h5.partial", "o.h5.partial.json")
TRUNCATED_KAGGLE = _setup(lambda r: truncate(write_kaggle(r / "eye-gaze" / "gaze.h5")))
NYU_TRAIN_ONLY = _setup(lambda r: write_nyu_split(r / "dataset" / "train"))


def _case(id: str, what: str, argv: str, expect: str,  # noqa: A002
          setup: Callable[[Path], Mapping[str, str]] | None = None, **kw: Any) -> BadInput:
    """A ``convert`` case; ``argv`` is split on spaces (placeholders are filled after)."""
    return BadInput(id=id, command="convert", what=what, argv=(*argv.split(), "--no-progress"), expect=expect, setup=setup, **kw)


CASES: list[BadInput] = [
    # --- the source ---------------------------------------------------------------------------
    _case("missing-source", "`SRC` does not exist", "{root}/nowhere {root}/o.h5", "nowhere' does not exist"),
    _case("undetectable-folder", "a folder in no registered format", "{root}/empty {root}/o.h5",
          "is not in any registered dataset format", _setup(_text("empty/notes.txt"))),
    _case("several-formats", "a folder that looks like two formats (Kaggle `gaze.h5` + `real_gaze.h5`)",
          "{root}/eye-gaze {root}/o.h5", "looks like several dataset formats",
          _setup(lambda r: write_kaggle(r / "eye-gaze" / "gaze.h5"), lambda r: write_kaggle(r / "eye-gaze" / "real_gaze.h5", labelled=False))),
    _case("truncated-toolkit-h5", "a truncated toolkit `.h5` file, format auto", "{root}/d.h5 {root}/o.h5",
          "d.h5' is an HDF5 file that cannot be opened (truncated", _setup(lambda r: truncate(write_toolkit_h5(r / "d.h5")))),
    _case("truncated-kaggle-h5", "a truncated Kaggle `gaze.h5`, format auto", "{root}/eye-gaze/gaze.h5 {root}/o.h5",
          "gaze.h5' is an HDF5 file that cannot be opened (truncated", TRUNCATED_KAGGLE),
    _case("truncated-h5-in-folder", "a folder whose only `.h5` file is truncated, format auto",
          "{root}/eye-gaze {root}/o.h5", "eye-gaze/gaze.h5' is an HDF5 file that cannot be opened", TRUNCATED_KAGGLE),
    _case("h5-not-hdf5", "a `.h5` file that is not HDF5 (e.g. an error page saved by a download)",
          "{root}/gaze.h5 {root}/o.h5", "gaze.h5' is named like an HDF5 file but is not one",
          _setup(_text("gaze.h5", "<html>503 Service Unavailable</html>"))),
    _case("truncated-joint-data", "NYU: a truncated `joint_data.mat`", "{root}/dataset/train {root}/o.h5",
          "joint_data.mat: truncated or damaged",
          _setup(lambda r: truncate(write_nyu_split(r / "dataset" / "train") / "joint_data.mat"))),
    _case("nyu-split-missing", "NYU: `dataset/` holding only `train/`, no `split` option", "{root}/dataset {root}/o.h5",
          "holds the NYU split folder train/; set the option split to 'train'", NYU_TRAIN_ONLY),
    _case("nyu-split-absent", "NYU: `--option split=test` where only `train/` exists",
          "{root}/dataset {root}/o.h5 --option split=test", "test: missing joint_data.mat", NYU_TRAIN_ONLY),
    _case("nyu-two-splits", "NYU: `dataset/` with `train/` and `test/`, no `split` option", "{root}/dataset {root}/o.h5",
          "holds the NYU split folders train/ and test/",
          _setup(lambda r: write_nyu_split(r / "dataset" / "train"), lambda r: write_nyu_split(r / "dataset" / "test"))),
    _case("evaluation-list-missing", "MPIIGaze: `split=evaluation` without the `Evaluation Subset` lists",
          "{root}/ds {root}/o.h5 --option split=evaluation", "evaluation list missing", _setup(_ds)),
    # --- options --------------------------------------------------------------------------------
    _case("unknown-format", "`--format` names no registered format", "{root}/ds {root}/o.h5 --format npy",
          "unknown dataset 'npy'", _setup(_ds)),
    _case("unknown-option", "`--option` the format does not take", "{root}/ds {root}/o.h5 --option colour=1",
          "colour", _setup(_ds)),
    _case("option-syntax", "`--option` without `=`", "{root}/ds {root}/o.h5 --option colour", "expected KEY=VALUE", _setup(_ds)),
    _case("option-value", "`--option` with a value the format refuses", "{root}/ds {root}/o.h5 --option split=some",
          "split must be 'all' or 'evaluation'", _setup(_ds)),
    _case("option-string-bool", "`--option rgb=\"true\"` (a string, not a boolean)", "{root}/ds {root}/o.h5 --option rgb=\"true\"",
          "rgb must be true or false", _setup(_ds)),
    # --- bad files --------------------------------------------------------------------------------
    _case("bad-file", "an unreadable file, without `--skip-bad`", "{root}/ds {root}/o.h5", "day03.mat: not a readable MATLAB",
          _setup(lambda r: write_mpiigaze(r / "ds", bad=(3,))), may_change=PARTIAL,
          gets="an error naming the file; the files before it are kept in `OUT.h5.partial` for a rerun, exit 2"),
    _case("all-files-bad", "every file unreadable, with `--skip-bad`", "{root}/ds {root}/o.h5 --skip-bad",
          "none of its 2 files could be read", _setup(lambda r: write_mpiigaze(r / "ds", days=2, bad=(1, 2)))),
    # --- resuming after the source changed (the interrupted conversion is kept as it was) --------
    _case("resume-file-replaced", "resume after a file already converted was replaced (same name)",
          "{root}/ds {root}/o.h5", "day01.mat changed (modified", _setup(_stopped_at_day3, _replace_day1),
          gets="`simgan: error: …/day01.mat changed (modified … -> …) since it was converted (2 of 4 units are done); "
               "start over with --restart …`, exit 2; the interrupted conversion is kept as it was"),
    _case("resume-file-added", "resume after a file was added to the source", "{root}/ds {root}/o.h5",
          "day05.mat is new); start over with --restart",
          _setup(_stopped_at_day3, lambda r: write_day(r / "ds", 5)),
          gets="`simgan: error: … the files under '…' changed since the interrupted conversion began (…/day05.mat is new); "
               "start over with --restart …`, exit 2; the interrupted conversion is kept as it was"),
    _case("resume-other-options", "resume with other `--option`s", "{root}/ds {root}/o.h5 --option eyes=left",
          "interrupted conversion of other input (source_options was {}", _setup(_stopped_at_day3)),
    # --- the output -------------------------------------------------------------------------------
    _case("output-is-folder", "`OUT.h5` names an existing folder", "{root}/ds {root}/out", "out' is a folder",
          _setup(_ds, _text("out/keep.txt"))),
    _case("output-under-file", "`OUT.h5` lies under a file", "{root}/ds {root}/file.txt/o.h5", "file.txt' is a file, not a folder",
          _setup(_ds, _text("file.txt"))),
    _case("output-is-source", "`OUT.h5` is `SRC` itself (a toolkit `.h5`)", "{root}/d.h5 {root}/d.h5", "d.h5' is the source",
          _setup(lambda r: write_toolkit_h5(r / "d.h5"))),
    _case("output-users-file", "`OUT.h5` is an existing file that is not a toolkit HDF5 file", "{root}/ds {root}/notes.h5",
          "notes.h5' exists and is not a toolkit HDF5 file; not replacing it",
          _setup(_ds, _text("notes.h5", "my notes, not a conversion"))),
    _case("output-read-only", "`OUT.h5` in a read-only folder", "{root}/ds {root}/locked/o.h5", "locked' is not writable",
          _setup(_ds, _read_only("locked"))),
    # A child process: were HDF5 to crash on the failed write again, the test would see it, not die of it.
    _case("output-disk-full", "the disk fills up during the conversion", "{root}/ds {root}/full/o.h5",
          "full/o.h5': no space left on device", _setup(_full_disk), subprocess=True,
          gets="`simgan: error: cannot write '…': no space left on device (the incomplete conversion is removed; …)`, "
               "exit 2, no temporary file left"),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_bad_input(case: BadInput, tmp_path: Path) -> None:
    check_bad_input(case, tmp_path)


# --------------------------------------------------------------------------------------------
# Outcomes that are not errors
# --------------------------------------------------------------------------------------------


def _labels(path: Path) -> torch.Tensor:
    return read_images_h5(path).labels["gaze"]


def test_finished_conversion_of_a_replaced_file_is_converted_again(tmp_path: Path) -> None:
    """Same names, new contents: not "already converted" with the old labels, but converted again,
    and the note names the changed file."""
    ds, out = write_mpiigaze(tmp_path / "ds", days=2), tmp_path / "o.h5"
    assert convert(str(ds), str(out)) == 0
    old = _labels(out)
    day2 = ds / "Data" / "Normalized" / "p00" / "day02.mat"
    replace(day2, lambda: write_day(ds, 2, value=200))
    result = run_cli(["convert", str(ds), str(out), "--no-progress"])
    assert result.exit_code == 0, result.stderr
    assert f"{out} is out of date: {day2} changed (modified " in result.stdout
    new = _labels(out)
    assert torch.equal(new[:4], old[:4]) and not torch.allclose(new[4:], old[4:])
    again = run_cli(["convert", str(ds), str(out), "--no-progress"])
    assert "already converted" in again.stdout


def test_rerun_after_repairing_the_bad_file_continues(tmp_path: Path) -> None:
    """Only the files already converted must stay as they were: the one the conversion stopped on
    may be repaired."""
    ds = _stopped_at_day3(tmp_path)
    write_day(ds, 3, value=30)
    result = run_cli(["convert", str(ds), str(tmp_path / "o.h5"), "--no-progress"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith(f"resuming {tmp_path / 'o.h5'}: 2 of 4 files")
    assert len(read_images_h5(tmp_path / "o.h5")) == 16
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "o.h5"]


def test_skip_bad_names_the_first_ten_and_stores_all(tmp_path: Path) -> None:
    ds = write_mpiigaze(tmp_path / "ds", days=13, bad=tuple(range(2, 14)))
    out = tmp_path / "o.h5"
    with pytest.warns(SkippedFilesWarning) as caught:
        result = run_cli(["convert", str(ds), str(out), "--no-progress", "--skip-bad"])
    assert result.exit_code == 0, result.stderr
    assert "converted 4 images from 1 files (mpiigaze, 12 skipped)" in result.stdout
    lines = str(caught[0].message).splitlines()
    days = [ds / "Data" / "Normalized" / "p00" / f"day{d:02d}.mat" for d in range(2, 14)]
    assert lines[0] == "skipped 12 of 13 units (images not read: count unknown):"
    for line, path in zip(lines[1:11], days[:10], strict=True):  # each path once, then its reason
        assert line.startswith(f"  {path}: not a readable MATLAB .mat file") and line.count(str(path.parent)) == 1
    assert lines[11:] == ["  ... and 2 more"]
    attrs = read_attrs(out)
    assert attrs["skipped_files"] == 12 and [p for p, _ in json.loads(attrs["skipped"])] == [str(d) for d in days]


def test_temp_files_of_a_killed_record_write_are_removed(tmp_path: Path) -> None:
    """A conversion killed while writing its progress record leaves the record's temp file; the
    next run removes it."""
    ds = _stopped_at_day3(tmp_path)
    leftover = tmp_path / ".o.h5.partial.json.abc12345.tmp"
    leftover.write_text("{")
    write_day(ds, 3)
    assert convert(str(ds), str(tmp_path / "o.h5")) == 0
    assert not leftover.exists()
