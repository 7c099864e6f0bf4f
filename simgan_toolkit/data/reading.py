"""Reading datasets on disk: format detection, checked reading, resumable conversion to HDF5.

Every format is a :class:`~simgan_toolkit.data.loader.DatasetLoader` registered as kind
``"dataset"``; this module drives them all the same way:

- :func:`resolve_loader` picks the format (``auto`` asks every format's ``detect``) and builds
  the loader from its options;
- :func:`read_dataset` reads the units into memory, checking every unit against the loader's
  declared shapes; with ``skip_bad`` a broken file is counted and reported, never silently lost;
- :func:`sample_dataset` draws a seeded random sample of rows, reading only part of a large
  dataset (what a run's ``data.<side>`` uses);
- :func:`convert_dataset` streams the units into a toolkit HDF5 file (``simgan convert``). The
  file appears under its final name only when complete; an interrupted conversion keeps
  ``OUT.partial`` plus a JSON progress record ``OUT.partial.json`` and a rerun continues after
  the last saved unit. A rerun after a complete conversion of the same input does nothing.

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
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import torch
from tqdm.auto import tqdm

from simgan_toolkit.data.hdf5 import FORMAT, _attr_value, _open, append_rows, init_layout, set_attrs
from simgan_toolkit.data.loader import DatasetLoader, Unit
from simgan_toolkit.errors import ConfigError, DataError, PluginError
from simgan_toolkit.io import atomic_path
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
#: Exceptions of ``read_unit`` that mean a bad file (decoders, h5py, scipy, zip/npz, JSON
#: structure) and become a DataError naming it (counted by ``skip_bad``). Anything else
#: (TypeError, IndexError, AttributeError, RuntimeError, ...) is a loader bug and propagates
#: with its traceback. h5py reports bad files as OSError, KeyError or ValueError.
_FILE_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, KeyError, EOFError, zlib.error, zipfile.BadZipFile)
#: A sample (:func:`sample_dataset`) comes from at least this many units when the dataset has them.
_SAMPLE_MIN_UNITS = 16


class SkippedFilesWarning(UserWarning):
    """Some units of a dataset were unreadable and were skipped (``skip_bad``)."""


@dataclass
class SkipReport:
    """What reading or converting a dataset skipped.

    Attributes:
        skipped: (file, reason) of every skipped unit, in reading order.
        read: number of units read successfully.
        images: number of images those units held (after ``limit``).
        skipped_images: images the skipped units held, as far as the loader knows it without
            reading them (:meth:`~simgan_toolkit.data.loader.DatasetLoader.unit_size`).
        skipped_unsized: skipped units whose image count the loader does not know.
        already_converted: :func:`convert_dataset` found the output complete and did nothing
            (``skipped`` is then empty; the file's ``skipped_files`` attribute has the count).
    """

    skipped: list[tuple[str, str]] = field(default_factory=list)
    read: int = 0
    images: int = 0
    skipped_images: int = 0
    skipped_unsized: int = 0
    already_converted: bool = False

    def add_skip(self, path: str, reason: str, size: int | None) -> None:
        """Record one skipped unit of ``size`` images (None: unknown)."""
        self.skipped.append((path, reason))
        if size is None:
            self.skipped_unsized += 1
        else:
            self.skipped_images += size

    def summary(self) -> str | None:
        """One line such as ``skipped 3 of 1000 units (12 images not read; first: a.png: truncated)``;
        None if nothing was skipped. A unit is a loader's readable piece (a file, or a part of one)."""
        if not self.skipped:
            return None
        path, reason = self.skipped[0]
        images = f"{self.skipped_images} image{'' if self.skipped_images == 1 else 's'} not read"
        if not self.skipped_unsized:
            lost = images
        elif self.skipped_images:
            lost = f"at least {images}"
        else:
            lost = "images not read: count unknown"
        return f"skipped {len(self.skipped)} of {self.read + len(self.skipped)} units ({lost}; first: {path}: {reason})"


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

    def unit_size(self, unit: Unit) -> int:
        start, stop = unit.info
        return stop - start

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
            A bad file's OSError/ValueError/KeyError/EOFError/zlib or zip error becomes one.
        Exception: any other exception of ``read_unit`` (TypeError, IndexError, RuntimeError,
            ...) is a loader bug: it propagates with its traceback (and a note naming the
            unit), so ``skip_bad`` never counts it as a bad file.
    """
    try:
        data = loader.read_unit(unit)
    except DataError as exc:
        message = str(exc)
        if str(unit.path) in message or unit.path.name in message:
            exc.reason = message  # type: ignore[attr-defined]
            raise
        raise _unit_error(unit, message) from exc
    except _FILE_ERRORS as exc:
        raise _unit_error(unit, f"cannot read ({type(exc).__name__}: {exc})") from exc
    except Exception as exc:
        if hasattr(exc, "add_note"):  # Python >= 3.11
            exc.add_note(f"(a bug in dataset format {loader.name!r}, raised reading unit {unit.key!r} of {unit.path})")
        raise
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


def _unit_size(loader: DatasetLoader, unit: Unit) -> int | None:
    """``loader.unit_size(unit)`` if it is a count, else None (unknown)."""
    size = loader.unit_size(unit)
    return size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None


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
            report.add_skip(str(unit.path), _reason(exc), _unit_size(loader, unit))
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


def sample_dataset(
    loader: DatasetLoader,
    root: str | Path,
    n: int,
    seed: int,
    *,
    skip_bad: bool = False,
    progress: bool = True,
    min_units: int = _SAMPLE_MIN_UNITS,
) -> tuple[LabelledImages, SkipReport]:
    """A seeded random sample of ``n`` rows (images with their labels), reading only what it needs.

    A unit can hold many consecutive, alike images (an MPIIGaze person-day: left eyes then
    right eyes; a Kaggle chunk of 1000), so taking the first ``n`` rows of shuffled units would
    draw a small sample from one or two units. Instead the units are read in an order shuffled
    with ``seed`` until

    - at least ``n + 2 * U`` rows are read, ``U`` the largest unit read so far (so a unit's
      expected share of the sample, U / rows read, stays under one half), and
    - at least ``min_units`` units (16) are read,

    or every unit is read; then ``n`` of the rows read are drawn uniformly at random (seeded).
    A dataset of one-image units is thus read about ``n`` units deep (shuffled one-image units
    are already a uniform sample), a dataset of at most 16 units is read whole. Memory stays at ``n`` rows plus one unit: the draw is streamed (every row gets a
    seeded random priority; the ``n`` lowest are kept, see :class:`_Reservoir`).

    Returns:
        (min(n, rows available) rows, in an order fixed by the seed, the skip report).
        ``report.images`` counts the rows read, not only the ones kept.

    Raises:
        DataError: as :func:`read_dataset`.
    """
    root = Path(root)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    units = _listed_units(loader, root)
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(units), generator=generator).tolist()
    report = SkipReport()
    sample = _Reservoir(n)
    largest = 0
    bar = tqdm(total=len(units), desc=f"sampling {loader.name}", unit="unit", disable=not progress, leave=False)
    try:
        for position in order:
            unit = units[position]
            try:
                part = read_unit_checked(loader, unit)
            except DataError as exc:
                if not skip_bad:
                    raise
                report.add_skip(str(unit.path), _reason(exc), _unit_size(loader, unit))
                bar.update()
                continue
            bar.update()
            sample.add(part, torch.rand(len(part), generator=generator, dtype=torch.float64))
            report.read += 1
            report.images += len(part)
            largest = max(largest, len(part))
            if report.images >= n + 2 * largest and report.read + len(report.skipped) >= min_units:
                break
    finally:
        bar.close()
    _warn_skipped(report)
    if report.read == 0:
        raise DataError(f"{str(root)!r}: none of its {len(units)} files could be read; first: {report.skipped[0][0]}: {report.skipped[0][1]}")
    if report.images == 0:
        raise DataError(f"{str(root)!r}: its {report.read} files hold no images")
    return sample.result(), report


class _Reservoir:
    """A uniform random sample of ``n`` of the rows streamed through :meth:`add`.

    Every row comes with a random priority; the ``n`` rows of lowest priority are kept, in ``n``
    preallocated slots: a new row that makes the cut overwrites the slot of the row it evicts,
    so memory stays at ``n`` rows (plus the part being added) and nothing is copied wholesale.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.filled = 0
        self.images: torch.Tensor | None = None
        self.labels: dict[str, torch.Tensor] = {}
        self.priority = torch.full((n,), float("inf"), dtype=torch.float64)

    def _put(self, slots: torch.Tensor, part: LabelledImages, rows: torch.Tensor, priority: torch.Tensor) -> None:
        assert self.images is not None
        self.images[slots] = part.images[rows]
        for k, v in part.labels.items():
            self.labels[k][slots] = v[rows]
        self.priority[slots] = priority[rows]

    def add(self, part: LabelledImages, priority: torch.Tensor) -> None:
        m = len(part)
        if m == 0:
            return
        if self.images is None:
            self.images = part.images.new_empty((self.n, *part.images.shape[1:]))
            self.labels = {k: v.new_empty((self.n, *v.shape[1:])) for k, v in part.labels.items()}
        free = min(self.n - self.filled, m)
        if free:  # the first n rows fill the empty slots
            self._put(torch.arange(self.filled, self.filled + free), part, torch.arange(free), priority)
            self.filled += free
        if free == m:
            return
        rest = torch.arange(free, m)
        combined = torch.cat([self.priority, priority[rest]])
        chosen = torch.zeros(len(combined), dtype=torch.bool)
        chosen[torch.topk(combined, self.n, largest=False).indices] = True
        evicted = torch.nonzero(~chosen[: self.n]).flatten()
        incoming = rest[torch.nonzero(chosen[self.n :]).flatten()]
        if len(incoming):
            self._put(evicted, part, incoming, priority)

    def result(self) -> LabelledImages:
        assert self.images is not None
        if self.filled < self.n:
            return LabelledImages(self.images[: self.filled], {k: v[: self.filled] for k, v in self.labels.items()})
        return LabelledImages(self.images, self.labels)


# --------------------------------------------------------------------------------------
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
