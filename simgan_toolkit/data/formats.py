"""Which format is a dataset path in, and its loader: ``resolve_loader`` and the toolkit's own HDF5.

A toolkit HDF5 file (``simgan convert`` output, a run's ``refined.h5``) is also a source: format
``toolkit-h5``, detected by its ``format`` attribute. It is handled here, not registered, so
``simgan plugins`` lists only real dataset formats. Every other format is a registered
:class:`~simgan_toolkit.data.loader.DatasetLoader`; ``auto`` asks each one's ``detect``.
"""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path
from typing import Any

import h5py
import torch

from simgan_toolkit.data.hdf5 import FORMAT, open_images_h5
from simgan_toolkit.data.loader import DatasetLoader, Unit
from simgan_toolkit.errors import ConfigError, DataError, PluginError
from simgan_toolkit.plugin.lazy import resolve
from simgan_toolkit.plugin.registry import Registry
from simgan_toolkit.task import LabelledImages

#: Format name of the toolkit's own HDF5 layout as a data source.
TOOLKIT_H5 = "toolkit-h5"
#: Rows per unit when reading a toolkit HDF5 file: its chunk size, so a unit is one chunk read.
_H5_UNIT_ROWS = 256


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
        with open_images_h5(self.path) as f:
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
#: Names taken for HDF5 files when looking for a damaged one (a file root is checked whatever its name).
_HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5")


def _hdf5_problem(path: Path, by_name: bool = True) -> str | None:
    """What is wrong with ``path`` as an HDF5 file, to follow its name in an error: it has the
    HDF5 signature but fails to open (truncated or damaged), or (``by_name``) it is named
    ``.h5``/``.hdf5`` but has no signature. None if it opens, or is neither."""
    try:
        if not h5py.is_hdf5(path):
            if by_name and path.suffix.lower() in _HDF5_SUFFIXES:
                return "is named like an HDF5 file but is not one (no HDF5 signature: empty, cut short or another format?)"
            return None
        with h5py.File(path, "r"):
            return None
    except (OSError, ValueError) as exc:
        return f"is an HDF5 file that cannot be opened (truncated or damaged?): {exc}"


def _damaged_hdf5(root: Path) -> list[tuple[Path, str]]:
    """(file, problem) of the HDF5 files at ``root`` that fail to open: ``root`` itself, or the
    ``.h5``/``.hdf5`` files directly in the folder ``root``. A truncated download looks like no
    format at all to ``detect``; this tells the user what is wrong with it instead."""
    if root.is_file():
        candidates = [root]
    else:
        try:
            candidates = sorted(p for p in root.iterdir() if p.suffix.lower() in _HDF5_SUFFIXES and p.is_file())
        except OSError:
            return []
    found = [(p, _hdf5_problem(p)) for p in candidates]
    return [(p, problem) for p, problem in found if problem is not None]


def _no_format_error(root: Path, registered: str) -> DataError:
    """The error for a path no format detects: a damaged HDF5 file there is named as such."""
    damaged = _damaged_hdf5(root)
    if damaged:
        path, problem = damaged[0]
        more = f" (and {len(damaged) - 1} more such file{'s' if len(damaged) > 2 else ''} in {str(root)!r})" if len(damaged) > 1 else ""
        return DataError(f"{str(path)!r} {problem}{more}")
    return DataError(
        f"{str(root)!r} is not in any registered dataset format (registered: {registered}; or {TOOLKIT_H5} for a "
        "toolkit HDF5 file); choose one with --format NAME (config: format = \"NAME\")"
    )


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
        DataError: ``root`` does not exist, or ``auto`` finds no format (naming an HDF5 file there that
            fails to open, e.g. a truncated download) or several.
        PluginError: ``fmt`` is not a registered format (the message lists the registered ones).
        ConfigError: ``options`` do not fit the format's loader (the message names the option).
    """
    root = Path(root)
    options = dict(options or {})
    if not root.exists():
        raise DataError(f"dataset path {str(root)!r} does not exist")
    if fmt == TOOLKIT_H5 or (fmt == "auto" and is_toolkit_h5(root)):
        if not is_toolkit_h5(root):
            problem = _hdf5_problem(root, by_name=False) if root.is_file() else None
            if problem is not None:
                raise DataError(f"{str(root)!r} {problem}")
            raise DataError(f"{str(root)!r} is not a toolkit HDF5 file (format attribute {FORMAT!r})")
        if options:
            raise ConfigError(f"dataset format {TOOLKIT_H5!r} takes no options, got {options}")
        return ToolkitH5Loader(root)
    if fmt == "auto":
        entries = registry.entries("dataset")
        matches = [e for e in entries if _detects(e.name, resolve(e.factory), root)]
        if not matches:
            raise _no_format_error(root, ", ".join(e.name for e in entries) or "none")
        if len(matches) > 1:
            raise DataError(
                f"{str(root)!r} looks like several dataset formats: {', '.join(e.name for e in matches)}; "
                "choose one with --format NAME (config: format = \"NAME\")"
            )
        entry = matches[0]
    else:
        entry = registry.get("dataset", fmt)
    return _build_loader(entry.name, resolve(entry.factory), options)
