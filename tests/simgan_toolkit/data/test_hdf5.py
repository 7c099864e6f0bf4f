"""The toolkit HDF5 layout: round trip, atomic writes, clear errors for bad files."""

from __future__ import annotations

import os
import stat

import h5py
import numpy as np
import pytest
import torch

from simgan_toolkit.data import FORMAT, H5ImageWriter, count_images_h5, iter_images_h5, read_attrs, read_images_h5, write_images_h5
from simgan_toolkit.errors import DataError
from simgan_toolkit.task import LabelledImages


def _data(n=10):
    g = torch.Generator().manual_seed(0)
    return LabelledImages(
        torch.rand(n, 2, 3, 4, generator=g),
        {"gaze": torch.randn(n, 3, generator=g), "pupil_centre": torch.randn(n, 2, generator=g)},
    )


def test_round_trip_images_labels_attrs(tmp_path):
    path = tmp_path / "set.h5"
    data = _data()
    attrs = {"kind": "synthetic", "task": "gaze", "value_range": [-1.0, 1.0], "seed": 3, "config": {"a": {"b": [1, 2]}}, "flag": True}
    write_images_h5(path, data, attrs)
    back = read_images_h5(path)
    assert torch.equal(back.images, data.images)
    assert back.images.dtype == torch.float32
    assert set(back.labels) == {"gaze", "pupil_centre"}
    for k in data.labels:
        assert torch.equal(back.labels[k], data.labels[k])
    got = read_attrs(path)
    assert got["format"] == FORMAT
    assert got["kind"] == "synthetic" and got["task"] == "gaze" and got["seed"] == 3
    assert got["value_range"] == [-1.0, 1.0]
    assert got["config"] == '{"a": {"b": [1, 2]}}'  # dicts stored as JSON strings
    assert bool(got["flag"]) is True
    assert got["count"] == 10
    assert {"created", "toolkit_version"} <= set(got)
    assert count_images_h5(path) == 10


def test_unlabelled_round_trip_and_batches(tmp_path):
    path = tmp_path / "real.h5"
    images = torch.arange(7 * 1 * 2 * 2, dtype=torch.float32).reshape(7, 1, 2, 2)
    write_images_h5(path, LabelledImages(images), {"kind": "real"})
    batches = list(iter_images_h5(path, batch_size=3))
    assert [len(b) for b in batches] == [3, 3, 1]
    assert all(b.labels == {} for b in batches)
    assert torch.equal(torch.cat([b.images for b in batches]), images)


def test_writer_streams_batches(tmp_path):
    path = tmp_path / "stream.h5"
    with H5ImageWriter(path, (1, 2, 2), {"y": (1,)}, {"kind": "refined"}) as w:
        w.append(torch.zeros(2, 1, 2, 2), {"y": torch.zeros(2, 1)})
        w.append(torch.ones(3, 1, 2, 2), {"y": torch.ones(3, 1)})
        assert not path.exists()  # appears only on close
    back = read_images_h5(path)
    assert back.images[:, 0, 0, 0].tolist() == [0, 0, 1, 1, 1]
    assert back.labels["y"].shape == (5, 1)


def test_writer_rejects_wrong_shapes_and_labels(tmp_path):
    with pytest.raises(DataError, match="images must be"):
        with H5ImageWriter(tmp_path / "a.h5", (1, 2, 2), {}, {}) as w:
            w.append(torch.zeros(2, 1, 3, 2))
    with pytest.raises(DataError, match="expected labels"):
        with H5ImageWriter(tmp_path / "b.h5", (1, 2, 2), {"y": (1,)}, {}) as w:
            w.append(torch.zeros(2, 1, 2, 2), {"z": torch.zeros(2, 1)})
    assert list(tmp_path.iterdir()) == []


def test_exception_inside_writer_leaves_no_file(tmp_path):
    path = tmp_path / "out.h5"
    with pytest.raises(RuntimeError, match="crash"):
        with H5ImageWriter(path, (1, 2, 2), {}, {"kind": "refined"}) as w:
            w.append(torch.zeros(2, 1, 2, 2))
            raise RuntimeError("crash mid-write")
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary file left either


def test_exception_keeps_previous_file(tmp_path):
    path = tmp_path / "out.h5"
    write_images_h5(path, _data(4), {"kind": "old"})
    with pytest.raises(RuntimeError):
        with H5ImageWriter(path, (2, 3, 4), {}, {"kind": "new"}):
            raise RuntimeError("crash")
    assert read_attrs(path)["kind"] == "old" and count_images_h5(path) == 4


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nope\.h5.*does not exist"):
        read_images_h5(tmp_path / "nope.h5")


def test_non_hdf5_file(tmp_path):
    path = tmp_path / "fake.h5"
    path.write_bytes(b"this is not an HDF5 file at all" * 10)
    for fn in (read_images_h5, read_attrs, count_images_h5):
        with pytest.raises(DataError, match=r"fake\.h5.*not a readable HDF5 file"):
            fn(path)


def test_truncated_file(tmp_path):
    path = tmp_path / "cut.h5"
    write_images_h5(path, _data(50), {"kind": "synthetic"})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut\.h5"):
        read_images_h5(path)


def test_file_without_images(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["data"] = np.zeros((2, 1, 2, 2), dtype="float32")
    with pytest.raises(DataError, match=r"other\.h5.*no 'images' dataset"):
        read_images_h5(path)


def test_images_of_wrong_rank(tmp_path):
    path = tmp_path / "flat.h5"
    with h5py.File(path, "w") as f:
        f["images"] = np.zeros((2, 4), dtype="float32")
    with pytest.raises(DataError, match=r"\(N, C, H, W\)"):
        read_images_h5(path)


def test_label_row_count_mismatch(tmp_path):
    path = tmp_path / "bad_labels.h5"
    with h5py.File(path, "w") as f:
        f["images"] = np.zeros((4, 1, 2, 2), dtype="float32")
        f["labels/gaze"] = np.zeros((3, 3), dtype="float32")
    with pytest.raises(DataError, match=r"bad_labels\.h5.*'gaze' has 3 rows, images have 4"):
        read_images_h5(path)


def test_empty_file_reads_as_error(tmp_path):
    path = tmp_path / "empty.h5"
    write_images_h5(path, LabelledImages(torch.zeros(0, 1, 2, 2)), {})
    assert count_images_h5(path) == 0
    with pytest.raises(DataError, match="holds no images"):
        read_images_h5(path)


def test_labelled_images_row_mismatch():
    with pytest.raises(DataError, match="label 'y' has 2 rows but there are 3 images"):
        LabelledImages(torch.zeros(3, 1, 2, 2), {"y": torch.zeros(2)})


@pytest.mark.skipif(not hasattr(os, "umask") or os.name != "posix", reason="POSIX permissions")
def test_written_file_permissions_follow_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = tmp_path / "shared.h5"
        write_images_h5(path, _data(2), {"kind": "synthetic"})
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def _fill_disk_after(monkeypatch, limit: int) -> None:
    """Make every write past ``limit`` bytes in total fail as on a full disk (errno 28)."""
    import errno

    real_pwrite, written = os.pwrite, [0]

    def pwrite(fd, data, offset):
        if written[0] + len(data) > limit:
            raise OSError(errno.ENOSPC, "No space left on device")
        written[0] += len(data)
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)


@pytest.mark.parametrize("fraction", [0.004, 0.1, 0.99])  # at the first write, mid-data, as the file closes
def test_full_disk_is_one_line_error_and_leaves_nothing(tmp_path, monkeypatch, fraction):
    """HDF5 crashed (segmentation fault) after a failed write; the writer must report it and clean up."""
    write_images_h5(tmp_path / "whole.h5", _data(2000), {"kind": "new"})
    size = (tmp_path / "whole.h5").stat().st_size
    (tmp_path / "whole.h5").unlink()
    path = tmp_path / "out.h5"
    write_images_h5(path, _data(4), {"kind": "old"})
    _fill_disk_after(monkeypatch, int(fraction * size))
    with pytest.raises(DataError, match=r"cannot write '.*out\.h5': no space left on device"):
        write_images_h5(path, _data(2000), {"kind": "new"})  # ~200 kB of images
    monkeypatch.undo()
    assert read_attrs(path)["kind"] == "old" and count_images_h5(path) == 4  # the previous file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5"]  # no temporary file
    write_images_h5(tmp_path / "after.h5", _data(3), {})  # HDF5 is still in a usable state
    assert count_images_h5(tmp_path / "after.h5") == 3


def test_error_inside_block_wins_over_write_failure(tmp_path, monkeypatch):
    _fill_disk_after(monkeypatch, 0)
    with pytest.raises(RuntimeError, match="crash"):
        with H5ImageWriter(tmp_path / "out.h5", (1, 2, 2), {}, {}):
            raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []


def test_write_guard_keeps_writes_after_a_failure_in_memory(tmp_path, monkeypatch):
    """What HDF5 reads back after the failure is what it wrote, so it closes the file cleanly."""
    from simgan_toolkit.data.hdf5 import WriteGuard

    path = tmp_path / "f.bin"
    path.write_bytes(b"")
    guard = WriteGuard(path)
    assert guard.write(b"abcdef") == 6
    _fill_disk_after(monkeypatch, 0)
    guard.seek(4)
    assert guard.write(b"XYZ") == 3 and guard.error is not None and guard.error.errno == 28
    guard.seek(10)
    guard.write(b"!")
    assert guard.seek(0, os.SEEK_END) == 11
    guard.seek(0)
    assert guard.read() == b"abcdXYZ\0\0\0!"  # the disk's bytes, the later writes over them, zeros between
    assert guard.truncate(2) == 2 and guard.seek(0, os.SEEK_END) == 2
    guard.seek(0)
    assert guard.read() == b"ab"
    monkeypatch.undo()
    guard.close()
    assert path.read_bytes() == b"abcdef"  # nothing reached the disk after the failure
