"""Reading datasets on disk: checked reading of every unit, skip counting, sampling.

Every format is a :class:`~simgan_toolkit.data.loader.DatasetLoader` registered as kind
``"dataset"`` (:mod:`simgan_toolkit.data.formats` picks it); this module drives them all the
same way:

- :func:`read_dataset` reads the units into memory, checking every unit against the loader's
  declared shapes; with ``skip_bad`` a broken file is counted and reported, never silently lost;
- :func:`sample_dataset` draws a seeded random sample of rows, reading only part of a large
  dataset (what a run's ``data.<side>`` uses).

Both, and the conversion to HDF5 (:mod:`simgan_toolkit.data.convert`), read through one path:
:func:`list_units` lists the units, :func:`iter_units` reads them one by one (checked by
:func:`read_unit_checked`, a bad file skipped with ``skip_bad``) and :meth:`SkipReport.count`
tallies what each gave; :func:`check_not_empty` and :func:`warn_skipped` end every read.
"""

from __future__ import annotations

import warnings
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from simgan_toolkit.data.loader import DatasetLoader, Unit
from simgan_toolkit.errors import DataError
from simgan_toolkit.task import LabelledImages

#: Pixel values may exceed [-1, 1] by this much (rounding in a loader's scaling).
_RANGE_TOLERANCE = 1e-3
#: Exceptions of ``read_unit`` that mean a bad file (decoders, h5py, scipy, zip/npz, JSON
#: structure) and become a DataError naming it (counted by ``skip_bad``). Anything else
#: (TypeError, IndexError, AttributeError, RuntimeError, ...) is a loader bug and propagates
#: with its traceback. h5py reports bad files as OSError, KeyError or ValueError.
_FILE_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, KeyError, EOFError, zlib.error, zipfile.BadZipFile)
#: A sample (:func:`sample_dataset`) comes from at least this many units when the dataset has them.
_SAMPLE_MIN_UNITS = 16
#: Skipped files a summary lists by name; the rest are counted.
SUMMARY_FILES = 10


class SkippedFilesWarning(UserWarning):
    """Some units of a dataset were unreadable and were skipped (``skip_bad``)."""


@dataclass(frozen=True)
class UnitRead:
    """What reading one unit gave (:func:`iter_units`): its images, or why it was skipped.

    Attributes:
        unit: the unit read.
        data: its checked (n, C, H, W) images and (n, ...) labels; None if it was skipped.
        reason: why it was skipped (the error without the file name); None if it was read.
        size: images the skipped unit held, if the loader knows it without reading it
            (:meth:`~simgan_toolkit.data.loader.DatasetLoader.unit_size`), else None.
    """

    unit: Unit
    data: LabelledImages | None
    reason: str | None = None
    size: int | None = None


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
            (``skipped`` then comes from the file's ``skipped`` attribute; the image counts of
            the skipped units are not known).
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

    def count(self, outcome: UnitRead) -> None:
        """Tally one unit: read (and its images) or skipped."""
        if outcome.data is None:
            self.add_skip(str(outcome.unit.path), outcome.reason or "", outcome.size)
        else:
            self.read += 1
            self.images += len(outcome.data)

    def summary(self, limit: int = SUMMARY_FILES) -> str | None:
        """What was skipped, None if nothing was: a line such as ``skipped 3 of 1000 units (12
        images not read):``, then one indented ``file: reason`` line per skipped unit, the first
        ``limit`` of them and a count of the rest. A unit is a loader's readable piece (a file,
        or a part of one)."""
        if not self.skipped:
            return None
        images = f"{self.skipped_images} image{'' if self.skipped_images == 1 else 's'} not read"
        if not self.skipped_unsized:
            lost = images
        elif self.skipped_images:
            lost = f"at least {images}"
        else:
            lost = "images not read: count unknown"
        lines = [f"skipped {len(self.skipped)} of {self.read + len(self.skipped)} units ({lost}):"]
        lines += [f"  {path}: {reason}" for path, reason in self.skipped[:limit]]
        if len(self.skipped) > limit:
            lines.append(f"  ... and {len(self.skipped) - limit} more")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------


def _unit_error(unit: Unit, reason: str) -> DataError:
    error = DataError(f"{unit.path}: {reason}")
    error.reason = reason  # type: ignore[attr-defined]  # the message without the path, for SkipReport
    return error


def _without_path(message: str, path: Path) -> str:
    """``message`` less a leading ``"PATH: "`` (or ``"NAME: "``): SkipReport prints the path itself."""
    for prefix in (f"{path}: ", f"{path.name}: "):
        if message.startswith(prefix):
            return message[len(prefix):]
    return message


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
            exc.reason = _without_path(message, unit.path)  # type: ignore[attr-defined]
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


def warn_skipped(report: SkipReport, stacklevel: int = 3) -> None:
    """One :class:`SkippedFilesWarning` with ``report.summary()``, if anything was skipped.

    ``stacklevel`` as for :func:`warnings.warn`, counted from this function's caller's caller
    (the default points at whoever called the public reading function).
    """
    message = report.summary()
    if message:
        warnings.warn(message, SkippedFilesWarning, stacklevel=stacklevel)


def list_units(loader: DatasetLoader, root: Path) -> list[Unit]:
    """``loader.units(root)``, checked: at least one, and no key twice.

    Raises:
        DataError: no units (naming ``root`` and the format), or a key listed twice (a loader bug).
    """
    units = list(loader.units(root))
    if not units:
        raise DataError(f"{str(root)!r}: no files of format {loader.name!r} found")
    keys = [u.key for u in units]
    if len(set(keys)) != len(keys):
        duplicate = next(k for k in keys if keys.count(k) > 1)
        raise DataError(f"format {loader.name!r} lists unit {duplicate!r} of {str(root)!r} twice (a loader bug)")
    return units


def iter_units(
    loader: DatasetLoader, units: Iterable[Unit], *, skip_bad: bool, report: SkipReport | None = None
) -> Iterator[UnitRead]:
    """Read ``units`` one at a time, lazily and in order: the one read-or-skip path.

    Each unit is read by :func:`read_unit_checked`. With ``skip_bad`` a unit whose file is bad
    (a DataError) is yielded as skipped (``data`` None, with its reason and size); without, the
    DataError propagates. A loader bug (any other exception) always propagates. ``report``, if
    given, counts every unit (:meth:`SkipReport.count`) before it is yielded; a caller that
    commits units in batches (the converter) leaves it out and counts them itself.

    Yields:
        One :class:`UnitRead` per unit; a unit is read only when the next one is asked for, so
        a caller that stops early reads no further.
    """
    for unit in units:
        try:
            outcome = UnitRead(unit, read_unit_checked(loader, unit))
        except DataError as exc:
            if not skip_bad:
                raise
            outcome = UnitRead(unit, None, _reason(exc), _unit_size(loader, unit))
        if report is not None:
            report.count(outcome)
        yield outcome


def check_not_empty(report: SkipReport, root: Path, n_units: int) -> None:
    """Raise if reading ``root``'s ``n_units`` units gave no readable file or no image.

    Raises:
        DataError: ``none of its N files could be read`` or ``its N files hold no images``,
            naming ``root`` and the first skipped file with its reason.
    """
    if report.images:
        return
    what = f"none of its {n_units} files could be read" if report.read == 0 else f"its {report.read} files hold no images"
    first = f"; first: {report.skipped[0][0]}: {report.skipped[0][1]}" if report.skipped else ""
    raise DataError(f"{str(root)!r}: {what}{first}")


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
    units = list_units(loader, root) if units is None else units
    if not units:
        raise DataError(f"{str(root)!r}: no files of format {loader.name!r} found")
    report = SkipReport()
    parts: list[LabelledImages] = []
    bar = tqdm(units, desc=f"reading {loader.name}", unit="file", disable=not progress, leave=False)
    for outcome in iter_units(loader, bar, skip_bad=skip_bad, report=report):
        if outcome.data is None:
            continue
        parts.append(outcome.data)
        if limit is not None and report.images >= limit:
            break
    bar.close()
    warn_skipped(report)
    check_not_empty(report, root, len(units))
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
    units = list_units(loader, root)
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(units), generator=generator).tolist()
    report = SkipReport()
    sample = _Reservoir(n)
    largest = 0
    bar = tqdm(total=len(units), desc=f"sampling {loader.name}", unit="unit", disable=not progress, leave=False)
    try:
        for outcome in iter_units(loader, (units[i] for i in order), skip_bad=skip_bad, report=report):
            bar.update()
            part = outcome.data
            if part is None:
                continue
            # Priorities are drawn unit by unit as read, so the sample depends only on the seed.
            sample.add(part, torch.rand(len(part), generator=generator, dtype=torch.float64))
            largest = max(largest, len(part))
            if report.images >= n + 2 * largest and report.read + len(report.skipped) >= min_units:
                break
    finally:
        bar.close()
    warn_skipped(report)
    check_not_empty(report, root, len(units))
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
