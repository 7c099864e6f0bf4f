"""``simgan convert``: stream a dataset's units into a toolkit HDF5 file, atomically and resumably.

The file appears under its final name only when complete; an interrupted conversion keeps
``OUT.partial`` plus a JSON progress record ``OUT.partial.json`` and a rerun continues after the
last saved unit. A rerun after a complete conversion of the same input does nothing.

"The same input" is judged by content, not only by names: both files hold the size and
modification time of every source file (:meth:`DatasetLoader.unit_files`) in their
``source_files`` group. A resume is refused when a file already converted changed, or when the
list of units changed at all; a finished file made from other versions of the files is converted
again.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from tqdm.auto import tqdm

from simgan_toolkit.data.hdf5 import WriteGuard, _attr_value, append_rows, init_layout, set_attrs
from simgan_toolkit.data.formats import is_toolkit_h5
from simgan_toolkit.data.loader import DatasetLoader, Unit
from simgan_toolkit.data.reading import (
    SkipReport,
    _listed_units,
    _reason,
    _unit_size,
    _warn_skipped,
    read_unit_checked,
)
from simgan_toolkit.errors import DataError
from simgan_toolkit.io import atomic_path, check_output_file, remove_stale_temp_files, write_error

#: A conversion saves its progress at least this often (images), whatever ``batch_units`` is,
#: so formats with thousands of images per file do not pile up in memory.
_FLUSH_IMAGES = 4096


def _partial_paths(out: Path) -> tuple[Path, Path]:
    return out.with_name(out.name + ".partial"), out.with_name(out.name + ".partial.json")


#: Group of a converted (or partial) file that lists its source files: ``path`` (the paths,
#: UTF-8, NUL-separated), ``size`` and ``mtime_ns`` (int64; -1 for a file that was missing).
SOURCE_FILES = "source_files"
#: Stats of a file that does not exist.
_MISSING = (-1, -1)

#: Source file path -> (size in bytes, modification time in ns), in the order the units use them.
FileTable = dict[str, tuple[int, int]]


def _stat(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError:  # missing (or unreachable): a unit that reads it fails, and that is its error
        return _MISSING
    return st.st_size, st.st_mtime_ns


def _unit_paths(loader: DatasetLoader, units: Iterable[Unit]) -> dict[str, None]:
    """The files the units read (:meth:`DatasetLoader.unit_files`), absolute, each once, in order."""
    return {os.path.abspath(p): None for unit in units for p in loader.unit_files(unit)}


def _file_table(loader: DatasetLoader, units: list[Unit]) -> FileTable:
    """Size and modification time of every file the units read (a shared file is stat'ed once)."""
    return {path: _stat(path) for path in _unit_paths(loader, units)}


def _fingerprint(keys: list[str], table: FileTable) -> str:
    """sha256 of the unit keys and of the file table: equal only for the same units of the same files."""
    h = hashlib.sha256()
    for key in keys:
        h.update(key.encode("utf-8", "surrogateescape") + b"\n")
    h.update(b"\0")
    for path, (size, mtime) in table.items():
        h.update(f"{path}\t{size}\t{mtime}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def _write_table(f: h5py.File, table: FileTable) -> None:
    """Store ``table`` in ``f`` (replacing a previous one), gzip-compressed: a dataset of a million
    files would be a very large attribute."""
    if SOURCE_FILES in f:
        del f[SOURCE_FILES]
    group = f.create_group(SOURCE_FILES)
    names = "\0".join(table).encode("utf-8", "surrogateescape")
    stats = np.asarray(list(table.values()), dtype=np.int64).reshape(-1, 2)
    arrays = {"path": np.frombuffer(names, dtype=np.uint8), "size": stats[:, 0], "mtime_ns": stats[:, 1]}
    for name, values in arrays.items():
        group.create_dataset(name, data=values, **({"compression": "gzip"} if len(values) else {}))


def _read_table(f: h5py.File) -> FileTable | None:
    """The table :func:`_write_table` stored, or None if ``f`` has none (or a damaged one)."""
    group = f.get(SOURCE_FILES)
    try:
        raw = bytes(group["path"][()]) if group is not None else None
        sizes, mtimes = group["size"][()], group["mtime_ns"][()]  # type: ignore[index]
    except (KeyError, OSError, TypeError, ValueError):
        return None
    paths = raw.decode("utf-8", "surrogateescape").split("\0") if raw else []
    if not (len(paths) == len(sizes) == len(mtimes)):
        return None
    return {p: (int(s), int(m)) for p, s, m in zip(paths, sizes, mtimes)}


def _when(mtime_ns: int, timespec: str) -> str:
    return _dt.datetime.fromtimestamp(mtime_ns / 1e9).isoformat(sep=" ", timespec=timespec)


def _file_change(path: str, old: tuple[int, int] | None, new: tuple[int, int] | None) -> str:
    """One difference, e.g. ``/d/3.json changed (size 1200 -> 1187 bytes, modified ... -> ...)``."""
    if old is None or old == _MISSING:
        return f"{path} is new"
    if new is None or new == _MISSING:
        return f"{path} is gone"
    parts = []
    if old[0] != new[0]:
        parts.append(f"size {old[0]} -> {new[0]} bytes")
    if old[1] != new[1]:
        before, after = _when(old[1], "seconds"), _when(new[1], "seconds")
        if before == after:  # rewritten within the same second: show the fraction
            before, after = _when(old[1], "microseconds"), _when(new[1], "microseconds")
        parts.append(f"modified {before} -> {after}")
    return f"{path} changed ({', '.join(parts)})"


def _describe_change(old: FileTable, new: FileTable, among: Iterable[str] | None = None) -> str | None:
    """The first file that differs between ``old`` and ``new`` (only those ``among``, if given),
    and how many more do; None if none does."""
    paths = list(among) if among is not None else [*new, *(p for p in old if p not in new)]
    changed = [p for p in paths if old.get(p, _MISSING) != new.get(p, _MISSING)]
    if not changed:
        return None
    first = _file_change(changed[0], old.get(changed[0]), new.get(changed[0]))
    more = len(changed) - 1
    return first + (f" (and {more} more file{'s' if more > 1 else ''})" if more else "")


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


class _Source:
    """What a conversion reads: the units, their keys, and the size and time of their files now."""

    def __init__(self, loader: DatasetLoader, root: Path) -> None:
        self.loader = loader
        self.units = _listed_units(loader, root)
        self.keys = [u.key for u in self.units]
        self.table = _file_table(loader, self.units)
        self.keys_fingerprint = _fingerprint(self.keys, {})
        self.fingerprint = _fingerprint(self.keys, self.table)


def _resume_state(
    partial: Path, record: Path, identity: dict[str, Any], source: _Source, say: Callable[[str], None]
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
            table = _read_table(f)
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


def _check_unchanged(partial: Path, root: str, source: _Source, table: FileTable, listed: str, done: int) -> None:
    """Refuse to resume when the unit list changed, or a file of the ``done`` units changed.

    Files of units not converted yet may change (e.g. a bad file repaired after the conversion
    stopped on it): they are read now.
    """
    hint = "start over with --restart (resume=False)"
    if listed != source.keys_fingerprint:
        change = _describe_change(table, source.table) or "the same files, listed as other units"
        raise DataError(f"{partial}: the files under {root!r} changed since the interrupted conversion began "
                        f"({change}); {hint}")
    converted = _unit_paths(source.loader, source.units[:done])
    change = _describe_change(table, source.table, among=converted)
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
    out: Path, identity: dict[str, Any], source: _Source, extra: dict[str, Any]
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
            table = _read_table(f)
    except (OSError, KeyError):
        return None
    if any(attrs.get(k) != _plain(_attr_value(v)) for k, v in extra.items()):
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
        return _describe_change(table, source.table) if same_source else None
    return SkipReport(skipped=_skipped_list(attrs), read=len(source.units) - skipped, images=count, already_converted=True)


def _check_output(out: Path, identity: dict[str, Any], source: _Source, extra: dict[str, Any],
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

    def refused(error: OSError) -> DataError:
        """A write to the partial file failed: HDF5 may have left it inconsistent, so it goes."""
        _remove(partial, record)
        return DataError(f"{write_error(out, error)} (the incomplete conversion is removed; free some space "
                         "and run the same command again)")

    source = _Source(loader, root)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Progress-record writes killed before their rename (SIGKILL, power loss).
    remove_stale_temp_files(record.parent, target_name=record.name, recursive=False)
    units = source.units
    # As the JSON record will hold them (tuples become lists), so a rerun compares equal.
    options = json.loads(json.dumps(options or {}, default=str))
    identity = {
        "source_format": loader.name,
        "source_root": str(root),
        "source_options": options,
        "image_shape": list(loader.image_shape),
        "label_shapes": {k: list(v) for k, v in loader.label_shapes.items()},
    }
    if out.exists() and resume and not partial.exists() and not record.exists():
        done_report = _check_output(out, identity, source, {"kind": "real", **(attrs or {})}, say)
        if done_report is not None:
            return done_report
    elif out.exists():
        say(f"{out} exists and will be replaced once this conversion completes")
    state = _resume_state(partial, record, identity, source, say) if resume else None
    if not resume:
        _remove(partial, record)
    if state is None:
        with _guarded_h5(partial, "w", refused) as (f, _):
            init_layout(f, tuple(loader.image_shape), dict(loader.label_shapes), {"kind": "real", "value_range": [-1.0, 1.0]})
        state = {**identity, "done": 0, "count": 0, "read": 0, "skipped": [], "skipped_images": 0,
                 "skipped_unsized": 0, "keys_fingerprint": source.keys_fingerprint}
        _write_record(record, state)
    else:
        say(f"resuming {out}: {state['done']} of {len(units)} files already converted ({state['count']} images)")

    # Units read since the last save: one (part or None, skip or None) entry per unit, appended
    # in one step, so an interrupt never leaves a unit half-counted. ``base`` is state["done"]
    # when the batch began: a batch is committed at most once.
    batch: dict[str, Any] = {"base": state["done"], "units": [], "images": 0}

    with _guarded_h5(partial, "r+", refused) as (f, guard):
        # Rows past the record (written just before a crash, never recorded) are cut off.
        for ds in [f["images"], *f["labels"].values()]:
            ds.resize(state["count"], axis=0)
        # The files as they are now: those of the units converted are unchanged (checked on
        # resume), those of the units still to read may have changed (e.g. a repaired bad file).
        _write_table(f, source.table)

        def save() -> None:
            """Commit the batch: rows written at the recorded count, then the record, then the
            in-memory state. Redoing an interrupted save rewrites the same rows in the same place."""
            nonlocal batch
            if batch["base"] != state["done"]:  # committed by a save interrupted just afterwards
                batch = {"base": state["done"], "units": [], "images": 0}
                return
            entries = list(batch["units"])
            if not entries:
                return
            parts = [part for part, _ in entries if part is not None]
            skips = [skip for _, skip in entries if skip is not None]
            count = state["count"]
            if parts:
                images = torch.cat([p.images for p in parts])
                labels = {k: torch.cat([p.labels[k] for p in parts]) for k in parts[0].labels}
                count = append_rows(f, state["count"], images, labels, partial)  # resizes to exactly count + n
                f.flush()
            if guard.error is not None:  # the rows may not be on disk: never record them
                raise write_error(out, guard.error)
            done = state["done"] + len(entries)
            new = {
                **state, "done": done, "count": count, "read": state["read"] + len(parts),
                "skipped": state["skipped"] + [[path, reason] for path, reason, _ in skips],
                "skipped_images": state["skipped_images"] + sum(size for *_, size in skips if size is not None),
                "skipped_unsized": state["skipped_unsized"] + sum(size is None for *_, size in skips),
            }
            _write_record(record, new)
            state.update(new)  # one C call: the commit point
            batch = {"base": done, "units": [], "images": 0}

        bar = tqdm(total=len(units), initial=state["done"], desc=f"converting {loader.name}", unit="file", disable=not progress)
        try:
            for unit in units[state["done"]:]:
                try:
                    part = read_unit_checked(loader, unit)
                except DataError as exc:
                    if not skip_bad:
                        raise
                    batch["units"].append((None, (str(unit.path), _reason(exc), _unit_size(loader, unit))))
                else:
                    batch["units"].append((part, None))
                    batch["images"] += len(part)
                bar.update()
                if len(batch["units"]) >= batch_units or batch["images"] >= _FLUSH_IMAGES:
                    save()
            save()
        except BaseException as exc:
            # Keep the units finished before the failure (also on Ctrl-C): a rerun starts after them.
            try:
                save()
            except Exception:  # the original error matters more than a failed save
                pass
            if isinstance(exc, DataError) and guard.error is None:
                skip = ", e.g. with --skip-bad" if hasattr(exc, "reason") else ""  # a unit's bad file
                raise DataError(
                    f"{exc} ({state['done']} of {len(units)} files converted so far are kept in {partial}; "
                    f"rerun the same command to continue{skip})"
                ) from None
            raise
        finally:
            bar.close()
        report = SkipReport(
            skipped=[(p, r) for p, r in state["skipped"]], read=state["read"], images=state["count"],
            skipped_images=state["skipped_images"], skipped_unsized=state["skipped_unsized"],
        )
        if state["count"]:
            for ds in [f["images"], *f["labels"].values()]:
                ds.resize(state["count"], axis=0)
            set_attrs(f, {
                "kind": "real", "value_range": [-1.0, 1.0], **(attrs or {}),
                "count": state["count"], **_provenance(identity, source.fingerprint, len(units)),
                "skipped_files": len(report.skipped), "skipped": json.dumps(state["skipped"]),
            })
    if state["count"] == 0:
        _remove(partial, record)
        what = f"none of its {len(units)} files could be read" if report.read == 0 else f"its {report.read} files hold no images"
        first = f"; first: {report.skipped[0][0]}: {report.skipped[0][1]}" if report.skipped else ""
        raise DataError(f"{str(root)!r}: {what}{first}")
    _fsync(partial)
    os.replace(partial, out)
    _fsync(out.parent)
    _remove(record)
    _warn_skipped(report)
    return report
