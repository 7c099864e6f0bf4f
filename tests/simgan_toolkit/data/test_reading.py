"""Reading and converting datasets through the loader interface, with the fake ``npz`` format.

Expected tensors come from the fixture's own decoding of the bytes it wrote (uint8 / 127.5 - 1),
so every comparison is exact.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import ClassVar

import h5py
import numpy as np
import pytest
import torch

from simgan_toolkit.data import FORMAT, read_attrs, read_images_h5, write_images_h5
from simgan_toolkit.data import convert as convert_module
from simgan_toolkit.data import source_files as source_files_module
from simgan_toolkit.data.convert import convert_dataset
from simgan_toolkit.data.formats import ToolkitH5Loader, resolve_loader
from simgan_toolkit.data.reading import (
    SkippedFilesWarning,
    SkipReport,
    UnitRead,
    check_not_empty,
    iter_units,
    list_units,
    read_dataset,
)
from simgan_toolkit.errors import ConfigError, DataError, PluginError
from simgan_toolkit.task import LabelledImages

COUNTS = [2, 3, 1]  # images per unit: 6 in all


def _same(a: LabelledImages, b: LabelledImages) -> None:
    assert a.images.shape == b.images.shape
    assert torch.equal(a.images, b.images)
    assert set(a.labels) == set(b.labels)
    for k in a.labels:
        assert torch.equal(a.labels[k], b.labels[k]), k


def _quiet(**kw):
    return {"progress": False, **kw}


# --- resolve_loader ---------------------------------------------------------------------
def test_auto_detects_the_one_matching_format(tmp_path, npz):
    npz.write(tmp_path / "ds", COUNTS)

    class Never(npz.Loader):
        name = "never"

        @classmethod
        def detect(cls, root):
            return False

    loader = resolve_loader(npz.registry(npz.Loader, Never), "auto", tmp_path / "ds", {})
    assert type(loader) is npz.Loader and loader.image_shape == (1, 12, 16)


def test_auto_without_a_match_names_path_and_formats(tmp_path, npz):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError) as err:
        resolve_loader(npz.registry(), "auto", tmp_path / "empty", {})
    message = str(err.value)
    assert str(tmp_path / "empty") in message and "registered: npz" in message and "--format" in message


def test_auto_with_several_matches_names_them(tmp_path, npz):
    npz.write(tmp_path / "ds", COUNTS)
    with pytest.raises(DataError, match="several dataset formats: npz, npz_other"):
        resolve_loader(npz.registry(npz.Loader, npz.Other), "auto", tmp_path / "ds", {})
    # Naming the format settles it.
    assert type(resolve_loader(npz.registry(npz.Loader, npz.Other), "npz_other", tmp_path / "ds", {})) is npz.Other


def test_unknown_format_bad_option_missing_path(tmp_path, npz):
    npz.write(tmp_path / "ds", COUNTS)
    with pytest.raises(PluginError, match="unknown dataset 'npy'. Did you mean 'npz'"):
        resolve_loader(npz.registry(), "npy", tmp_path / "ds", {})
    with pytest.raises(ConfigError) as err:
        resolve_loader(npz.registry(), "npz", tmp_path / "ds", {"colour": True})
    assert "'npz'" in str(err.value) and "colour" in str(err.value) and "channels, height, width" in str(err.value)
    with pytest.raises(DataError, match="does not exist"):
        resolve_loader(npz.registry(), "auto", tmp_path / "nowhere", {})


def test_options_reach_the_loader(tmp_path, npz):
    npz.write(tmp_path / "ds", [1], shape=(3, 4, 5))
    loader = resolve_loader(npz.registry(), "npz", tmp_path / "ds", {"channels": 3, "height": 4, "width": 5})
    assert loader.image_shape == (3, 4, 5)
    data, _ = read_dataset(loader, tmp_path / "ds", **_quiet())
    assert data.images.shape == (1, 3, 4, 5)


def test_toolkit_h5_is_detected_without_registering(tmp_path, npz):
    data = LabelledImages(torch.linspace(-1, 1, 3 * 12 * 16).reshape(3, 1, 12, 16), {"y": torch.arange(6.0).reshape(3, 2)})
    write_images_h5(tmp_path / "d.h5", data, {"kind": "real"})
    loader = resolve_loader(npz.registry(), "auto", tmp_path / "d.h5", {})
    assert isinstance(loader, ToolkitH5Loader) and loader.label_shapes == {"y": (2,)}
    got, report = read_dataset(loader, tmp_path / "d.h5", **_quiet())
    _same(got, data)
    assert (report.read, report.images) == (1, 3)
    # A file that is not a toolkit HDF5 file is not taken for one.
    (tmp_path / "x.h5").write_bytes(b"junk")
    with pytest.raises(DataError, match="not a toolkit HDF5 file"):
        resolve_loader(npz.registry(), "toolkit-h5", tmp_path / "x.h5", {})


# --- list_units, iter_units, check_not_empty: the one read-or-skip path -----------------
def test_list_units_refuses_none_and_duplicate_keys(tmp_path, npz):
    npz.write(tmp_path / "ds", COUNTS)
    assert [u.key for u in list_units(npz.Loader(), tmp_path / "ds")] == ["u00", "u01", "u02"]

    class Twice(npz.Loader):
        def units(self, root):
            return [*super().units(root), super().units(root)[0]]

    with pytest.raises(DataError, match="lists unit 'u00' .* twice"):
        list_units(Twice(), tmp_path / "ds")

    class Nothing(npz.Loader):
        def units(self, root):
            return []

    with pytest.raises(DataError, match="no files of format 'npz' found"):
        list_units(Nothing(), tmp_path / "ds")


def test_iter_units_reads_lazily_and_counts_each_unit(tmp_path, npz):
    expected = npz.write(tmp_path / "ds", COUNTS)
    loader = npz.Loader()
    report = SkipReport()
    outcomes = iter_units(loader, list_units(loader, tmp_path / "ds"), skip_bad=False, report=report)
    first = next(outcomes)
    assert loader.reads == ["u00"] and (report.read, report.images) == (1, 2)  # nothing read ahead
    assert first.unit.key == "u00" and first.reason is None
    _same(first.data, expected.subset(slice(0, 2)))
    rest = list(outcomes)
    assert [o.unit.key for o in rest] == ["u01", "u02"] and (report.read, report.images) == (3, 6)


def test_iter_units_skips_a_bad_file_only_with_skip_bad(tmp_path, npz):
    npz.write(tmp_path / "ds", COUNTS)
    bad = tmp_path / "ds" / "u01.npz"
    bad.write_bytes(b"garbage")

    class Sized(npz.Loader):
        def unit_size(self, unit):
            return {"u00": 2, "u01": 3, "u02": 1}[unit.key]

    units = list_units(Sized(), tmp_path / "ds")
    with pytest.raises(DataError, match="u01.npz: cannot read"):
        list(iter_units(Sized(), units, skip_bad=False))
    report = SkipReport()
    outcomes = list(iter_units(Sized(), units, skip_bad=True, report=report))
    skipped = outcomes[1]
    assert skipped == UnitRead(units[1], None, skipped.reason, 3)
    assert skipped.reason.startswith("cannot read") and str(bad) not in skipped.reason
    assert report.skipped == [(str(bad), skipped.reason)] and (report.read, report.images, report.skipped_images) == (2, 3, 3)
    # Without a report nothing is counted: the caller tallies (as the converter does per batch).
    tally = SkipReport()
    for outcome in outcomes:
        tally.count(outcome)
    assert tally == report


def test_check_not_empty_names_the_first_skipped_file():
    check_not_empty(SkipReport(read=1, images=1), Path("/d"), 1)
    with pytest.raises(DataError, match=r"^'/d': none of its 2 files could be read; first: /d/a: bad$"):
        check_not_empty(SkipReport(skipped=[("/d/a", "bad"), ("/d/b", "bad")]), Path("/d"), 2)
    with pytest.raises(DataError, match=r"^'/d': its 2 files hold no images$"):
        check_not_empty(SkipReport(read=2), Path("/d"), 2)


# --- read_dataset -----------------------------------------------------------------------
def test_read_all_units_in_order(tmp_path, npz):
    expected = npz.write(tmp_path / "ds", COUNTS)
    loader = npz.Loader()
    data, report = read_dataset(loader, tmp_path / "ds", **_quiet())
    _same(data, expected)
    assert data.images.dtype == torch.float32 and data.images.shape == (6, 1, 12, 16)
    assert (report.read, report.images, report.skipped) == (3, 6, [])
    assert loader.reads == ["u00", "u01", "u02"]


def test_limit_stops_reading_and_cuts_exactly(tmp_path, npz):
    expected = npz.write(tmp_path / "ds", COUNTS)
    loader = npz.Loader()
    data, report = read_dataset(loader, tmp_path / "ds", limit=4, **_quiet())
    _same(data, expected.subset(slice(0, 4)))
    assert loader.reads == ["u00", "u01"]  # 2 + 3 >= 4: the third file is never opened
    assert (report.read, report.images) == (2, 4)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_bad_file_raises_naming_it(tmp_path, npz, damage):
    npz.write(tmp_path / "ds", COUNTS)
    bad = tmp_path / "ds" / "u01.npz"
    bad.write_bytes(b"this is not a zip file" if damage == "garbage" else bad.read_bytes()[:300])
    with pytest.raises(DataError) as err:
        read_dataset(npz.Loader(), tmp_path / "ds", **_quiet())
    assert str(bad) in str(err.value) and "cannot read" in str(err.value)


def test_skip_bad_counts_warns_and_keeps_the_rest(tmp_path, npz):
    expected = npz.write(tmp_path / "ds", COUNTS)
    bad = tmp_path / "ds" / "u01.npz"
    bad.write_bytes(b"garbage")
    with pytest.warns(SkippedFilesWarning, match=r"^skipped 1 of 3 units \(images not read: count unknown\):\n  \S+u01\.npz: cannot read"):
        data, report = read_dataset(npz.Loader(), tmp_path / "ds", skip_bad=True, **_quiet())
    _same(data, LabelledImages(torch.cat([expected.images[:2], expected.images[5:]]), {"y": torch.cat([expected.labels["y"][:2], expected.labels["y"][5:]])}))
    assert report.read == 2 and report.images == 3
    assert [p for p, _ in report.skipped] == [str(bad)]
    assert report.summary().startswith("skipped 1 of 3 units")


def test_no_warning_when_nothing_skipped(tmp_path, npz):
    npz.write(tmp_path / "ds", COUNTS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_dataset(npz.Loader(), tmp_path / "ds", skip_bad=True, **_quiet())
    assert SkipReport().summary() is None


def test_every_file_bad_is_an_error_even_with_skip_bad(tmp_path, npz):
    npz.write(tmp_path / "ds", [1, 1])
    for p in (tmp_path / "ds").glob("*.npz"):
        p.write_bytes(b"x")
    with pytest.warns(SkippedFilesWarning), pytest.raises(DataError, match="none of its 2 files could be read"):
        read_dataset(npz.Loader(), tmp_path / "ds", skip_bad=True, **_quiet())


def test_no_files_and_no_images_are_errors(tmp_path, npz):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / npz.marker).write_text("")
    with pytest.raises(DataError, match="no files of format 'npz'"):
        read_dataset(npz.Loader(), tmp_path / "ds", **_quiet())
    npz.write(tmp_path / "ds", [0, 0])
    with pytest.raises(DataError, match="its 2 files hold no images"):
        read_dataset(npz.Loader(), tmp_path / "ds", **_quiet())


@pytest.mark.parametrize(
    ("images", "y", "message"),
    [
        (np.zeros((2, 1, 12, 15), np.uint8), None, r"images of shape \(2, 1, 12, 15\), expected \(n, 1, 12, 16\)"),
        (np.zeros((2, 12, 16), np.uint8), None, r"images of shape \(2, 12, 16\)"),
        (np.zeros((2, 1, 12, 16), np.uint8), np.zeros((2, 3), np.float32), r"label 'y' of per-image shape \(3,\), expected \(2,\)"),
        (np.full((2, 1, 12, 16), 2.0, np.float32), None, r"pixel values in \[2, 2\], expected \[-1, 1\]"),
        (np.full((2, 1, 12, 16), np.nan, np.float32), None, "non-finite"),
    ],
)
def test_unit_that_breaks_the_declared_shapes(tmp_path, npz, images, y, message):
    npz.write(tmp_path / "ds", [1])
    bad = npz.unit(tmp_path / "ds", "u01", images, y)
    with pytest.raises(DataError, match=message) as err:
        read_dataset(npz.Loader(), tmp_path / "ds", **_quiet())
    assert str(bad) in str(err.value)


def test_loader_bug_keeps_its_traceback(tmp_path, npz):
    npz.write(tmp_path / "ds", COUNTS)

    class Buggy(npz.Loader):
        def read_unit(self, unit):
            return self.no_such_attribute

    with pytest.raises(AttributeError):
        read_dataset(Buggy(), tmp_path / "ds", skip_bad=True, **_quiet())


# --- convert_dataset --------------------------------------------------------------------
def _convert(loader, root, out, **kw):
    return convert_dataset(loader, root, out, progress=False, say=lambda _: None, **kw)


def test_convert_round_trip_and_attributes(tmp_path, npz):
    expected = npz.write(tmp_path / "ds", COUNTS)
    out = tmp_path / "out" / "d.h5"
    report = _convert(npz.Loader(), tmp_path / "ds", out, attrs={"task": "gaze"}, options={"channels": 1})
    _same(read_images_h5(out), expected)
    assert (report.read, report.images, report.skipped) == (3, 6, [])
    attrs = read_attrs(out)
    assert attrs["format"] == FORMAT and attrs["kind"] == "real" and attrs["task"] == "gaze"
    assert attrs["value_range"] == [-1.0, 1.0] and attrs["count"] == 6 and attrs["skipped_files"] == 0
    assert attrs["source_format"] == "npz" and attrs["source_root"] == str(tmp_path / "ds")
    assert json.loads(attrs["source_options"]) == {"channels": 1}
    assert {"created", "toolkit_version"} <= set(attrs)
    assert sorted(p.name for p in out.parent.iterdir()) == ["d.h5"]  # no partial, no progress record
    with h5py.File(out) as f:  # the same layout H5ImageWriter writes
        assert f["images"].chunks == (256, 1, 12, 16) and f["images"].compression == "lzf"


def test_convert_skip_bad_records_the_count(tmp_path, npz):
    expected = npz.write(tmp_path / "ds", COUNTS)
    (tmp_path / "ds" / "u00.npz").write_bytes(b"garbage")
    with pytest.warns(SkippedFilesWarning, match="skipped 1 of 3 units"):
        report = _convert(npz.Loader(), tmp_path / "ds", tmp_path / "d.h5", skip_bad=True)
    _same(read_images_h5(tmp_path / "d.h5"), expected.subset(slice(2, 6)))
    assert read_attrs(tmp_path / "d.h5")["skipped_files"] == 1 and len(report.skipped) == 1


def test_convert_of_only_bad_files_leaves_nothing(tmp_path, npz):
    npz.write(tmp_path / "ds", [1])
    (tmp_path / "ds" / "u00.npz").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"none of its 1 files could be read; first: .*u00\.npz: cannot read"):
        _convert(npz.Loader(), tmp_path / "ds", tmp_path / "d.h5", skip_bad=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


SEVEN = [2, 1, 3, 2, 1, 2, 2]  # 13 images in 7 units


def _os_error_loader(npz, key: str | None = None):
    """An npz loader whose unit ``key`` fails like a bad file would (an OSError)."""

    class OSErrorAt(npz.Loader):
        def read_unit(self, unit):
            if unit.key == key:
                self.reads.append(unit.key)
                raise OSError("simulated failure")
            return super().read_unit(unit)

    return OSErrorAt()


@pytest.mark.parametrize("how", ["ctrl-c", "bad-file", "bug"])
def test_interrupted_convert_resumes_after_the_last_finished_unit(tmp_path, npz, how):
    expected = npz.write(tmp_path / "ds", SEVEN)
    out = tmp_path / "d.h5"
    first = _os_error_loader(npz, "u05" if how == "bad-file" else None)
    if how == "ctrl-c":
        first.interrupt_at = "u05"
        with pytest.raises(KeyboardInterrupt):
            _convert(first, tmp_path / "ds", out, batch_units=2)
    elif how == "bad-file":
        with pytest.raises(DataError, match=r"u05\.npz.*OSError: simulated failure.*5 of 7 files converted so far.*rerun"):
            _convert(first, tmp_path / "ds", out, batch_units=2)
    else:  # a loader bug propagates as itself (not a 'bad file'), and the progress is kept
        first.fail_at = "u05"
        with pytest.raises(RuntimeError, match="simulated failure"):
            _convert(first, tmp_path / "ds", out, batch_units=2, skip_bad=True)
    assert not out.exists()
    record = json.loads((tmp_path / "d.h5.partial.json").read_text())
    # Units u00-u03 were saved at batch ends, u04 when the error came: 2+1+3+2+1 images.
    assert (record["done"], record["count"], record["read"]) == (5, 9, 5)
    with h5py.File(tmp_path / "d.h5.partial") as f:
        assert f["images"].shape[0] == 9

    second = npz.Loader()
    notes: list[str] = []
    report = convert_dataset(second, tmp_path / "ds", out, batch_units=2, progress=False, say=notes.append)
    assert second.reads == ["u05", "u06"]  # finished units are not read again
    assert notes == [f"resuming {out}: 5 of 7 files already converted (9 images)"]
    _same(read_images_h5(out), expected)
    assert (report.read, report.images) == (7, 13)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.h5", "ds"]


def test_resume_cuts_rows_written_after_the_last_record(tmp_path, npz):
    """A crash between appending rows and saving the record leaves extra rows: they are dropped,
    even when the rest of the conversion appends nothing (here: the last file is skipped)."""
    expected = npz.write(tmp_path / "ds", SEVEN)
    loader = npz.Loader()
    loader.interrupt_at = "u06"
    with pytest.raises(KeyboardInterrupt):
        _convert(loader, tmp_path / "ds", tmp_path / "d.h5", batch_units=2)
    with h5py.File(tmp_path / "d.h5.partial", "r+") as f:  # 11 rows recorded; add 5 rows of junk
        for ds in [f["images"], f["labels"]["y"]]:
            ds.resize(16, axis=0)
            ds[11:] = 7.0
    (tmp_path / "ds" / "u06.npz").write_bytes(b"junk")
    with pytest.warns(SkippedFilesWarning, match="skipped 1 of 7 units"):
        _convert(npz.Loader(), tmp_path / "ds", tmp_path / "d.h5", batch_units=2, skip_bad=True)
    _same(read_images_h5(tmp_path / "d.h5"), expected.subset(slice(0, 11)))


def test_resume_with_other_input_refuses_unless_restarted(tmp_path, npz):
    npz.write(tmp_path / "a", SEVEN, seed=1)
    expected_b = npz.write(tmp_path / "b", SEVEN, seed=2)
    loader = npz.Loader()
    loader.interrupt_at = "u03"
    with pytest.raises(KeyboardInterrupt):
        _convert(loader, tmp_path / "a", tmp_path / "d.h5")
    with pytest.raises(DataError) as err:
        _convert(npz.Loader(), tmp_path / "b", tmp_path / "d.h5")
    assert "other input" in str(err.value) and str(tmp_path / "a") in str(err.value) and "--restart" in str(err.value)
    with pytest.raises(DataError, match="source_options"):
        _convert(npz.Loader(), tmp_path / "a", tmp_path / "d.h5", options={"channels": 1})
    _convert(npz.Loader(), tmp_path / "b", tmp_path / "d.h5", resume=False)
    _same(read_images_h5(tmp_path / "d.h5"), expected_b)


def test_resume_after_the_files_changed_refuses(tmp_path, npz):
    npz.write(tmp_path / "ds", SEVEN)
    loader = npz.Loader()
    loader.interrupt_at = "u03"
    with pytest.raises(KeyboardInterrupt):
        _convert(loader, tmp_path / "ds", tmp_path / "d.h5")
    (tmp_path / "ds" / "u01.npz").unlink()
    with pytest.raises(DataError, match=r"changed since the interrupted conversion began \(\S+u01\.npz is gone\).*--restart"):
        _convert(npz.Loader(), tmp_path / "ds", tmp_path / "d.h5")


def _interrupt_at(npz, root, key: str, out):
    """Convert ``root`` one unit per save, interrupted when unit ``key`` is read."""
    loader = npz.Loader()
    loader.interrupt_at = key
    with pytest.raises(KeyboardInterrupt):
        _convert(loader, root, out, batch_units=1)


def _rewrite(npz, root, key: str, value: int, n: int = 1):
    """Unit ``key`` rewritten with ``n`` images of ``value``; its modification time moved 2 s on,
    so the change shows on file systems with coarse timestamps too."""
    path = npz.unit(root, key, np.full((n, 1, 12, 16), value, np.uint8))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    return path


def test_resume_after_new_files_beyond_the_resume_point_refuses(tmp_path, npz):
    """Files added after the interruption would mix two unit lists in one file."""
    npz.write(tmp_path / "ds", SEVEN)
    _interrupt_at(npz, tmp_path / "ds", "u03", tmp_path / "d.h5")
    added = _rewrite(npz, tmp_path / "ds", "u09", 5)
    with pytest.raises(DataError) as err:
        _convert(npz.Loader(), tmp_path / "ds", tmp_path / "d.h5")
    assert f"({added} is new)" in str(err.value) and "--restart" in str(err.value)
    assert (tmp_path / "d.h5.partial").exists() and not (tmp_path / "d.h5").exists()


def test_resume_after_a_converted_file_changed_refuses_naming_it(tmp_path, npz):
    npz.write(tmp_path / "ds", SEVEN)
    _interrupt_at(npz, tmp_path / "ds", "u03", tmp_path / "d.h5")
    replaced = _rewrite(npz, tmp_path / "ds", "u01", 9)  # same name, same size: only the time differs
    with pytest.raises(DataError) as err:
        _convert(npz.Loader(), tmp_path / "ds", tmp_path / "d.h5")
    message = str(err.value)
    assert f"{replaced} changed (" in message and "since it was converted (3 of 7 units are done)" in message
    assert "--restart" in message
    _convert(npz.Loader(), tmp_path / "ds", tmp_path / "d.h5", resume=False)
    assert bool((read_images_h5(tmp_path / "d.h5").images[2] == 9 / 127.5 - 1).all())


def test_resume_reads_a_file_not_yet_converted_as_it_is_now(tmp_path, npz):
    """A bad file repaired after the conversion stopped on it: the rerun continues and reads it,
    and once converted it is watched like the others (a second interruption resumes too)."""
    expected = npz.write(tmp_path / "ds", SEVEN)
    bad = tmp_path / "ds" / "u03.npz"
    good = bad.read_bytes()
    bad.write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"u03\.npz"):
        _convert(npz.Loader(), tmp_path / "ds", tmp_path / "d.h5", batch_units=1)
    bad.write_bytes(good)
    _interrupt_at(npz, tmp_path / "ds", "u05", tmp_path / "d.h5")
    reader = npz.Loader()
    _convert(reader, tmp_path / "ds", tmp_path / "d.h5", batch_units=1)
    assert reader.reads == ["u05", "u06"]
    _same(read_images_h5(tmp_path / "d.h5"), expected)


def test_a_finished_conversion_of_replaced_files_is_converted_again(tmp_path, npz):
    npz.write(tmp_path / "ds", COUNTS)
    out = tmp_path / "d.h5"
    _convert(npz.Loader(), tmp_path / "ds", out)
    replaced = _rewrite(npz, tmp_path / "ds", "u01", 200, n=3)
    notes: list[str] = []
    report = convert_dataset(npz.Loader(), tmp_path / "ds", out, progress=False, say=notes.append)
    assert not report.already_converted and len(notes) == 1
    assert notes[0].startswith(f"{out} is out of date: {replaced} changed (") and "will be replaced" in notes[0]
    assert bool((read_images_h5(out).images[2:5] == 200 / 127.5 - 1).all())  # the new labels and images
    again: list[str] = []
    assert convert_dataset(npz.Loader(), tmp_path / "ds", out, progress=False, say=again.append).already_converted


def test_a_shared_file_listed_by_unit_files_is_watched_too(tmp_path, npz):
    """A loader whose every unit also reads a shared file (an index, a label file)."""
    npz.write(tmp_path / "ds", COUNTS)
    shared = tmp_path / "ds" / "labels.txt"
    shared.write_text("v1")

    class WithIndex(npz.Loader):
        def unit_files(self, unit):
            return [unit.path, unit.path.parent / "labels.txt"]

    out = tmp_path / "d.h5"
    _convert(WithIndex(), tmp_path / "ds", out)
    with h5py.File(out) as f:
        assert source_files_module.read_table(f)[str(shared)] == (2, shared.stat().st_mtime_ns)
    shared.write_text("v22")
    notes: list[str] = []
    convert_dataset(WithIndex(), tmp_path / "ds", out, progress=False, say=notes.append)
    assert f"out of date: {shared} changed (size 2 -> 3 bytes, modified " in notes[0]


def test_skipped_files_are_stored_by_name(tmp_path, npz):
    npz.write(tmp_path / "ds", COUNTS)
    for key in ("u00", "u02"):
        (tmp_path / "ds" / f"{key}.npz").write_bytes(b"garbage")
    out = tmp_path / "d.h5"
    with pytest.warns(SkippedFilesWarning):
        _convert(npz.Loader(), tmp_path / "ds", out, skip_bad=True)
    attrs = read_attrs(out)
    names = [str(tmp_path / "ds" / f"{key}.npz") for key in ("u00", "u02")]
    assert attrs["skipped_files"] == 2 and [p for p, _ in json.loads(attrs["skipped"])] == names
    report = _convert(npz.Loader(), tmp_path / "ds", out, skip_bad=True)
    assert report.already_converted and [p for p, _ in report.skipped] == names and report.read == 1


def test_stale_partial_without_record_starts_over(tmp_path, npz):
    expected = npz.write(tmp_path / "ds", COUNTS)
    (tmp_path / "d.h5.partial").write_bytes(b"left over")
    notes: list[str] = []
    convert_dataset(npz.Loader(), tmp_path / "ds", tmp_path / "d.h5", progress=False, say=notes.append)
    _same(read_images_h5(tmp_path / "d.h5"), expected)
    assert len(notes) == 1 and "removing an incomplete conversion" in notes[0]


@pytest.mark.parametrize("where", ["after-rows", "after-record"])
def test_interrupt_inside_a_save_never_writes_rows_twice(tmp_path, npz, monkeypatch, where):
    """Ctrl-C arriving inside save() (after the rows, or after the record, before the in-memory
    commit) makes the way out save again: that must not append the same rows a second time."""

    expected = npz.write(tmp_path / "ds", [2, 1, 3, 2])
    out = tmp_path / "d.h5"
    calls = {"n": 0}
    if where == "after-rows":
        original = h5py.File.flush

        def flaky(self):
            original(self)
            calls["n"] += 1
            if calls["n"] == 1:
                raise KeyboardInterrupt

        monkeypatch.setattr(h5py.File, "flush", flaky)
    else:
        original = convert_module._write_record

        def flaky(path, state):
            original(path, state)
            calls["n"] += 1
            if calls["n"] == 2:  # the first is the empty record written at the start
                raise KeyboardInterrupt

        monkeypatch.setattr(convert_module, "_write_record", flaky)
    with pytest.raises(KeyboardInterrupt):
        _convert(npz.Loader(), tmp_path / "ds", out, batch_units=2)
    monkeypatch.undo()
    record = json.loads((tmp_path / "d.h5.partial.json").read_text())
    assert (record["done"], record["count"]) == (2, 3)
    with h5py.File(tmp_path / "d.h5.partial") as f:
        assert f["images"].shape[0] == 3
    _convert(npz.Loader(), tmp_path / "ds", out, batch_units=2)
    _same(read_images_h5(out), expected)


def test_summary_names_the_first_ten_skipped_files_and_counts_the_rest():
    report = SkipReport(read=5)
    for i in range(12):
        report.add_skip(f"d/{i}.png", f"bad {i}", 1)
    lines = report.summary().splitlines()
    assert lines[0] == "skipped 12 of 17 units (12 images not read):"
    assert lines[1:11] == [f"  d/{i}.png: bad {i}" for i in range(10)] and lines[11] == "  ... and 2 more"
    assert report.summary(limit=12).splitlines()[-1] == "  d/11.png: bad 11"


def test_a_loader_error_naming_the_file_is_not_prefixed_with_it_twice(tmp_path, npz):
    npz.write(tmp_path / "ds", COUNTS)

    class Naming(npz.Loader):
        def read_unit(self, unit):
            if unit.key == "u01":
                raise DataError(f"{unit.path}: field 'x' missing")
            return super().read_unit(unit)

    with pytest.warns(SkippedFilesWarning) as caught:
        _, report = read_dataset(Naming(), tmp_path / "ds", skip_bad=True, **_quiet())
    assert report.skipped == [(str(tmp_path / "ds" / "u01.npz"), "field 'x' missing")]
    assert str(caught[0].message).count("u01.npz") == 1


def test_rerun_of_a_complete_conversion_does_nothing(tmp_path, npz):
    expected = npz.write(tmp_path / "ds", COUNTS)
    out = tmp_path / "d.h5"
    _convert(npz.Loader(), tmp_path / "ds", out)
    stamp = out.stat().st_mtime_ns
    attrs = read_attrs(out)
    assert attrs["source_units"] == 3 and len(attrs["source_fingerprint"]) == 64
    again = npz.Loader()
    notes: list[str] = []
    report = convert_dataset(again, tmp_path / "ds", out, progress=False, say=notes.append)
    assert again.reads == [] and out.stat().st_mtime_ns == stamp
    assert len(notes) == 1 and "already converted" in notes[0] and "--restart" in notes[0]
    assert report.already_converted and (report.read, report.images) == (3, 6)
    # Other attributes asked for (here: kind) are not "this very conversion".
    report = convert_dataset(npz.Loader(), tmp_path / "ds", out, progress=False, say=notes.append, attrs={"kind": "synthetic"})
    assert not report.already_converted and read_attrs(out)["kind"] == "synthetic"
    assert convert_dataset(npz.Loader(), tmp_path / "ds", out, progress=False, say=notes.append,
                           attrs={"kind": "synthetic"}).already_converted
    # Other input (here: another unit list) or --restart: converted again, the old file replaced.
    convert_dataset(npz.Loader(), tmp_path / "ds", out, progress=False, say=notes.append)
    npz.unit(tmp_path / "ds", "u03", np.zeros((1, 1, 12, 16), np.uint8))
    notes.clear()
    report = convert_dataset(npz.Loader(), tmp_path / "ds", out, progress=False, say=notes.append)
    assert not report.already_converted and report.images == 7
    assert notes == [f"{out} is out of date: {tmp_path / 'ds' / 'u03.npz'} is new since it was converted; "
                     "it will be replaced once this conversion completes"]
    _same(read_images_h5(out).subset(slice(0, 6)), expected)
    reader = npz.Loader()
    report = _convert(reader, tmp_path / "ds", out, resume=False)
    assert len(reader.reads) == 4 and report.images == 7


def _raising_at_u01(loader: type, error: BaseException) -> type:
    """A subclass of ``loader`` whose ``read_unit`` raises ``error`` for unit ``u01``."""

    class RaisingAtU01(loader):
        def read_unit(self, unit):
            if unit.key == "u01":
                raise error
            return super().read_unit(unit)

    return RaisingAtU01


@pytest.mark.parametrize("error", [TypeError("bug"), IndexError("bug"), RuntimeError("bug"), ZeroDivisionError()])
def test_loader_bugs_are_never_counted_as_bad_files(tmp_path, npz, error):
    npz.write(tmp_path / "ds", COUNTS)

    Buggy = _raising_at_u01(npz.Loader, error)
    with pytest.raises(type(error)) as err:
        read_dataset(Buggy(), tmp_path / "ds", skip_bad=True, **_quiet())
    assert any("u01" in note for note in getattr(err.value, "__notes__", ["u01"]))
    with pytest.raises(type(error)):
        _convert(Buggy(), tmp_path / "ds", tmp_path / "d.h5", skip_bad=True)


@pytest.mark.parametrize("error", [OSError("io"), KeyError("member"), EOFError(), ValueError("decode"), __import__("zlib").error("crc")])
def test_file_errors_are_bad_files(tmp_path, npz, error):
    npz.write(tmp_path / "ds", COUNTS)

    Broken = _raising_at_u01(npz.Loader, error)
    with pytest.raises(DataError, match=rf"u01\.npz: cannot read \({type(error).__name__}"):
        read_dataset(Broken(), tmp_path / "ds", **_quiet())
    with pytest.warns(SkippedFilesWarning):
        _, report = read_dataset(Broken(), tmp_path / "ds", skip_bad=True, **_quiet())
    assert len(report.skipped) == 1


def test_summary_counts_units_and_the_images_lost_when_known(tmp_path, npz):
    npz.write(tmp_path / "ds", [2, 3, 1, 4])

    class Sized(npz.Loader):
        sizes: ClassVar[dict[str, int | None]] = {"u00": 2, "u01": 3, "u02": 1, "u03": 4}

        def unit_size(self, unit):
            return self.sizes[unit.key]

    (tmp_path / "ds" / "u01.npz").write_bytes(b"junk")
    (tmp_path / "ds" / "u02.npz").write_bytes(b"junk")
    with pytest.warns(SkippedFilesWarning, match=r"^skipped 2 of 4 units \(4 images not read\):\n  \S+u01\.npz: .*\n  \S+u02\.npz: "):
        _, report = read_dataset(Sized(), tmp_path / "ds", skip_bad=True, **_quiet())
    assert (report.skipped_images, report.skipped_unsized) == (4, 0)
    Sized.sizes = {"u00": 2, "u01": 3, "u02": None, "u03": 4}
    with pytest.warns(SkippedFilesWarning, match=r"skipped 2 of 4 units \(at least 3 images not read\):"):
        report = _convert(Sized(), tmp_path / "ds", tmp_path / "d.h5", skip_bad=True, batch_units=1)
    assert (report.skipped_images, report.skipped_unsized, report.images) == (3, 1, 6)
