"""``simgan convert``: stream a dataset's units into a toolkit HDF5 file, atomically and resumably.

The file appears under its final name only when complete; an interrupted conversion keeps
``OUT.partial`` plus a JSON progress record ``OUT.partial.json`` and a rerun continues after the
last saved unit. A rerun after a complete conversion of the same input does nothing.

"The same input" is judged by content, not only by names: both files hold the size and
modification time of every source file (:meth:`DatasetLoader.unit_files`) in their
``source_files`` group (:mod:`simgan_toolkit.data.source_files`). A resume is refused when a file
already converted changed, or when the list of units changed at all; a finished file made from
other versions of the files is converted again.

Units are read through :func:`~simgan_toolkit.data.reading.iter_units`, the read-or-skip path
``read_dataset`` and ``sample_dataset`` use too; :func:`convert_dataset` runs the steps
``_plan`` (already converted, resume or start), ``_write_units`` (the batched write loop) and
``_finish`` (move into place).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import torch
from tqdm.auto import tqdm

from simgan_toolkit.data.hdf5 import WriteGuard, append_rows, attr_value, init_layout, set_attrs
from simgan_toolkit.data.formats import is_toolkit_h5
from simgan_toolkit.data.loader import DatasetLoader
from simgan_toolkit.data.reading import SkipReport, UnitRead, check_not_empty, iter_units, warn_skipped
from simgan_toolkit.data.source_files import (
    FileTable,
    SourceSnapshot,
    describe_change,
    read_table,
    unit_paths,
    write_table,
)
from simgan_toolkit.errors import DataError
from simgan_toolkit.io import atomic_path, check_output_file, remove_stale_temp_files, write_error

#: A conversion saves its progress at least this often (images), whatever ``batch_units`` is,
#: so formats with thousands of images per file do not pile up in memory.
_FLUSH_IMAGES = 4096


def _partial_paths(out: Path) -> tuple[Path, Path]:
    return out.with_name(out.name + ".partial"), out.with_name(out.name + ".partial.json")


def _fsync(path: Path) -> None:
    """Flush ``path`` (a file, or a folder's entries) to disk; a no-op where not supported."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. a folder on Windows
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_record(path: Path, state: dict[str, Any]) -> None:
    """Write the progress record atomically and durably (fsync before the rename)."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps(state, indent=2, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _remove(*paths: Path) -> None:
    for p in paths:
        p.unlink(missing_ok=True)


def check_output_path(out: Path, source: Path) -> None:
    """Refuse, before anything is read, an output that could not be written or would destroy a
    file that is not a conversion: a folder, a path under a file or in a folder that cannot be
    written, the source itself, or an existing file that is not a toolkit HDF5 file (a user's own
    file). An existing conversion may be replaced (see :func:`convert_dataset`).

    Raises:
        DataError: naming the output and what is wrong with it.
    """
    check_output_file(out, overwrite=True, inputs={"source": source})
    if out.exists() and not is_toolkit_h5(out):
        raise DataError(f"output {str(out)!r} exists and is not a toolkit HDF5 file; not replacing it "
                        "(remove it or choose another name)")


@contextmanager
def _guarded_h5(path: Path, mode: str, refused: Callable[[OSError], DataError]) -> Iterator[tuple[h5py.File, WriteGuard]]:
    """``path`` opened by h5py (``"w"``: created) through a :class:`WriteGuard`.

    HDF5 crashes the process when it closes a file after a write the filesystem refused (a full
    disk); through the guard it never sees the failure. The block checks ``guard.error`` before
    it commits anything; whatever the block raised, a refused write ends as ``refused(error)``.
    """
    try:
        if mode == "w":
            path.write_bytes(b"")
        guard = WriteGuard(path)
    except OSError as exc:  # no room even for an empty file, or no right to create one
        raise refused(exc) from None
    try:
        with h5py.File(guard, mode) as f:
            yield f, guard
    except BaseException:
        if guard.error is None:
            raise
    finally:
        guard.close()
    if guard.error is not None:
        raise refused(guard.error) from None


def _resume_state(
    partial: Path, record: Path, identity: dict[str, Any], source: SourceSnapshot, say: Callable[[str], None]
) -> dict[str, Any] | None:
    """The saved progress of an interrupted conversion of this very input, or None (start over).

    Raises:
        DataError: there is one, but from another source, format or options, with another unit
            list, or a file it already converted changed since (its size or modification time).
    """
    if not record.exists() or not partial.exists():
        if record.exists() or partial.exists():
            say(f"removing an incomplete conversion without its progress record: {partial}")
        _remove(partial, record)
        return None
    try:
        state = json.loads(record.read_text(encoding="utf-8"))
        done, count, listed = int(state["done"]), int(state["count"]), str(state["keys_fingerprint"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        say(f"starting over: the progress record {record} is unreadable or from an older version ({exc!r})")
        _remove(partial, record)
        return None
    differs = [k for k in identity if state.get(k) != identity[k]]
    if differs:
        was = "; ".join(f"{k} was {state.get(k)!r}, now {identity[k]!r}" for k in differs)
        raise DataError(
            f"{partial} is an interrupted conversion of other input ({was}); rerun with the same "
            "arguments to continue it, or start over with --restart (resume=False)"
        )
    try:
        with h5py.File(partial, "r") as f:
            rows = int(f["images"].shape[0])
            table = read_table(f)
    except (OSError, KeyError) as exc:
        say(f"starting over: {partial} is damaged ({exc})")
        _remove(partial, record)
        return None
    if table is None:
        say(f"starting over: {partial} does not list its source files")
        _remove(partial, record)
        return None
    _check_unchanged(partial, identity["source_root"], source, table, listed, done)
    if rows < count:  # the record claims rows the file does not have: not our write order
        say(f"starting over: {partial} holds {rows} images, its record says {count}")
        _remove(partial, record)
        return None
    state.setdefault("skipped_images", 0)
    state.setdefault("skipped_unsized", 0)
    return state


def _check_unchanged(partial: Path, root: str, source: SourceSnapshot, table: FileTable, listed: str, done: int) -> None:
    """Refuse to resume when the unit list changed, or a file of the ``done`` units changed.

    Files of units not converted yet may change (e.g. a bad file repaired after the conversion
    stopped on it): they are read now.
    """
    hint = "start over with --restart (resume=False)"
    if listed != source.keys_fingerprint:
        change = describe_change(table, source.table) or "the same files, listed as other units"
        raise DataError(f"{partial}: the files under {root!r} changed since the interrupted conversion began "
                        f"({change}); {hint}")
    converted = unit_paths(source.loader, source.units[:done])
    change = describe_change(table, source.table, among=converted)
    if change:
        raise DataError(f"{partial}: {change} since it was converted ({done} of {len(source.units)} units are "
                        f"done); {hint}")


def _provenance(identity: dict[str, Any], fingerprint: str, units: int) -> dict[str, Any]:
    """The attributes that tell which input a finished conversion was made from."""
    return {
        "source_format": identity["source_format"], "source_root": identity["source_root"],
        "source_options": identity["source_options"], "source_units": units, "source_fingerprint": fingerprint,
    }


def _plain(value: Any) -> Any:
    """An HDF5 attribute value (numpy arrays and scalars) as plain Python, for comparing."""
    value = value.tolist() if hasattr(value, "tolist") else value
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _skipped_list(attrs: dict[str, Any]) -> list[tuple[str, str]]:
    """The ``skipped`` attribute ([file, reason] pairs, JSON) as a list; empty if absent or malformed."""
    try:
        return [(str(path), str(reason)) for path, reason in json.loads(attrs.get("skipped", "[]"))]
    except (TypeError, ValueError):
        return []


def _previous_output(
    out: Path, identity: dict[str, Any], source: SourceSnapshot, extra: dict[str, Any]
) -> SkipReport | str | None:
    """What ``out`` is: its report if it is a complete conversion of exactly this input (and holds
    the ``extra`` attributes asked for, e.g. ``kind``); the first file added, removed or changed
    since, if it is a conversion of this source with these options; else None."""
    if not is_toolkit_h5(out):
        return None
    try:
        with h5py.File(out, "r") as f:
            attrs = {k: _plain(v) for k, v in f.attrs.items()}
            count = int(f["images"].shape[0])
            table = read_table(f)
    except (OSError, KeyError):
        return None
    if any(attrs.get(k) != _plain(attr_value(v)) for k, v in extra.items()):
        return None
    want = _provenance(identity, source.fingerprint, len(source.units))
    got = {k: attrs.get(k) for k in want}
    try:
        got["source_options"] = json.loads(got["source_options"]) if isinstance(got["source_options"], str) else None
        got["source_units"] = int(got["source_units"])  # type: ignore[arg-type]
        skipped = int(attrs.get("skipped_files", 0))
    except (TypeError, ValueError):
        return None
    if int(attrs.get("count", -1)) != count or table is None:
        return None
    if got != want:
        same_source = all(got[k] == want[k] for k in ("source_format", "source_root", "source_options"))
        return describe_change(table, source.table) if same_source else None
    return SkipReport(skipped=_skipped_list(attrs), read=len(source.units) - skipped, images=count, already_converted=True)


def _check_output(out: Path, identity: dict[str, Any], source: SourceSnapshot, extra: dict[str, Any],
                  say: Callable[[str], None]) -> SkipReport | None:
    """The report of ``out`` if it already is this conversion (said so), else None (said what
    will happen to it)."""
    found = _previous_output(out, identity, source, extra)
    if isinstance(found, SkipReport):
        say(f"{out} is already converted from this input ({found.images} images); nothing to do "
            "(--restart converts it again)")
        return found
    if found:
        say(f"{out} is out of date: {found} since it was converted; it will be replaced once this conversion completes")
    else:
        say(f"{out} exists and will be replaced once this conversion completes")
    return None


@dataclass
class _Target:
    """Where one conversion writes and what it records: the output, its partial file and progress
    record beside it, the input's identity (compared on resume) and the final attributes."""

    source: SourceSnapshot
    out: Path
    partial: Path
    record: Path
    identity: dict[str, Any]
    #: The caller's ``attrs`` (over the defaults ``kind = "real"`` and ``value_range``).
    attrs: dict[str, Any]

    def refused(self, error: OSError) -> DataError:
        """A write to the partial file failed: HDF5 may have left it inconsistent, so it goes."""
        _remove(self.partial, self.record)
        return DataError(f"{write_error(self.out, error)} (the incomplete conversion is removed; free some space "
                         "and run the same command again)")


def _identity(loader: DatasetLoader, root: Path, options: dict[str, Any] | None) -> dict[str, Any]:
    """The input as the progress record holds it: format, root, options and shapes."""
    # As the JSON record will hold them (tuples become lists), so a rerun compares equal.
    options = json.loads(json.dumps(options or {}, default=str))
    return {
        "source_format": loader.name,
        "source_root": str(root),
        "source_options": options,
        "image_shape": list(loader.image_shape),
        "label_shapes": {k: list(v) for k, v in loader.label_shapes.items()},
    }


def _plan(target: _Target, resume: bool, say: Callable[[str], None]) -> SkipReport | dict[str, Any]:
    """Decide what to do: the report of an output that already is this conversion (nothing to
    do), else the progress to convert from: an interrupted conversion's (resumed) or a new,
    empty partial file's.

    Raises:
        DataError: as :func:`_resume_state`, or the new partial file cannot be written.
    """
    out, partial, record, source = target.out, target.partial, target.record, target.source
    if out.exists() and resume and not partial.exists() and not record.exists():
        done_report = _check_output(out, target.identity, source, {"kind": "real", **target.attrs}, say)
        if done_report is not None:
            return done_report
    elif out.exists():
        say(f"{out} exists and will be replaced once this conversion completes")
    state = _resume_state(partial, record, target.identity, source, say) if resume else None
    if not resume:
        _remove(partial, record)
    if state is not None:
        say(f"resuming {out}: {state['done']} of {len(source.units)} files already converted ({state['count']} images)")
        return state
    loader = source.loader
    with _guarded_h5(partial, "w", target.refused) as (f, _):
        init_layout(f, tuple(loader.image_shape), dict(loader.label_shapes), {"kind": "real", "value_range": [-1.0, 1.0]})
    state = {**target.identity, "done": 0, "count": 0, "read": 0, "skipped": [], "skipped_images": 0,
             "skipped_unsized": 0, "keys_fingerprint": source.keys_fingerprint}
    _write_record(record, state)
    return state


@dataclass
class _Batch:
    """Units read since the last save (one :class:`UnitRead` each, appended in one step, so an
    interrupt never leaves a unit half-counted). ``base`` is the saved ``done`` when the batch
    began: a batch is committed at most once."""

    base: int
    units: list[UnitRead] = field(default_factory=list)
    images: int = 0


class _BatchWriter:
    """Commits batches of units to the partial file and the progress record, transactionally.

    A save writes the rows at the recorded row count, then the record, and only then moves the
    in-memory ``state`` on (one ``dict.update``: the commit point), so a save interrupted at any
    point and redone on the way out never writes a row twice.
    """

    def __init__(self, f: h5py.File, guard: WriteGuard, target: _Target, state: dict[str, Any]) -> None:
        self.f, self.guard, self.target, self.state = f, guard, target, state
        self.batch = _Batch(state["done"])

    def add(self, outcome: UnitRead) -> None:
        batch = self.batch
        batch.units.append(outcome)
        if outcome.data is not None:
            batch.images += len(outcome.data)

    def full(self, batch_units: int) -> bool:
        return len(self.batch.units) >= batch_units or self.batch.images >= _FLUSH_IMAGES

    def save(self) -> None:
        """Commit the batch. Redoing an interrupted save rewrites the same rows in the same place."""
        state = self.state
        if self.batch.base != state["done"]:  # committed by a save interrupted just afterwards
            self.batch = _Batch(state["done"])
            return
        entries = list(self.batch.units)
        if not entries:
            return
        parts = [o.data for o in entries if o.data is not None]
        tally = SkipReport()
        for outcome in entries:
            tally.count(outcome)
        count = state["count"]
        if parts:
            images = torch.cat([p.images for p in parts])
            labels = {k: torch.cat([p.labels[k] for p in parts]) for k in parts[0].labels}
            count = append_rows(self.f, state["count"], images, labels, self.target.partial)  # resizes to exactly count + n
            self.f.flush()
        if self.guard.error is not None:  # the rows may not be on disk: never record them
            raise write_error(self.target.out, self.guard.error)
        done = state["done"] + len(entries)
        new = {
            **state, "done": done, "count": count, "read": state["read"] + tally.read,
            "skipped": state["skipped"] + [[path, reason] for path, reason in tally.skipped],
            "skipped_images": state["skipped_images"] + tally.skipped_images,
            "skipped_unsized": state["skipped_unsized"] + tally.skipped_unsized,
        }
        _write_record(self.target.record, new)
        state.update(new)  # one C call: the commit point
        self.batch = _Batch(done)


def _cut_rows(f: h5py.File, count: int) -> None:
    """Resize ``/images`` and every ``/labels/<name>`` of ``f`` to exactly ``count`` rows."""
    for ds in [f["images"], *f["labels"].values()]:
        ds.resize(count, axis=0)


def _write_units(
    target: _Target, state: dict[str, Any], *, skip_bad: bool, batch_units: int, progress: bool
) -> SkipReport:
    """Convert the units not done yet into the partial file, saving every ``batch_units`` units
    (and before any error propagates, Ctrl-C included); then the final attributes. ``state`` is
    updated as batches are saved.

    Returns:
        The skip report of the whole conversion (across resumed runs).
    """
    loader, units = target.source.loader, target.source.units
    with _guarded_h5(target.partial, "r+", target.refused) as (f, guard):
        _cut_rows(f, state["count"])  # rows past the record: written just before a crash, never recorded
        # The files as they are now: those of the units converted are unchanged (checked on
        # resume), those of the units still to read may have changed (e.g. a repaired bad file).
        write_table(f, target.source.table)
        writer = _BatchWriter(f, guard, target, state)
        bar = tqdm(total=len(units), initial=state["done"], desc=f"converting {loader.name}", unit="file", disable=not progress)
        try:
            for outcome in iter_units(loader, units[state["done"]:], skip_bad=skip_bad):
                writer.add(outcome)
                bar.update()
                if writer.full(batch_units):
                    writer.save()
            writer.save()
        except BaseException as exc:
            # Keep the units finished before the failure (also on Ctrl-C): a rerun starts after them.
            try:
                writer.save()
            except Exception:  # the original error matters more than a failed save
                pass
            if isinstance(exc, DataError) and guard.error is None:
                skip = ", e.g. with --skip-bad" if hasattr(exc, "reason") else ""  # a unit's bad file
                raise DataError(
                    f"{exc} ({state['done']} of {len(units)} files converted so far are kept in {target.partial}; "
                    f"rerun the same command to continue{skip})"
                ) from None
            raise
        finally:
            bar.close()
        if state["count"]:
            _write_final_attrs(f, target, state)
    return _saved_report(state)


def _saved_report(state: dict[str, Any]) -> SkipReport:
    """The skip report the progress ``state`` holds (of every run of this conversion)."""
    return SkipReport(
        skipped=[(p, r) for p, r in state["skipped"]], read=state["read"], images=state["count"],
        skipped_images=state["skipped_images"], skipped_unsized=state["skipped_unsized"],
    )


def _write_final_attrs(f: h5py.File, target: _Target, state: dict[str, Any]) -> None:
    """Cut ``f`` to the saved rows and give it the attributes of a finished conversion."""
    _cut_rows(f, state["count"])
    set_attrs(f, {
        "kind": "real", "value_range": [-1.0, 1.0], **target.attrs, "count": state["count"],
        **_provenance(target.identity, target.source.fingerprint, len(target.source.units)),
        "skipped_files": len(state["skipped"]), "skipped": json.dumps(state["skipped"]),
    })


def _finish(target: _Target, report: SkipReport) -> None:
    """Move the complete partial file into place durably (fsync, rename, fsync the folder) and
    drop the progress record; a conversion that gave no image is removed and an error."""
    if report.images == 0:
        _remove(target.partial, target.record)
        check_not_empty(report, target.source.root, len(target.source.units))
    _fsync(target.partial)
    os.replace(target.partial, target.out)
    _fsync(target.out.parent)
    _remove(target.record)


def convert_dataset(
    loader: DatasetLoader,
    root: str | Path,
    out_path: str | Path,
    *,
    skip_bad: bool = False,
    progress: bool = True,
    batch_units: int = 64,
    resume: bool = True,
    attrs: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    say: Callable[[str], None] = print,
) -> SkipReport:
    """Convert a dataset into a toolkit HDF5 file (the layout of :class:`H5ImageWriter`).

    Writes ``/images`` (N, C, H, W) float32 and ``/labels/<name>`` (N, ...), with attributes
    ``format``, ``kind`` (default ``"real"``), ``value_range`` [-1, 1], ``created``,
    ``toolkit_version``, ``count`` and provenance: ``source_format``, ``source_root``,
    ``source_options``, ``source_units`` (units listed), ``source_fingerprint`` (of their keys
    and of the size and modification time of their files), ``skipped_files`` (how many units
    were skipped) and ``skipped`` (JSON list of their [file, reason]); ``attrs`` adds or
    overrides (e.g. ``task``, ``kind``). The group ``source_files`` lists the files read with
    their size and modification time (:data:`SOURCE_FILES`).

    ``out_path`` appears only once complete (fsynced, then renamed into place). Until then the
    images live in ``OUT.partial`` and the progress (units done, images written, skipped files)
    in ``OUT.partial.json``, saved every ``batch_units`` units, before any error propagates,
    and on Ctrl-C. A save is transactional: the rows are written at the recorded row count,
    then the record, and only then the in-memory progress moves on, so a save interrupted at any
    point (and redone on the way out) never writes a row twice. A rerun with the same loader,
    root, options and unit list continues after the last saved unit, unless a file of a unit
    already converted changed (refused); with ``resume=False`` it starts over.

    An existing ``out_path`` with no partial conversion beside it: if its provenance is this
    very input (format, root, options, unit list, and the size and time of every file; and the
    ``attrs`` asked for) and ``resume`` is set, nothing is done ("already converted",
    ``report.already_converted``); otherwise it is replaced when the new conversion completes
    (it stays untouched until then; the note names a changed file).

    The steps: check the output path, list the units (:func:`~simgan_toolkit.data.reading.list_units`),
    decide (:func:`_plan`: already converted, resume or start), read and write the remaining
    units (:func:`_write_units`, through :func:`~simgan_toolkit.data.reading.iter_units`, the
    read-or-skip path :func:`~simgan_toolkit.data.reading.read_dataset` uses), move the file into
    place (:func:`_finish`).

    Args:
        options: the loader's options, recorded as provenance and compared on resume.
        say: receives one-line notes (resuming, starting over, already converted, replacing).

    Returns:
        The skip report of the whole conversion (across resumed runs).

    Raises:
        DataError: the output cannot be written or is not a conversion (:func:`check_output_path`),
            a unit failed (without ``skip_bad``), no images at all, an interrupted conversion
            of other input or of since changed files is in the way (with ``resume``), or the
            filesystem refused a write (a full disk: the incomplete conversion is removed).
    """
    root = Path(root).absolute()
    out = Path(out_path)
    check_output_path(out, root)
    partial, record = _partial_paths(out)
    source = SourceSnapshot(loader, root)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Progress-record writes killed before their rename (SIGKILL, power loss).
    remove_stale_temp_files(record.parent, target_name=record.name, recursive=False)
    target = _Target(source, out, partial, record, _identity(loader, root, options), dict(attrs or {}))
    plan = _plan(target, resume, say)
    if isinstance(plan, SkipReport):
        return plan
    report = _write_units(target, plan, skip_bad=skip_bad, batch_units=batch_units, progress=progress)
    _finish(target, report)
    warn_skipped(report)
    return report
