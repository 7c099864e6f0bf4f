"""What a conversion was made from: the units of a dataset and the size and modification time
of every file they read, so ``simgan convert`` notices changed input.

A converted (or partial) file stores the table in its ``source_files`` group
(:func:`write_table`, :func:`read_table`) and a sha256 :func:`fingerprint` of the unit keys
and the table in its attributes; :func:`describe_change` names the first file that differs.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

import h5py
import numpy as np

from simgan_toolkit.data.loader import DatasetLoader, Unit
from simgan_toolkit.data.reading import list_units

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


def unit_paths(loader: DatasetLoader, units: Iterable[Unit]) -> dict[str, None]:
    """The files the units read (:meth:`DatasetLoader.unit_files`), absolute, each once, in order."""
    return {os.path.abspath(p): None for unit in units for p in loader.unit_files(unit)}


def file_table(loader: DatasetLoader, units: list[Unit]) -> FileTable:
    """Size and modification time of every file the units read (a shared file is stat'ed once)."""
    return {path: _stat(path) for path in unit_paths(loader, units)}


def fingerprint(keys: list[str], table: FileTable) -> str:
    """sha256 of the unit keys and of the file table: equal only for the same units of the same files."""
    h = hashlib.sha256()
    for key in keys:
        h.update(key.encode("utf-8", "surrogateescape") + b"\n")
    h.update(b"\0")
    for path, (size, mtime) in table.items():
        h.update(f"{path}\t{size}\t{mtime}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def write_table(f: h5py.File, table: FileTable) -> None:
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


def read_table(f: h5py.File) -> FileTable | None:
    """The table :func:`write_table` stored, or None if ``f`` has none (or a damaged one)."""
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


def describe_change(old: FileTable, new: FileTable, among: Iterable[str] | None = None) -> str | None:
    """The first file that differs between ``old`` and ``new`` (only those ``among``, if given),
    and how many more do; None if none does."""
    paths = list(among) if among is not None else [*new, *(p for p in old if p not in new)]
    changed = [p for p in paths if old.get(p, _MISSING) != new.get(p, _MISSING)]
    if not changed:
        return None
    first = _file_change(changed[0], old.get(changed[0]), new.get(changed[0]))
    more = len(changed) - 1
    return first + (f" (and {more} more file{'s' if more > 1 else ''})" if more else "")


class SourceSnapshot:
    """What a conversion reads, as it is now.

    Attributes:
        loader, root: the format and the dataset root.
        units: ``root``'s units (:func:`~simgan_toolkit.data.reading.list_units`); ``keys`` their keys.
        table: size and modification time of every file they read (:func:`file_table`).
        keys_fingerprint: :func:`fingerprint` of the keys alone (has the unit list changed?).
        fingerprint: :func:`fingerprint` of the keys and the table (has any input changed?).
    """

    def __init__(self, loader: DatasetLoader, root: Path) -> None:
        self.loader = loader
        self.root = root
        self.units = list_units(loader, root)
        self.keys = [u.key for u in self.units]
        self.table = file_table(loader, self.units)
        self.keys_fingerprint = fingerprint(self.keys, {})
        self.fingerprint = fingerprint(self.keys, self.table)
