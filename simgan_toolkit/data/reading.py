"""Reading datasets on disk: format detection, checked reading, resumable conversion to HDF5.

Every format is a :class:`~simgan_toolkit.data.loader.DatasetLoader` registered as kind
``"dataset"``; this module drives them all the same way:

- :func:`resolve_loader` picks the format (``auto`` asks every format's ``detect``) and builds
  the loader from its options;
- :func:`read_dataset` reads the units into memory, checking every unit against the loader's
  declared shapes; with ``skip_bad`` a broken file is counted and reported, never silently lost;
- :func:`convert_dataset` streams the units into a toolkit HDF5 file (``simgan convert``). The
  file appears under its final name only when complete; an interrupted conversion keeps
  ``OUT.partial`` plus a JSON progress record ``OUT.partial.json`` and a rerun continues after
  the last saved unit.

A toolkit HDF5 file (``simgan convert`` output, a run's ``refined.h5``) is also a source: format
``toolkit-h5``, detected by its ``format`` attribute. It is handled here, not registered, so
``simgan plugins`` lists only real dataset formats.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import torch
from tqdm.auto import tqdm

from simgan_toolkit.data.hdf5 import FORMAT, _open, append_rows, init_layout, set_attrs
from simgan_toolkit.data.loader import DatasetLoader, Unit
from simgan_toolkit.errors import ConfigError, DataError, PluginError
from simgan_toolkit.io import atomic_write_json
from simgan_toolkit.plugin.lazy import resolve
from simgan_toolkit.plugin.registry import Registry
from simgan_toolkit.task import LabelledImages

#: Format name of the toolkit's own HDF5 layout as a data source.
TOOLKIT_H5 = "toolkit-h5"
#: Rows per unit when reading a toolkit HDF5 file: its chunk size, so a unit is one chunk read.
_H5_UNIT_ROWS = 256
#: A conversion saves its progress at least this often (images), whatever ``batch_units`` is,
#: so formats with thousands of images per file do not pile up in memory.
_FLUSH_IMAGES = 4096
#: Pixel values may exceed [-1, 1] by this much (rounding in a loader's scaling).
_RANGE_TOLERANCE = 1e-3
#: Exceptions that mean a bug in a loader rather than a bad file: never turned into DataError.
_BUG_ERRORS = (AttributeError, NameError, ImportError, NotImplementedError, AssertionError)


class SkippedFilesWarning(UserWarning):
    """Some units of a dataset were unreadable and were skipped (``skip_bad``)."""


@dataclass
class SkipReport:
    """What reading or converting a dataset skipped.

    Attributes:
        skipped: (file, reason) of every skipped unit, in reading order.
        read: number of units read successfully.
        images: number of images those units held (after ``limit``).
    """

    skipped: list[tuple[str, str]] = field(default_factory=list)
    read: int = 0
    images: int = 0

    def summary(self) -> str | None:
        """One line such as ``skipped 3 of 1000 files (first: a.png: truncated)``; None if none."""
        if not self.skipped:
            return None
        path, reason = self.skipped[0]
        return f"skipped {len(self.skipped)} of {self.read + len(self.skipped)} files (first: {path}: {reason})"


# --------------------------------------------------------------------------------------
# The toolkit's own HDF5 files as a source.
def is_toolkit_h5(path: str | Path) -> bool:
    """Whether ``path`` is an HDF5 file written by the toolkit (by its ``format`` attribute)."""
    p = Path(path)
    if not p.is_file() or not h5py.is_hdf5(p):
        return False
    try:
        with h5py.File(p, "r") as f:
            return f.attrs.get("format") == FORMAT
    except OSError:
        return False


class ToolkitH5Loader(DatasetLoader):
    """A toolkit HDF5 file as a dataset: units are blocks of rows, labels are the file's labels."""

    name = TOOLKIT_H5

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        with _open(self.path) as f:
            self._image_shape: tuple[int, int, int] = tuple(f["images"].shape[1:])  # type: ignore[assignment]
            self._count = int(f["images"].shape[0])
            labels = f.get("labels", {})
            self._label_shapes = {k: tuple(labels[k].shape[1:]) for k in labels}
            value_range = f.attrs.get("value_range")
        #: The file's declared value range, (-1, 1) when it declares none.
        self.value_range: tuple[float, float] = tuple(float(v) for v in value_range) if value_range is not None else (-1.0, 1.0)  # type: ignore[assignment]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self._image_shape

    @property
    def label_shapes(self) -> dict[str, tuple[int, ...]]:
        return self._label_shapes

    @classmethod
    def detect(cls, root: Path) -> bool:
        return is_toolkit_h5(root)

    def units(self, root: Path) -> list[Unit]:
        return [
            Unit(f"rows-{start}", Path(root), (start, min(start + _H5_UNIT_ROWS, self._count)))
            for start in range(0, self._count, _H5_UNIT_ROWS)
        ]

    def read_unit(self, unit: Unit) -> LabelledImages:
        start, stop = unit.info
        with h5py.File(unit.path, "r") as f:
            labels = f.get("labels", {})
            return LabelledImages(
                torch.from_numpy(f["images"][start:stop]),
                {k: torch.from_numpy(labels[k][start:stop]) for k in labels},
            )


# --------------------------------------------------------------------------------------
def _detects(entry_name: str, loader_class: Any, root: Path) -> bool:
    try:
        return bool(loader_class.detect(root))
    except Exception as exc:  # one broken plugin must not make every other format undetectable
        warnings.warn(f"dataset format {entry_name!r}: detect({str(root)!r}) raised {type(exc).__name__}: {exc}", stacklevel=3)
        return False


def _build_loader(name: str, loader_class: Any, options: dict[str, Any]) -> DatasetLoader:
    """``loader_class(**options)``; an option the class does not take is a ConfigError naming it."""
    try:
        signature = inspect.signature(loader_class)
    except (TypeError, ValueError):  # a builtin or C type: let the call itself complain
        signature = None
    if signature is not None:
        try:
            signature.bind(**options)
        except TypeError as exc:
            accepted = [
                p.name for p in signature.parameters.values()
                if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
            ]
            raise ConfigError(
                f"dataset format {name!r}: bad options {options}: {exc}; it takes: {', '.join(accepted) or 'no options'}"
            ) from None
    try:
        loader = loader_class(**options)
    except ValueError as exc:  # an option of the right name with a bad value (e.g. an unknown split)
        raise ConfigError(f"dataset format {name!r}: bad option value in {options}: {exc}") from None
    if not isinstance(loader, DatasetLoader):
        raise PluginError(f"dataset format {name!r} built a {type(loader).__name__}, not a DatasetLoader")
    return loader


def resolve_loader(registry: Registry, fmt: str, root: str | Path, options: dict[str, Any] | None = None) -> DatasetLoader:
    """The loader of format ``fmt`` (or the one format that detects ``root`` with ``"auto"``).

    Raises:
        DataError: ``root`` does not exist, or ``auto`` finds no format or several.
        PluginError: ``fmt`` is not a registered format (the message lists the registered ones).
        ConfigError: ``options`` do not fit the format's loader (the message names the option).
    """
    root = Path(root)
    options = dict(options or {})
    if not root.exists():
        raise DataError(f"dataset path {str(root)!r} does not exist")
    if fmt == TOOLKIT_H5 or (fmt == "auto" and is_toolkit_h5(root)):
        if not is_toolkit_h5(root):
            raise DataError(f"{str(root)!r} is not a toolkit HDF5 file (format attribute {FORMAT!r})")
        if options:
            raise ConfigError(f"dataset format {TOOLKIT_H5!r} takes no options, got {options}")
        return ToolkitH5Loader(root)
    if fmt == "auto":
        entries = registry.entries("dataset")
        matches = [e for e in entries if _detects(e.name, resolve(e.factory), root)]
        if len(matches) != 1:
            known = ", ".join(e.name for e in entries) or "none"
            if matches:
                problem = f"looks like several dataset formats: {', '.join(e.name for e in matches)}"
            else:
                problem = f"is not in any registered dataset format (registered: {known}; or {TOOLKIT_H5} for a toolkit HDF5 file)"
            raise DataError(f"{str(root)!r} {problem}; choose one with --format NAME (config: format = \"NAME\")")
        entry = matches[0]
    else:
        entry = registry.get("dataset", fmt)
    return _build_loader(entry.name, resolve(entry.factory), options)


# --------------------------------------------------------------------------------------
def _unit_error(unit: Unit, reason: str) -> DataError:
    error = DataError(f"{unit.path}: {reason}")
    error.reason = reason  # type: ignore[attr-defined]  # the message without the path, for SkipReport
    return error


def read_unit_checked(loader: DatasetLoader, unit: Unit) -> LabelledImages:
    """``loader.read_unit(unit)`` checked against the loader's shapes, as float32 on the CPU.

    Images are (n, C, H, W) of ``loader.image_shape``, finite and within [-1, 1]; labels have
    exactly the names and per-image shapes of ``loader.label_shapes``.

    Raises:
        DataError: naming ``unit.path``, for a bad file or a loader that breaks its contract.
            A bad file's OSError/ValueError/KeyError/... becomes one; a loader bug
            (AttributeError, NameError, ...) keeps its traceback.
    """
    try:
        data = loader.read_unit(unit)
    except DataError as exc:
        message = str(exc)
        if str(unit.path) in message or unit.path.name in message:
            exc.reason = message  # type: ignore[attr-defined]
            raise
        raise _unit_error(unit, message) from exc
    except _BUG_ERRORS:
        raise
    except Exception as exc:  # decoders raise anything: OSError, ValueError, zipfile.BadZipFile, ...
        raise _unit_error(unit, f"cannot read ({type(exc).__name__}: {exc})") from exc
    if not isinstance(data, LabelledImages):
        raise _unit_error(unit, f"format {loader.name!r} returned a {type(data).__name__}, expected LabelledImages")
    images = data.images
    expected = tuple(loader.image_shape)
    if images.ndim != 4 or tuple(images.shape[1:]) != expected:
        raise _unit_error(unit, f"images of shape {tuple(images.shape)}, expected (n, {', '.join(map(str, expected))}) for format {loader.name!r}")
    if not images.is_floating_point():
        raise _unit_error(unit, f"images of dtype {images.dtype}, expected floating point in [-1, 1]")
    want = {k: tuple(v) for k, v in loader.label_shapes.items()}
    if set(data.labels) != set(want):
        raise _unit_error(unit, f"labels {sorted(data.labels)}, expected {sorted(want)} for format {loader.name!r}")
    for name, shape in want.items():
        got = tuple(data.labels[name].shape[1:])
        if got != shape:
            raise _unit_error(unit, f"label {name!r} of per-image shape {got}, expected {shape}")
    images = images.detach().float().cpu()
    if len(images):
        if not torch.isfinite(images).all():
            raise _unit_error(unit, "non-finite pixel values (NaN or inf)")
        low, high = float(images.min()), float(images.max())
        if low < -1 - _RANGE_TOLERANCE or high > 1 + _RANGE_TOLERANCE:
            raise _unit_error(unit, f"pixel values in [{low:.3g}, {high:.3g}], expected [-1, 1]")
    return LabelledImages(images, {k: v.detach().float().cpu() for k, v in data.labels.items()})


def _reason(exc: DataError) -> str:
    return getattr(exc, "reason", str(exc))


def _warn_skipped(report: SkipReport) -> None:
    message = report.summary()
    if message:
        warnings.warn(message, SkippedFilesWarning, stacklevel=3)


def _listed_units(loader: DatasetLoader, root: Path) -> list[Unit]:
    units = list(loader.units(root))
    if not units:
        raise DataError(f"{str(root)!r}: no files of format {loader.name!r} found")
    keys = [u.key for u in units]
    if len(set(keys)) != len(keys):
        duplicate = next(k for k in keys if keys.count(k) > 1)
        raise DataError(f"format {loader.name!r} lists unit {duplicate!r} of {str(root)!r} twice (a loader bug)")
    return units


def read_dataset(
    loader: DatasetLoader,
    root: str | Path,
    *,
    skip_bad: bool = False,
    progress: bool = True,
    limit: int | None = None,
    units: list[Unit] | None = None,
) -> tuple[LabelledImages, SkipReport]:
    """Read a dataset into memory, unit by unit, in order.

    Args:
        loader: the format's loader.
        root: the dataset folder (or file) the loader reads.
        skip_bad: count and skip units that fail to read (one warning sums them up) instead
            of raising on the first.
        progress: show a progress bar (one step per file).
        limit: stop once this many images are read (the result has exactly ``limit`` rows,
            or fewer if the dataset holds fewer).
        units: read these units instead of all of ``loader.units(root)`` (e.g. shuffled).

    Returns:
        ((N, C, H, W) float32 images with their (N, ...) labels on the CPU, the skip report).

    Raises:
        DataError: a unit failed (without ``skip_bad``; the message names its file), every
            unit failed, or the dataset holds no images.
    """
    root = Path(root)
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    units = _listed_units(loader, root) if units is None else units
    if not units:
        raise DataError(f"{str(root)!r}: no files of format {loader.name!r} found")
    report = SkipReport()
    parts: list[LabelledImages] = []
    for unit in tqdm(units, desc=f"reading {loader.name}", unit="file", disable=not progress, leave=False):
        try:
            part = read_unit_checked(loader, unit)
        except DataError as exc:
            if not skip_bad:
                raise
            report.skipped.append((str(unit.path), _reason(exc)))
            continue
        report.read += 1
        parts.append(part)
        report.images += len(part)
        if limit is not None and report.images >= limit:
            break
    _warn_skipped(report)
    if report.read == 0:
        raise DataError(f"{str(root)!r}: none of its {len(units)} files could be read; first: {report.skipped[0][0]}: {report.skipped[0][1]}")
    if report.images == 0:
        raise DataError(f"{str(root)!r}: its {report.read} files hold no images")
    data = LabelledImages(
        torch.cat([p.images for p in parts]), {k: torch.cat([p.labels[k] for p in parts]) for k in parts[0].labels}
    )
    if limit is not None and len(data) > limit:
        data = data.subset(slice(0, limit))
        report.images = limit
    return data, report


# --------------------------------------------------------------------------------------
def _partial_paths(out: Path) -> tuple[Path, Path]:
    return out.with_name(out.name + ".partial"), out.with_name(out.name + ".partial.json")


def _fingerprint(keys: list[str]) -> str:
    h = hashlib.sha256()
    for key in keys:
        h.update(key.encode("utf-8") + b"\n")
    return h.hexdigest()


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
    return state


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
    ``source_options``, ``skipped_files``; ``attrs`` adds or overrides (e.g. ``task``, ``kind``).

    ``out_path`` appears only once complete. Until then the images live in ``OUT.partial`` and
    the progress (units done, images written, skipped files) in ``OUT.partial.json``, saved
    every ``batch_units`` units, before any error propagates, and on Ctrl-C. A rerun with the
    same loader, root and options continues after the last saved unit; with ``resume=False``
    it starts over.

    Args:
        options: the loader's options, recorded as provenance and compared on resume.
        say: receives one-line notes (resuming, starting over).

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
    # As the JSON record will hold them (tuples become lists), so a rerun compares equal.
    options = json.loads(json.dumps(options or {}, default=str))
    identity = {
        "source_format": loader.name,
        "source_root": str(root),
        "source_options": options,
        "image_shape": list(loader.image_shape),
        "label_shapes": {k: list(v) for k, v in loader.label_shapes.items()},
    }
    state = _resume_state(partial, record, identity, keys, say) if resume else None
    if not resume:
        _remove(partial, record)
    if state is None:
        with h5py.File(partial, "w") as f:
            init_layout(f, tuple(loader.image_shape), dict(loader.label_shapes), {"kind": "real", "value_range": [-1.0, 1.0]})
        state = {**identity, "done": 0, "count": 0, "read": 0, "skipped": [], "fingerprint": _fingerprint([])}
        atomic_write_json(record, state)
    else:
        say(f"resuming {out}: {state['done']} of {len(units)} files already converted ({state['count']} images)")

    hasher = hashlib.sha256()
    for key in keys[: state["done"]]:
        hasher.update(key.encode("utf-8") + b"\n")
    pending: list[LabelledImages] = []
    pending_units = pending_read = pending_images = 0
    pending_skips: list[list[str]] = []

    with h5py.File(partial, "r+") as f:
        # Rows past the record (written just before a crash, never recorded) are cut off.
        for ds in [f["images"], *f["labels"].values()]:
            ds.resize(state["count"], axis=0)

        def save() -> None:
            """Append the pending images, then record them: the record never runs ahead of the file."""
            nonlocal pending, pending_units, pending_read, pending_images, pending_skips
            if pending:
                images = torch.cat([p.images for p in pending])
                labels = {k: torch.cat([p.labels[k] for p in pending]) for k in pending[0].labels}
                state["count"] = append_rows(f, state["count"], images, labels, partial)
                f.flush()
            state["done"] += pending_units
            state["read"] += pending_read
            state["skipped"] += pending_skips
            state["fingerprint"] = hasher.hexdigest()
            atomic_write_json(record, state)
            pending, pending_units, pending_read, pending_images, pending_skips = [], 0, 0, 0, []

        bar = tqdm(total=len(units), initial=state["done"], desc=f"converting {loader.name}", unit="file", disable=not progress)
        try:
            for unit in units[state["done"]:]:
                try:
                    part = read_unit_checked(loader, unit)
                except DataError as exc:
                    if not skip_bad:
                        raise
                    pending_skips.append([str(unit.path), _reason(exc)])
                else:
                    pending.append(part)
                    pending_read += 1
                    pending_images += len(part)
                hasher.update(unit.key.encode("utf-8") + b"\n")
                pending_units += 1
                bar.update()
                if pending_units >= batch_units or pending_images >= _FLUSH_IMAGES:
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
        report = SkipReport(skipped=[(p, r) for p, r in state["skipped"]], read=state["read"], images=state["count"])
        if state["count"]:
            set_attrs(f, {
                "kind": "real", "value_range": [-1.0, 1.0], **(attrs or {}),
                "count": state["count"], "source_format": loader.name, "source_root": str(root),
                "source_options": options, "skipped_files": len(report.skipped),
            })
    if state["count"] == 0:
        _remove(partial, record)
        what = f"none of its {len(units)} files could be read" if report.read == 0 else f"its {report.read} files hold no images"
        first = f"; first: {report.skipped[0][0]}: {report.skipped[0][1]}" if report.skipped else ""
        raise DataError(f"{str(root)!r}: {what}{first}")
    os.replace(partial, out)
    _remove(record)
    _warn_skipped(report)
    return report
