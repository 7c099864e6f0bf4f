"""The dataset-loader interface: how an on-disk dataset format becomes toolkit images.

A loader reads one format (UnityEyes, MPIIGaze, NYU Hand, ...) and is registered through the
``simgan_register_datasets`` hook, so third parties add formats the same way the built-in
plugins do. The toolkit drives every loader the same way:

1. :meth:`DatasetLoader.units` lists the *units* of a dataset root, cheaply (file names only):
   the smallest pieces that can be read, and skipped, on their own (a JSON+JPEG pair, a
   ``.mat`` day file, one NYU frame).
2. :meth:`DatasetLoader.read_unit` decodes one unit into a :class:`LabelledImages` of zero or
   more samples, or raises :class:`~simgan_toolkit.errors.DataError` naming the file and what was
   expected.

:func:`simgan_toolkit.data.reading.iter_units` reads units that way, checked and with
``--skip-bad`` counting, for :func:`~simgan_toolkit.data.reading.read_dataset`,
:func:`~simgan_toolkit.data.reading.sample_dataset` and ``simgan convert`` (resumable and atomic
HDF5 output, which records the size and modification time of every file
:meth:`DatasetLoader.unit_files` names, to notice changed input).
"""

from __future__ import annotations

import numbers
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from simgan_toolkit.errors import ConfigError
from simgan_toolkit.task import LabelledImages


@dataclass(frozen=True)
class Unit:
    """One independently readable piece of a dataset.

    Attributes:
        key: stable identifier, unique within the dataset (used to resume a conversion).
        path: the file an error should name (the main file of the unit).
        info: loader-private data (e.g. the index of a frame inside a shared label file).
    """

    key: str
    path: Path
    info: Any = None


class DatasetLoader(ABC):
    """Reads one dataset format. Subclasses set :attr:`name` and implement the three methods.

    Images come out as float32 (N, C, H, W) in [-1, 1] with the shape of
    :attr:`image_shape`; labels as a dict of (N, ...) tensors with the shapes of
    :attr:`label_shapes` (empty for unlabelled data). Keyword options of the constructor
    (``rgb``, ``split``, ...) are the loader's own and are documented on its class.
    """

    #: The name ``--format`` and configs use.
    name: ClassVar[str] = ""

    @property
    @abstractmethod
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of every image this loader returns."""

    @property
    def label_shapes(self) -> dict[str, tuple[int, ...]]:
        """Label name -> per-image shape; empty for unlabelled data."""
        return {}

    @classmethod
    def detect(cls, root: Path) -> bool:
        """Whether ``root`` looks like this format (cheap: names, not contents)."""
        return False

    @abstractmethod
    def units(self, root: Path) -> list[Unit]:
        """The readable units under ``root`` in a stable order.

        Raises :class:`~simgan_toolkit.errors.DataError` if ``root`` is not this format at all
        (missing folder or index file), naming what was expected.
        """

    @abstractmethod
    def read_unit(self, unit: Unit) -> LabelledImages:
        """Decode one unit; raise :class:`~simgan_toolkit.errors.DataError` naming the file.

        A bad file should be a DataError; the toolkit also takes OSError, ValueError, KeyError,
        EOFError and zlib/zip errors for one. Any other exception (TypeError, IndexError, ...)
        is taken for a bug in the loader and propagates, even with ``--skip-bad``.
        """

    def unit_size(self, unit: Unit) -> int | None:
        """Images ``unit`` holds if known without reading it (e.g. 1 per frame), else None.

        Only used to report how many images skipped units held; the default is None (unknown).
        """
        return None

    def unit_files(self, unit: Unit) -> list[Path]:
        """The files :meth:`read_unit` reads for ``unit``; the default is ``[unit.path]``.

        ``simgan convert`` records their size and modification time, so that a finished or
        interrupted conversion made from other versions of them is noticed. List every file
        whose change changes the unit's images or labels, shared ones too (a label file read by
        every unit); a file that does not exist is recorded as missing.
        """
        return [unit.path]


# --------------------------------------------------------------------------------------------
# Option checks for loader constructors: options come from TOML configs and ``--option KEY=VALUE``,
# so ``rgb = "false"`` (a string) must not become ``bool("false") == True``.
# --------------------------------------------------------------------------------------------


def bool_option(fmt: str, name: str, value: Any) -> bool:
    """``value`` if it is a real bool (numpy's too), else a ConfigError naming ``fmt`` and ``name``."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return bool(value)
    hint = " (a string: write true or false without quotes)" if isinstance(value, str) else ""
    raise ConfigError(f"dataset format {fmt!r}: option {name} must be true or false, got {value!r}{hint}")


def int_option(fmt: str, name: str, value: Any, minimum: int | None = None) -> int:
    """``value`` if it is an integer (not a bool) >= ``minimum``, else a ConfigError naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"dataset format {fmt!r}: option {name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"dataset format {fmt!r}: option {name} must be >= {minimum}, got {value!r}")
    return int(value)
