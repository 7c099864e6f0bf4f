"""Kaggle "eye-gaze" (4quant) HDF5 files: ``gaze.h5`` (UnityEyes crops + look_vec) and
``real_gaze.h5`` (MPIIGaze crops, no labels).

Format (data-formats.md section 3, inferred from the code that reads these files): a group
``image`` of 2-D (35, 55) datasets, one per sample; ``gaze.h5`` adds ``look_vec`` (N, 3) or
(N, 4) and ``path`` (N,).

Member order. h5py lists group members in *string* order ("0", "1", "10", "11", "2"), so
members are sorted by :func:`member_order`, a natural sort (digit runs compared as numbers:
"img_2" before "img_10"), to line up with ``look_vec``'s rows. In a labelled file

- every member name must hold a number, and no two the same one: otherwise which row belongs
  to which image cannot be told, and the file is refused (a DataError naming it; its images can
  still be read unlabelled with format ``kaggle_real_gaze``);
- where ``path`` holds file names with numbers and they are the member names' numbers (each
  member ``.../N`` has a ``path`` row ``.../N.jpg``), the two orders must agree; if they do not,
  the file is refused rather than guessed.

Pixels: integer images must hold 0..255 intensities (the uint8 convention). Float images are
accepted only as 0..255 intensities too: a float image whose values all lie in [0, 1] (a
[0, 1]-scaled image) is refused rather than rescaled, as are negative values (a [-1, 1] image)
and values above 255.

Assumption (unverified, no original file was available): ``look_vec`` keeps UnityEyes'
convention (Unity camera space, **y up**), as these crops were made from UnityEyes output; it is
converted like UnityEyes' (y negated, w dropped). The option ``look_vec_y="down"`` takes it as
already in the OpenCV camera convention (y down) instead.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from simgan_gaze.datasets.conventions import (
    EYE_HEIGHT,
    EYE_WIDTH,
    EyeCropLoader,
    gaze_labels,
    intensities_to_unit_range,
    unity_to_camera,
)
from simgan_toolkit.data.loader import Unit, bool_option, int_option
from simgan_toolkit.errors import ConfigError, DataError
from simgan_toolkit.task import LabelledImages

_DIGITS = re.compile(r"(\d+)")
_SUFFIXES = (".h5", ".hdf5")
LOOK_VEC_Y = ("up", "down")


def _natural(name: str) -> tuple[Any, ...]:
    """``"img_10b"`` -> ``("img_", 10, "b")``: text and digit runs alternate, digits as numbers."""
    return tuple(int(part) if i % 2 else part for i, part in enumerate(_DIGITS.split(name)))


def member_order(name: str) -> tuple[tuple[Any, ...], str]:
    """Natural sort key: digit runs compare as numbers (``"2"`` before ``"10"``, ``"img_2"``
    before ``"img_10"``); ties (``"01"`` and ``"1"``) are broken by the text."""
    return (_natural(name), name)


def _number(text: str) -> int | None:
    """The last digit run of a file name's stem (``"imgs/12.jpg"`` -> 12), or None."""
    base = text.replace("\\", "/").rsplit("/", 1)[-1]
    stem = base.rsplit(".", 1)[0] if "." in base else base
    runs = _DIGITS.findall(stem)
    return int(runs[-1]) if runs else None


def _check_order(path: Path, names: list[str], f: Any) -> None:
    """Refuse a labelled file whose member order cannot be matched to the label rows (see the
    module docstring)."""
    import h5py

    unnumbered = [n for n in names if not _DIGITS.search(n)]
    if unnumbered:
        raise DataError(
            f"{path}: cannot tell which 'look_vec' row belongs to which image: member image/{unnumbered[0]} "
            f"(and {len(unnumbered) - 1} more) has no number in its name; read the images unlabelled with "
            "format 'kaggle_real_gaze'"
        )
    keys = [_natural(n) for n in names]
    for a, b in itertools.pairwise(keys):
        if a == b:
            clash = [n for n, k in zip(names, keys) if k == a]
            raise DataError(f"{path}: members image/{clash[0]} and image/{clash[1]} have the same number: "
                            "cannot tell which 'look_vec' row belongs to which")
    column = f.get("path")
    if not isinstance(column, h5py.Dataset) or column.ndim != 1 or column.dtype.kind not in "SOU":
        return
    try:
        rows = [r.decode("utf-8", "replace") if isinstance(r, bytes) else str(r) for r in column[()]]
    except (OSError, ValueError, TypeError):  # an odd 'path' column: nothing to cross-check
        return
    row_numbers = [_number(r) for r in rows]
    name_numbers = [int(_DIGITS.findall(n)[-1]) for n in names]
    if None in row_numbers or len(set(row_numbers)) != len(rows) or set(row_numbers) != set(name_numbers):
        return  # the names are not the file numbers of 'path': no cross-check possible
    row_of = {number: i for i, number in enumerate(row_numbers)}
    for i, (name, number) in enumerate(zip(names, name_numbers)):
        if row_of[number] != i:
            raise DataError(
                f"{path}: member order and 'path' disagree: image/{name} is sample {i} in name order, but "
                f"its number is that of path row {row_of[number]} ({rows[row_of[number]]!r}); cannot tell which "
                "'look_vec' row belongs to which image"
            )


def _open(path: Path) -> Any:
    import h5py

    try:
        return h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable HDF5 file (truncated or another format?): {exc}") from None


def _layout(path: Path) -> tuple[bool, bool]:
    """``(has an 'image' group, has 'look_vec')``; ``(False, False)`` for anything unreadable."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return isinstance(f.get("image"), h5py.Group), "look_vec" in f
    except (OSError, ValueError):
        return False, False


@dataclass(frozen=True)
class Chunk:
    """Members ``names`` (in sample order) starting at sample index ``start``."""

    start: int
    names: tuple[str, ...]


class KaggleGazeLoader(EyeCropLoader):
    """Kaggle ``gaze.h5`` -> (N, C, 35, 55) synthetic eyes in [-1, 1] with gaze labels.

    ``root`` is the ``.h5`` file, or a folder holding exactly one such file (one with a
    ``look_vec``; ``real_gaze.h5`` beside it is ignored). Units are chunks of ``chunk_size``
    samples in numeric member order, keyed ``"start:stop"``.

    Labels (per image):
        gaze: (3,) unit gaze vector, MPIIGaze/OpenCV camera convention (``look_vec`` with y
            negated, see the module docstring for the assumption).
        pitch_yaw: (2,) radians, ``pitch = asin(-y)``, ``yaw = atan2(-x, -z)``.

    No ``pupil_centre``: the file holds no landmarks.

    Args:
        chunk_size: samples per unit (an integer >= 1).
        rgb: return 3 identical channels (C=3) instead of C=1, for RGB tasks (true or false).
        look_vec_y: ``"up"`` (default): ``look_vec`` is in Unity camera space, y up, as UnityEyes
            writes it (the assumption, unverified); ``"down"``: it is already in the OpenCV
            camera convention (y down) and is taken as is.
    """

    name = "kaggle_gaze"
    #: Whether the file must hold (and the loader returns) ``look_vec`` labels.
    labelled: ClassVar[bool] = True

    def __init__(self, chunk_size: int = 1000, rgb: bool = False, look_vec_y: str = "up") -> None:
        self.chunk_size = int_option(self.name, "chunk_size", chunk_size, minimum=1)
        self.rgb = bool_option(self.name, "rgb", rgb)
        if not isinstance(look_vec_y, str) or look_vec_y not in LOOK_VEC_Y:
            raise ConfigError(f"{self.name}: option look_vec_y must be 'up' (Unity, the default) or 'down' (OpenCV), got {look_vec_y!r}")
        self.look_vec_y = look_vec_y

    @property
    def label_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"gaze": (3,), "pitch_yaw": (2,)} if self.labelled else {}

    @classmethod
    def _matches(cls, path: Path) -> bool:
        has_images, has_labels = _layout(path)
        return has_images and has_labels == cls.labelled

    @classmethod
    def _candidates(cls, folder: Path) -> list[Path]:
        return [p for p in sorted(folder.iterdir()) if p.suffix in _SUFFIXES and p.is_file() and cls._matches(p)]

    @classmethod
    def detect(cls, root: Path) -> bool:
        """An HDF5 file with an ``image`` group (and ``look_vec`` exactly when labelled), or a
        folder holding one."""
        root = Path(root)
        if root.is_file():
            return root.suffix in _SUFFIXES and cls._matches(root)
        return root.is_dir() and len(cls._candidates(root)) == 1

    def _resolve(self, root: Path) -> Path:
        if root.is_file():
            return root
        if not root.is_dir():
            raise DataError(f"{root}: no such file or folder")
        found = self._candidates(root)
        if len(found) != 1:
            kind = "with 'image' and 'look_vec'" if self.labelled else "with 'image' and no 'look_vec'"
            listed = ", ".join(p.name for p in found) or "none"
            raise DataError(f"{root}: expected exactly one .h5 file {kind} (found: {listed}); pass the file itself")
        return found[0]

    def units(self, root: Path) -> list[Unit]:
        import h5py

        path = self._resolve(Path(root))
        with _open(path) as f:
            group = f.get("image")
            if not isinstance(group, h5py.Group):
                raise DataError(f"{path}: no 'image' group; expected the Kaggle eye-gaze layout (image/<n> datasets)")
            names = sorted(group.keys(), key=member_order)
            if self.labelled:
                look = f.get("look_vec")
                if not isinstance(look, h5py.Dataset):
                    raise DataError(f"{path}: no 'look_vec' dataset; an unlabelled file (real_gaze.h5) is read "
                                    "with format 'kaggle_real_gaze'")
                if look.ndim != 2 or look.shape[1] not in (3, 4) or look.shape[0] != len(names):
                    raise DataError(f"{path}: 'look_vec' must have shape ({len(names)}, 3) or ({len(names)}, 4) "
                                    f"for {len(names)} images, got {look.shape}")
            if isinstance(f.get("path"), h5py.Dataset) and len(f["path"]) != len(names):
                raise DataError(f"{path}: 'path' has {len(f['path'])} rows for {len(names)} images")
            if self.labelled:
                _check_order(path, names, f)
        return [
            Unit(f"{start}:{start + len(chunk)}", path, Chunk(start, tuple(chunk)))
            for start in range(0, len(names), self.chunk_size)
            for chunk in [names[start : start + self.chunk_size]]
        ]

    def unit_size(self, unit: Unit) -> int:
        return len(unit.info.names)

    def _image(self, data: np.ndarray, where: str) -> np.ndarray:
        """One member -> (C, 35, 55) float64 0..255 (see the module docstring for the dtypes)."""
        stored = data.shape
        if data.ndim == 2:
            data = data[None]
        elif data.ndim == 3 and data.shape[2] in (1, 3):
            data = np.moveaxis(data, 2, 0)
        if data.shape[1:] != (EYE_HEIGHT, EYE_WIDTH) or data.dtype.kind not in "uif":
            raise DataError(f"{where}: expected a ({EYE_HEIGHT}, {EYE_WIDTH}) numeric image, got {stored} {data.dtype}")
        pixels = data.astype(np.float64)
        if not pixels.size:
            return pixels
        if not np.isfinite(pixels).all():
            raise DataError(f"{where}: non-finite pixel values (NaN or inf)")
        low, high = pixels.min(), pixels.max()
        if low < 0 or high > 255:
            raise DataError(f"{where}: values must be 0..255 intensities (uint8 convention), got {low:g}..{high:g} "
                            f"({data.dtype})")
        if data.dtype.kind == "f" and high <= 1.0:
            raise DataError(f"{where}: a {data.dtype} image with values in {low:g}..{high:g} looks scaled to [0, 1]; "
                            "this format takes 0..255 intensities (uint8, or floats holding 0..255)")
        return pixels

    def read_unit(self, unit: Unit) -> LabelledImages:
        import h5py
        from kornia.color import rgb_to_grayscale

        chunk: Chunk = unit.info
        stop = chunk.start + len(chunk.names)
        with _open(unit.path) as f:
            try:
                images = []
                for name in chunk.names:
                    member = f["image"][name]
                    if not isinstance(member, h5py.Dataset):
                        raise DataError(f"{unit.path}: image/{name} is a {type(member).__name__}, expected a dataset")
                    pixels = torch.from_numpy(self._image(member[()], f"{unit.path}: image/{name}"))
                    if pixels.shape[0] == 3 and not self.rgb:
                        pixels = rgb_to_grayscale(pixels[None] / 255.0)[0] * 255.0
                    elif pixels.shape[0] == 1 and self.rgb:
                        pixels = pixels.expand(3, -1, -1)
                    images.append(pixels)
                look = f["look_vec"][chunk.start : stop] if self.labelled else None
            except (OSError, KeyError, ValueError) as exc:
                raise DataError(f"{unit.path}: cannot read samples {unit.key} (truncated or corrupt?): {exc}") from None
        batch = torch.stack(images) if images else torch.zeros(0, *self.image_shape, dtype=torch.float64)
        labels = {}
        if look is not None:
            vectors = torch.from_numpy(np.asarray(look, dtype=np.float64))
            gaze = unity_to_camera(vectors) if self.look_vec_y == "up" else vectors[:, :3]
            labels = gaze_labels(gaze, f"{unit.path}: look_vec")
        return LabelledImages(intensities_to_unit_range(batch), labels)


class KaggleRealGazeLoader(KaggleGazeLoader):
    """Kaggle ``real_gaze.h5`` -> (N, C, 35, 55) real eyes in [-1, 1], unlabelled.

    ``root`` is the ``.h5`` file, or a folder holding exactly one file with an ``image`` group
    and no ``look_vec`` (so ``gaze.h5`` beside it is ignored). Passing ``gaze.h5`` itself reads
    its images and ignores its labels. Options as :class:`KaggleGazeLoader`.
    """

    name = "kaggle_real_gaze"
    labelled = False
