"""``simgan convert``: stream a dataset's units into a toolkit HDF5 file, atomically and resumably.

The file appears under its final name only when complete; an interrupted conversion keeps
``OUT.partial`` plus a JSON progress record ``OUT.partial.json`` and a rerun continues after the
last saved unit. A rerun after a complete conversion of the same input does nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import torch
from tqdm.auto import tqdm

from simgan_toolkit.data.hdf5 import _attr_value, append_rows, init_layout, set_attrs
from simgan_toolkit.data.formats import is_toolkit_h5
from simgan_toolkit.data.loader import DatasetLoader
from simgan_toolkit.data.reading import (
    SkipReport,
    _listed_units,
    _reason,
    _unit_size,
    _warn_skipped,
    read_unit_checked,
)
from simgan_toolkit.errors import DataError
from simgan_toolkit.io import atomic_path

#: A conversion saves its progress at least this often (images), whatever ``batch_units`` is,
#: so formats with thousands of images per file do not pile up in memory.
_FLUSH_IMAGES = 4096


def _partial_paths(out: Path) -> tuple[Path, Path]:
    return out.with_name(out.name + ".partial"), out.with_name(out.name + ".partial.json")


class _KeyHasher:
    """The fingerprint of a conversion's unit list: sha256 of ``keys[:n]``, one key per line.

    The one definition of it (:func:`_fingerprint` is the whole-list case), computed
    incrementally: a conversion asks for growing prefixes, so each key is hashed once. A
    KeyboardInterrupt inside :meth:`upto` leaves the hasher as it was.
    """

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys
        self._state = (hashlib.sha256(), 0)  # (hash of keys[:n], n), replaced in one assignment

    def upto(self, n: int) -> str:
        """The fingerprint of ``keys[:n]``."""
        h, done = self._state
        if n < done:
            h, done = hashlib.sha256(), 0
        h = h.copy()
        for key in self.keys[done:n]:
            h.update(key.encode("utf-8") + b"\n")
        self._state = (h, n)
        return h.hexdigest()


def _fingerprint(keys: list[str]) -> str:
    return _KeyHasher(keys).upto(len(keys))


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


def _resume_state(
    partial: Path, record: Path, identity: dict[str, Any], keys: list[str], say: Callable[[str], None]
) -> dict[str, Any] | None:
    """The saved progress of an interrupted conversion with the same identity, or None.

    Raises:
        DataError: there is one, but from another source, format, options or file list.
    """
    if not record.exists() or not partial.exists():
        if record.exists() or partial.exists():
            say(f"removing an incomplete conversion without its progress record: {partial}")
        _remove(partial, record)
        return None
    try:
        state = json.loads(record.read_text(encoding="utf-8"))
        done, count = int(state["done"]), int(state["count"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        say(f"starting over: the progress record {record} is unreadable ({exc})")
        _remove(partial, record)
        return None
    differs = [k for k in identity if state.get(k) != identity[k]]
    if differs:
        was = "; ".join(f"{k} was {state.get(k)!r}, now {identity[k]!r}" for k in differs)
        raise DataError(
            f"{partial} is an interrupted conversion of other input ({was}); rerun with the same "
            "arguments to continue it, or start over with --restart (resume=False)"
        )
    if done > len(keys) or _fingerprint(keys[:done]) != state.get("fingerprint"):
        raise DataError(
            f"{partial}: the files under {identity['source_root']!r} changed since the interrupted conversion "
            f"({done} of them were converted); start over with --restart (resume=False)"
        )
    try:
        with h5py.File(partial, "r") as f:
            rows = int(f["images"].shape[0])
    except (OSError, KeyError) as exc:
        say(f"starting over: {partial} is damaged ({exc})")
        _remove(partial, record)
        return None
    if rows < count:  # the record claims rows the file does not have: not our write order
        say(f"starting over: {partial} holds {rows} images, its record says {count}")
        _remove(partial, record)
        return None
    state.setdefault("skipped_images", 0)
    state.setdefault("skipped_unsized", 0)
    return state


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


def _already_converted(
    out: Path, identity: dict[str, Any], fingerprint: str, units: int, extra: dict[str, Any]
) -> SkipReport | None:
    """The report of ``out`` if it is a complete conversion of exactly this input (and holds the
    ``extra`` attributes asked for, e.g. ``kind``), else None."""
    if not is_toolkit_h5(out):
        return None
    try:
        with h5py.File(out, "r") as f:
            attrs = {k: _plain(v) for k, v in f.attrs.items()}
            count = int(f["images"].shape[0])
    except (OSError, KeyError):
        return None
    if any(attrs.get(k) != _plain(_attr_value(v)) for k, v in extra.items()):
        return None
    want = _provenance(identity, fingerprint, units)
    got = {k: attrs.get(k) for k in want}
    try:
        got["source_options"] = json.loads(got["source_options"]) if isinstance(got["source_options"], str) else None
        got["source_units"] = int(got["source_units"])  # type: ignore[arg-type]
        skipped = int(attrs.get("skipped_files", 0))
    except (TypeError, ValueError):
        return None
    if got != want or int(attrs.get("count", -1)) != count:
        return None
    return SkipReport(read=units - skipped, images=count, already_converted=True)


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
    ``source_options``, ``source_units`` (units listed), ``source_fingerprint`` (of their keys),
    ``skipped_files``; ``attrs`` adds or overrides (e.g. ``task``, ``kind``).

    ``out_path`` appears only once complete (fsynced, then renamed into place). Until then the
    images live in ``OUT.partial`` and the progress (units done, images written, skipped files)
    in ``OUT.partial.json``, saved every ``batch_units`` units, before any error propagates,
    and on Ctrl-C. A save is transactional: the rows are written at the recorded row count,
    then the record, and only then the in-memory progress moves on, so a save interrupted at any
    point (and redone on the way out) never writes a row twice. A rerun with the same loader,
    root and options continues after the last saved unit; with ``resume=False`` it starts over.

    An existing ``out_path`` with no partial conversion beside it: if its provenance is this
    very input (format, root, options, unit list; and the ``attrs`` asked for) and ``resume`` is
    set, nothing is done ("already converted", ``report.already_converted``); otherwise it is
    replaced when the new conversion completes (it stays untouched until then).

    Args:
        options: the loader's options, recorded as provenance and compared on resume.
        say: receives one-line notes (resuming, starting over, already converted, replacing).

    Returns:
        The skip report of the whole conversion (across resumed runs).

    Raises:
        DataError: a unit failed (without ``skip_bad``), no images at all, or an interrupted
            conversion of other input is in the way (with ``resume``).
    """
    root = Path(root).absolute()
    out = Path(out_path)
    partial, record = _partial_paths(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    units = _listed_units(loader, root)
    keys = [u.key for u in units]
    fingerprints = _KeyHasher(keys)
    # As the JSON record will hold them (tuples become lists), so a rerun compares equal.
    options = json.loads(json.dumps(options or {}, default=str))
    identity = {
        "source_format": loader.name,
        "source_root": str(root),
        "source_options": options,
        "image_shape": list(loader.image_shape),
        "label_shapes": {k: list(v) for k, v in loader.label_shapes.items()},
    }
    if resume and out.exists() and not partial.exists() and not record.exists():
        done_report = _already_converted(out, identity, _fingerprint(keys), len(keys), {"kind": "real", **(attrs or {})})
        if done_report is not None:
            say(f"{out} is already converted from this input ({done_report.images} images); nothing to do "
                "(--restart converts it again)")
            return done_report
    if out.exists():
        say(f"{out} exists and will be replaced once this conversion completes")
    state = _resume_state(partial, record, identity, keys, say) if resume else None
    if not resume:
        _remove(partial, record)
    if state is None:
        with h5py.File(partial, "w") as f:
            init_layout(f, tuple(loader.image_shape), dict(loader.label_shapes), {"kind": "real", "value_range": [-1.0, 1.0]})
        state = {**identity, "done": 0, "count": 0, "read": 0, "skipped": [], "skipped_images": 0,
                 "skipped_unsized": 0, "fingerprint": fingerprints.upto(0)}
        _write_record(record, state)
    else:
        say(f"resuming {out}: {state['done']} of {len(units)} files already converted ({state['count']} images)")

    # Units read since the last save: one (part or None, skip or None) entry per unit, appended
    # in one step, so an interrupt never leaves a unit half-counted. ``base`` is state["done"]
    # when the batch began: a batch is committed at most once.
    batch: dict[str, Any] = {"base": state["done"], "units": [], "images": 0}

    with h5py.File(partial, "r+") as f:
        # Rows past the record (written just before a crash, never recorded) are cut off.
        for ds in [f["images"], *f["labels"].values()]:
            ds.resize(state["count"], axis=0)

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
            done = state["done"] + len(entries)
            new = {
                **state, "done": done, "count": count, "read": state["read"] + len(parts),
                "skipped": state["skipped"] + [[path, reason] for path, reason, _ in skips],
                "skipped_images": state["skipped_images"] + sum(size for *_, size in skips if size is not None),
                "skipped_unsized": state["skipped_unsized"] + sum(size is None for *_, size in skips),
                "fingerprint": fingerprints.upto(done),
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
            if isinstance(exc, DataError):
                raise DataError(
                    f"{exc} ({state['done']} of {len(units)} files converted so far are kept in {partial}; "
                    "rerun the same command to continue, e.g. with --skip-bad)"
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
                "count": state["count"], **_provenance(identity, state["fingerprint"], len(units)),
                "skipped_files": len(report.skipped),
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
