"""Bad inputs to ``simgan refine``, and full filesystems under refine, export and checkpoints.

Every case of :data:`CASES` must end in one ``simgan: error:`` line, a non-zero exit, no
traceback, no file created or changed and no temporary file left (``check_bad_input``); the
same list is the refine part of the table in docs/bad-inputs.md.

Full and read-only filesystems are small tmpfs mounts under the test's folder: the tests that
need one are skipped where this process may not mount (not root, or no mount rights in the
container). Root ignores permission bits, so a read-only folder is a read-only mount for root
and a ``chmod 555`` folder otherwise.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest
import torch

from simgan_toolkit.data import read_images_h5, write_images_h5
from simgan_toolkit.errors import DataError
from simgan_toolkit.networks import ResNetRefiner
from simgan_toolkit.task import LabelledImages
from simgan_toolkit.testing import (
    BadInput, CliResult, check_bad_input, check_cli_error, mount_tmpfs, read_only_folder, run_cli, temp_leftovers, unmount_under,
)
from simgan_toolkit.training import load_checkpoint, save_checkpoint
from simgan_toolkit.training.trainer import CHECKPOINT_FORMAT

SHAPE = (1, 12, 16)  # (C, H, W) of the checkpoint's refiner
REFINER_OPTIONS = {"in_channels": 1, "width": 4, "blocks": 1, "noise_channels": 0}


# --- files the cases start from ----------------------------------------------------------


def write_checkpoint(path: Path) -> Path:
    """A checkpoint holding what ``refine`` reads from a trainer's (an untrained 4-map refiner)."""
    torch.manual_seed(0)
    refiner = ResNetRefiner(**REFINER_OPTIONS)
    image_spec = {"channels": SHAPE[0], "height": SHAPE[1], "width": SHAPE[2], "value_range": [-1.0, 1.0]}
    save_checkpoint(
        {"format": CHECKPOINT_FORMAT, "refiner": refiner.state_dict(), "refiner_ema": None,
         "refiner_spec": {"name": "resnet", "options": REFINER_OPTIONS}, "image_spec": image_spec},
        path,
    )
    return path


def write_input(path: Path, n: int = 6, shape: tuple[int, ...] = SHAPE, poison: Mapping[int, float] | None = None) -> Path:
    """A synthetic-images file of ``n`` random images; ``poison`` sets one pixel of image i to a value."""
    g = torch.Generator().manual_seed(1)
    images = torch.rand(n, *shape, generator=g) * 2 - 1
    for index, value in (poison or {}).items():
        images[index, 0, 0, 0] = value
    data = LabelledImages(images, {"gaze": torch.randn(n, 3, generator=g)})
    write_images_h5(path, data, {"kind": "synthetic", "task": "tiny", "value_range": [-1.0, 1.0]})
    return path


def standard_files(root: Path, **input_options: object) -> dict[str, str]:
    """``{ckpt}`` and ``{input}`` (``synthetic.h5``) under ``root``; options go to :func:`write_input`."""
    return {
        "ckpt": str(write_checkpoint(root / "last.pt")),
        "input": str(write_input(root / "synthetic.h5", **input_options)),  # type: ignore[arg-type]
    }


# --- mounts (a full disk, a read-only folder) --------------------------------------------


@pytest.fixture(autouse=True)
def _unmount_after(tmp_path: Path) -> Iterator[None]:
    """Unmount whatever a case mounted under its folder, so that pytest can remove it."""
    yield
    unmount_under(tmp_path)


def full_disk(root: Path, size: str = "256k") -> Path:
    """A small tmpfs at ``root/full`` (smaller than the inputs the cases write)."""
    return mount_tmpfs(root / "full", size)


# --- setups ----------------------------------------------------------------------------


def _missing_input(root: Path) -> dict[str, str]:
    return {"ckpt": str(write_checkpoint(root / "last.pt"))}


def _garbage_input(root: Path) -> dict[str, str]:
    (root / "synthetic.h5").write_bytes(b"not an HDF5 file " * 64)
    return _missing_input(root)


def _truncated_input(root: Path) -> dict[str, str]:
    files = standard_files(root, n=300)
    data = Path(files["input"]).read_bytes()
    Path(files["input"]).write_bytes(data[: len(data) // 2])
    return files


def _empty_input(root: Path) -> dict[str, str]:
    write_images_h5(root / "synthetic.h5", LabelledImages(torch.zeros(0, *SHAPE)), {"kind": "synthetic"})
    return {**_missing_input(root), "input": str(root / "synthetic.h5")}


def _missing_checkpoint(root: Path) -> dict[str, str]:
    return {"input": str(write_input(root / "synthetic.h5"))}


def _truncated_checkpoint(root: Path) -> dict[str, str]:
    files = standard_files(root)
    data = Path(files["ckpt"]).read_bytes()
    Path(files["ckpt"]).write_bytes(data[: len(data) // 2])
    return files


def _foreign_checkpoint(root: Path) -> dict[str, str]:
    torch.save({"step": 3, "weights": torch.zeros(4)}, root / "last.pt")
    return {**_missing_checkpoint(root), "ckpt": str(root / "last.pt")}


def _checkpoint_without_refiner(root: Path) -> dict[str, str]:
    save_checkpoint({"format": CHECKPOINT_FORMAT, "refiner": {}}, root / "last.pt")
    return {**_missing_checkpoint(root), "ckpt": str(root / "last.pt")}


def _wrong_shape(root: Path) -> dict[str, str]:
    return standard_files(root, shape=(1, 35, 55))


def _non_finite(root: Path) -> dict[str, str]:
    return standard_files(root, poison={1: float("nan"), 4: float("inf")})


def _output_folder(root: Path) -> dict[str, str]:
    (root / "refined.h5").mkdir()
    return standard_files(root)


def _output_under_file(root: Path) -> dict[str, str]:
    (root / "notes.txt").write_text("a file, not a folder\n")
    return standard_files(root)


def _output_read_only(root: Path) -> dict[str, str]:
    return {**standard_files(root), "ro": str(read_only_folder(root / "readonly"))}


def _output_exists(root: Path) -> dict[str, str]:
    write_input(root / "refined.h5", n=2)
    return standard_files(root)


def _input_symlink(root: Path) -> dict[str, str]:
    files = standard_files(root)
    (root / "link.h5").symlink_to(root / "synthetic.h5")
    return files


def _input_other_spelling(root: Path) -> dict[str, str]:
    (root / "sub").mkdir()
    return standard_files(root)


def _full_disk(root: Path) -> dict[str, str]:
    files = standard_files(root, n=600)  # ~460 kB: more than the 256 kB filesystem
    return {**files, "full": str(full_disk(root))}


def _refine(*extra: str, output: str = "{root}/refined.h5", ckpt: str = "{ckpt}", source: str = "{input}") -> tuple[str, ...]:
    return ("--checkpoint", ckpt, "--input", source, "--output", output, "--device", "cpu", "--no-progress", *extra)


CASES: list[BadInput] = [
    BadInput("input-missing", "refine", "`--input` does not exist", _refine(source="{root}/missing.h5"),
             "missing.h5' does not exist", setup=_missing_input),
    BadInput("input-not-hdf5", "refine", "`--input` is not an HDF5 file", _refine(source="{root}/synthetic.h5"),
             "not a readable HDF5 file", setup=_garbage_input),
    BadInput("input-truncated", "refine", "`--input` is a truncated HDF5 file", _refine(), "truncated", setup=_truncated_input),
    BadInput("input-empty", "refine", "`--input` holds no images", _refine(), "holds no images", setup=_empty_input),
    BadInput("input-wrong-shape", "refine", "`--input` images have another size than the checkpoint's refiner",
             _refine(), "was trained on (1, 12, 16)", setup=_wrong_shape),
    BadInput("input-non-finite", "refine", "`--input` images hold NaN or infinite pixels", _refine(),
             "2 of 6 images hold NaN or infinite", setup=_non_finite),
    BadInput("checkpoint-missing", "refine", "`--checkpoint` does not exist", _refine(ckpt="{root}/last.pt"),
             "last.pt' does not exist", setup=_missing_checkpoint),
    BadInput("checkpoint-truncated", "refine", "`--checkpoint` is truncated", _refine(), "cannot be read", setup=_truncated_checkpoint),
    BadInput("checkpoint-foreign", "refine", "`--checkpoint` is a PyTorch file but not a toolkit checkpoint", _refine(),
             "not a simgan-toolkit checkpoint", setup=_foreign_checkpoint),
    BadInput("checkpoint-no-refiner", "refine", "`--checkpoint` does not record its refiner", _refine(),
             "no refiner_spec", setup=_checkpoint_without_refiner),
    BadInput("batch-size-zero", "refine", "`--batch-size 0`", _refine("--batch-size", "0"), "--batch-size must be at least 1",
             setup=standard_files),
    BadInput("batch-size-negative", "refine", "`--batch-size -4`", _refine("--batch-size", "-4"), "--batch-size must be at least 1",
             setup=standard_files),
    BadInput("device-unknown", "refine", "`--device` is not a device name", _refine("--device", "gpu0"),
             "is not a device name", setup=standard_files),
    BadInput("output-is-folder", "refine", "`--output` names an existing folder", _refine(), "is a folder", setup=_output_folder),
    BadInput("output-under-file", "refine", "`--output` lies under a file", _refine(output="{root}/notes.txt/refined.h5"),
             "notes.txt' is a file, not a folder", setup=_output_under_file),
    BadInput("output-read-only", "refine", "`--output` lies in a folder that cannot be written", _refine(output="{ro}/refined.h5"),
             "is not writable", setup=_output_read_only),
    BadInput("output-exists", "refine", "`--output` names an existing file (no `--overwrite`)", _refine(),
             "already exists; pass --overwrite", setup=_output_exists),
    BadInput("output-is-input", "refine", "`--output` is `--input`, even with `--overwrite`", _refine("--overwrite", output="{input}"),
             "is the input file", setup=standard_files),
    BadInput("output-is-input-spelt-otherwise", "refine", "`--output` is `--input` spelt another way (`./`, `..`)",
             _refine("--overwrite", output="{root}/sub/.././synthetic.h5"), "is the input file", setup=_input_other_spelling),
    BadInput("output-is-input-symlink", "refine", "`--output` is a symbolic link to `--input`", _refine("--overwrite", output="{root}/link.h5"),
             "is the input file", setup=_input_symlink),
    BadInput("output-is-checkpoint", "refine", "`--output` is `--checkpoint`, even with `--overwrite`", _refine("--overwrite", output="{ckpt}"),
             "is the checkpoint", setup=standard_files),
    BadInput("disk-full", "refine", "`--output` on a filesystem without room for it", _refine(output="{full}/refined.h5"),
             "no space left on device", setup=_full_disk,
             gets="`simgan: error: cannot write '…': no space left on device (needs about … MB, … MB free)`, exit 2, "
                  "before refining; the same line if the disk fills up while writing, and no temporary file left"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input(case: BadInput, tmp_path: Path) -> None:
    check_bad_input(case, tmp_path)


# --- what is not an error ---------------------------------------------------------------


def test_overwrite_replaces_existing_output(tmp_path: Path) -> None:
    files = _output_exists(tmp_path)
    result = run_cli(["refine", *(a.format(root=tmp_path, **files) for a in _refine("--overwrite"))])
    assert result.exit_code == 0, result.stderr
    assert read_images_h5(tmp_path / "refined.h5").images.shape == (6, *SHAPE)  # the old file held 2 images
    assert temp_leftovers(tmp_path) == []


def test_error_names_the_output_and_input(tmp_path: Path) -> None:
    """The messages name the files; the table's ``expect`` strings cannot show that for every case."""
    files = standard_files(tmp_path)
    result = check_cli_error(
        ["refine", *(a.format(root=tmp_path, **files) for a in _refine("--overwrite", output="{root}/./synthetic.h5"))],
        tmp_path, expect=f"{tmp_path}/./synthetic.h5",
    )
    assert f"input file {files['input']!r}" in result.stderr


# --- full filesystems -------------------------------------------------------------------

#: Refines onto the full disk with the free-space check switched off, so that the disk fills
#: while HDF5 writes (the path the check cannot rule out: another process filling the disk).
_MID_WRITE = """
import sys
import simgan_toolkit.refine as refine
refine.check_free_space = lambda path, needed: None
from simgan_toolkit.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _run_mid_write(argv: Sequence[str], cwd: Path) -> CliResult:
    proc = subprocess.run(
        [sys.executable, "-c", _MID_WRITE, *argv], cwd=cwd, env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True, text=True, timeout=300, check=False,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def test_disk_fills_while_writing_refined_file(tmp_path: Path) -> None:
    files = _full_disk(tmp_path)
    argv = ["refine", *(a.format(root=tmp_path, **files) for a in _refine(output="{full}/refined.h5"))]
    # exit 2, not -11: HDF5 used to crash with a segmentation fault after errno 28.
    result = check_cli_error(argv, tmp_path, expect=f"{files['full']}/refined.h5': no space left on device",
                             runner=lambda a: _run_mid_write(a, tmp_path))
    assert "needs about" not in result.stderr  # the write failed, not the check before it


def test_checkpoint_onto_full_disk_keeps_previous_and_recovers(tmp_path: Path) -> None:
    folder = full_disk(tmp_path, size="1m")
    path = folder / "checkpoints" / "last.pt"
    save_checkpoint({"format": CHECKPOINT_FORMAT, "step": 1, "w": torch.zeros(1000)}, path)
    filler = folder / "other-data.bin"
    filler.write_bytes(bytes(800_000))
    state = {"format": CHECKPOINT_FORMAT, "step": 2, "w": torch.randn(100_000)}  # 400 kB: does not fit
    with pytest.raises(DataError, match=re.escape(f"cannot write '{path}': no space left on device")):
        save_checkpoint(state, path)
    assert load_checkpoint(path)["step"] == 1  # the previous checkpoint survives
    assert temp_leftovers(tmp_path) == []
    filler.unlink()  # space freed: the next save goes through
    save_checkpoint(state, path)
    assert load_checkpoint(path)["step"] == 2
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt"]
