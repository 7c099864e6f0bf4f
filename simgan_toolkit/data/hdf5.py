"""The toolkit's HDF5 layout for image datasets (synthetic, refined or real).

Layout (``FORMAT = "simgan-toolkit/images-1"``)::

    /images            float32 (N, C, H, W), chunked per block of images, lzf-compressed
    /labels/<name>     (N, ...) one dataset per label (absent for unlabelled data)
    attributes         format, kind ("synthetic" | "refined" | "real"), task, value_range,
                       created (UTC ISO time), toolkit_version, plus provenance given by the writer

Files are written to a temporary name and renamed when complete, so a crash never leaves a
truncated file under the final name.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch import Tensor

from simgan_toolkit.errors import DataError
from simgan_toolkit.io import atomic_path
from simgan_toolkit.task import LabelledImages

FORMAT = "simgan-toolkit/images-1"
_CHUNK_IMAGES = 256


def _attr_value(value: Any) -> Any:
    """HDF5 attributes hold scalars, strings and arrays; everything else is stored as JSON."""
    if isinstance(value, (str, int, float, bool, np.ndarray)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) for v in value):
        return np.asarray(value)
    return json.dumps(value, default=str)


def init_layout(f: h5py.File, image_shape: tuple[int, ...], label_shapes: dict[str, tuple[int, ...]], attrs: dict[str, Any]) -> None:
    """Create the empty, growable datasets and the standard attributes in a new file ``f``.

    Shared by :class:`H5ImageWriter` and the resumable converter
    (:func:`simgan_toolkit.data.convert.convert_dataset`), so both write the same layout.
    """
    f.create_dataset(
        "images", shape=(0, *image_shape), maxshape=(None, *image_shape), dtype="float32",
        chunks=(_CHUNK_IMAGES, *image_shape), compression="lzf",
    )
    group = f.create_group("labels")
    for name, shape in label_shapes.items():
        group.create_dataset(name, shape=(0, *shape), maxshape=(None, *shape), dtype="float32")
    f.attrs["format"] = FORMAT
    f.attrs["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    from simgan_toolkit import __version__

    f.attrs["toolkit_version"] = __version__
    set_attrs(f, attrs)


def set_attrs(f: h5py.File, attrs: dict[str, Any]) -> None:
    """Store provenance attributes (non-scalar values as arrays or JSON)."""
    for key, value in attrs.items():
        f.attrs[key] = _attr_value(value)


def append_rows(f: h5py.File, count: int, images: Tensor, labels: dict[str, Tensor], name: str | Path) -> int:
    """Write (n, C, H, W) ``images`` and their (n, ...) ``labels`` at row ``count``; returns the new count.

    The datasets are resized to exactly ``count + n`` rows, so rows past ``count`` left by an
    interrupted earlier write are overwritten or cut off. ``name`` is the file errors name.
    """
    image_shape = tuple(f["images"].shape[1:])
    label_names = set(f["labels"])
    if tuple(images.shape[1:]) != image_shape:
        raise DataError(f"{name}: images must be (n, {', '.join(map(str, image_shape))}), got {tuple(images.shape)}")
    if set(labels) != label_names:
        raise DataError(f"{name}: expected labels {sorted(label_names)}, got {sorted(labels)}")
    end = count + images.shape[0]
    ds = f["images"]
    ds.resize(end, axis=0)
    ds[count:end] = images.detach().float().cpu().numpy()
    for label, value in labels.items():
        lds = f["labels"][label]
        lds.resize(end, axis=0)
        lds[count:end] = value.detach().float().cpu().numpy()
    return end


class H5ImageWriter:
    """Streams batches into a new toolkit HDF5 file; the file appears only on :meth:`close`.

    Use as a context manager. If the block raises, nothing is written under ``path``.

    Args:
        path: destination file.
        image_shape: (C, H, W).
        label_shapes: label name -> per-image shape (e.g. ``{"gaze": (3,)}``).
        attrs: provenance attributes (see the module docstring).
    """

    def __init__(self, path: str | Path, image_shape: tuple[int, int, int], label_shapes: dict[str, tuple[int, ...]], attrs: dict[str, Any]) -> None:
        self.path = Path(path)
        self.image_shape = tuple(image_shape)
        self.label_shapes = {k: tuple(v) for k, v in label_shapes.items()}
        self.attrs = attrs
        self._count = 0
        self._ctx = atomic_path(self.path)
        self._file: h5py.File | None = None

    def __enter__(self) -> H5ImageWriter:
        tmp = self._ctx.__enter__()
        self._file = h5py.File(tmp, "w")
        init_layout(self._file, self.image_shape, self.label_shapes, self.attrs)
        return self

    def append(self, images: Tensor, labels: dict[str, Tensor] | None = None) -> None:
        """Append (n, C, H, W) images and their (n, ...) labels."""
        assert self._file is not None, "use H5ImageWriter as a context manager"
        self._count = append_rows(self._file, self._count, images, labels or {}, self.path)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        assert self._file is not None
        self._file.attrs["count"] = self._count
        self._file.close()
        self._ctx.__exit__(exc_type, exc, tb)


def write_images_h5(path: str | Path, data: LabelledImages, attrs: dict[str, Any]) -> None:
    """Write a whole :class:`LabelledImages` to ``path`` in the toolkit layout (atomically)."""
    label_shapes = {k: tuple(v.shape[1:]) for k, v in data.labels.items()}
    with H5ImageWriter(path, tuple(data.images.shape[1:]), label_shapes, attrs) as writer:  # type: ignore[arg-type]
        for start in range(0, len(data), 4096):
            chunk = data.subset(slice(start, start + 4096))
            writer.append(chunk.images, chunk.labels)


def _open(path: str | Path) -> h5py.File:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"HDF5 file {str(p)!r} does not exist")
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        raise DataError(f"{str(p)!r} is not a readable HDF5 file (truncated or another format?): {exc}") from None
    if "images" not in f:
        f.close()
        raise DataError(f"{str(p)!r}: no 'images' dataset; expected the simgan-toolkit layout ({FORMAT})")
    if f["images"].ndim != 4:
        shape = f["images"].shape
        f.close()
        raise DataError(f"{str(p)!r}: 'images' must be (N, C, H, W), got shape {shape}")
    return f


def read_attrs(path: str | Path) -> dict[str, Any]:
    """The file's attributes as Python values."""
    with _open(path) as f:
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in f.attrs.items()}


def iter_images_h5(path: str | Path, batch_size: int = 1024) -> Iterator[LabelledImages]:
    """Yield consecutive batches of images and labels without loading the whole file."""
    with _open(path) as f:
        n = f["images"].shape[0]
        labels = f.get("labels", {})
        for name in labels:
            if labels[name].shape[0] != n:
                raise DataError(f"{str(path)!r}: label {name!r} has {labels[name].shape[0]} rows, images have {n}")
        try:
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                yield LabelledImages(
                    torch.from_numpy(f["images"][start:stop]),
                    {name: torch.from_numpy(labels[name][start:stop]) for name in labels},
                )
        except OSError as exc:
            raise DataError(f"{str(path)!r}: cannot read rows {start}..{stop} (truncated file?): {exc}") from None


def count_images_h5(path: str | Path) -> int:
    """Number of images in the file."""
    with _open(path) as f:
        return int(f["images"].shape[0])


def read_images_h5(path: str | Path) -> LabelledImages:
    """Load a whole toolkit HDF5 file into memory."""
    parts = list(iter_images_h5(path, batch_size=8192))
    if not parts:
        raise DataError(f"{str(path)!r} holds no images")
    return LabelledImages(
        torch.cat([p.images for p in parts]),
        {k: torch.cat([p.labels[k] for p in parts]) for k in parts[0].labels},
    )
