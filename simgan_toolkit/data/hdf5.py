"""The toolkit's HDF5 layout for image datasets (synthetic, refined or real).

Layout (``FORMAT = "simgan-toolkit/images-1"``)::

    /images            float32 (N, C, H, W), chunked per block of images, lzf-compressed
    /labels/<name>     (N, ...) one dataset per label (absent for unlabelled data)
    attributes         format, kind ("synthetic" | "refined" | "real"), task, value_range,
                       created (UTC ISO time), toolkit_version, plus provenance given by the writer

Files are written to a temporary name and renamed when complete, so a crash never leaves a
truncated file under the final name; a full disk is a one-line error, not a crash of HDF5.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch import Tensor

from simgan_toolkit.errors import DataError
from simgan_toolkit.io import atomic_path, write_error
from simgan_toolkit.task import LabelledImages

FORMAT = "simgan-toolkit/images-1"
_CHUNK_IMAGES = 256


def attr_value(value: Any) -> Any:
    """``value`` as :func:`set_attrs` stores it: HDF5 attributes hold scalars, strings and arrays;
    everything else is stored as JSON."""
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
        f.attrs[key] = attr_value(value)


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


class WriteGuard:
    """A binary file for h5py's ``fileobj`` driver that survives a write the filesystem refuses.

    HDF5 does not recover from a failed write (e.g. errno 28, disk full): the block stays dirty
    in its cache, every later flush fails again, and closing the file, or the interpreter's
    exit, ends in a segmentation fault. Through this file a failed write is recorded in
    :attr:`error` instead, and it and every later write or truncation is kept in memory (the
    file is discarded anyway), so HDF5 sees only successes, reads back what it wrote and closes
    cleanly. The caller checks :attr:`error` after each step and stops.
    """

    def __init__(self, path: str | Path) -> None:
        # Unbuffered: an error surfaces at the write that causes it, not at some later flush.
        self._file = open(path, "r+b", buffering=0)  # noqa: SIM115 (closed by close())
        self._fd = self._file.fileno()
        self._pos = 0
        self.error: OSError | None = None
        # After the failure: the writes since, as (offset, data); where a truncation cut the
        # file on disk; the file's length as HDF5 sees it.
        self._late: list[tuple[int, bytes]] = []
        self._cut: int | None = None
        self._length = 0

    def write(self, data: Any) -> int:
        """Write at the current position (``pwrite``, looping over partial writes)."""
        view = memoryview(data).cast("B")
        if self.error is None:
            try:
                done = 0
                while done < len(view):
                    done += os.pwrite(self._fd, view[done:], self._pos + done)
            except OSError as exc:
                self.error = exc
                self._length = self._disk_end()
        if self.error is not None:
            self._late.append((self._pos, view.tobytes()))
            self._length = max(self._length, self._pos + len(view))
        self._pos += len(view)
        return len(view)

    def _disk_end(self) -> int:
        size = os.fstat(self._fd).st_size
        return size if self._cut is None else min(size, self._cut)

    def _end(self) -> int:
        return self._disk_end() if self.error is None else self._length

    def readinto(self, buffer: Any) -> int:
        """Read at the current position; what was written after a failure comes from memory."""
        out = memoryview(buffer).cast("B")
        want = max(0, min(len(out), self._end() - self._pos))
        data = os.pread(self._fd, max(0, min(want, self._disk_end() - self._pos)), self._pos)
        out[: len(data)] = data
        out[len(data) : want] = bytes(want - len(data))  # past the disk's end: zeros, unless written below
        for offset, late in self._late:
            lo, hi = max(offset, self._pos), min(offset + len(late), self._pos + want)
            if lo < hi:
                out[lo - self._pos : hi - self._pos] = late[lo - offset : hi - offset]
        self._pos += want
        return want

    def read(self, size: int = -1) -> bytes:
        buffer = bytearray(max(0, self._end() - self._pos) if size < 0 else size)
        return bytes(buffer[: self.readinto(buffer)])

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._end()}[whence]
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def truncate(self, size: int | None = None) -> int:
        size = self._pos if size is None else size
        if self.error is None:
            try:
                os.ftruncate(self._fd, size)
                return size
            except OSError as exc:
                self.error = exc
                self._length = self._disk_end()
        self._cut = size if self._cut is None else min(self._cut, size)
        self._late = [(offset, late[: size - offset]) for offset, late in self._late if offset < size]
        self._length = size
        return size

    def flush(self) -> None:
        """Nothing to flush: writes are unbuffered."""

    def close(self) -> None:
        self._late.clear()
        self._file.close()


class H5ImageWriter:
    """Streams batches into a new toolkit HDF5 file; the file appears only on :meth:`close`.

    Use as a context manager. If the block raises, nothing is written under ``path``. A write
    the filesystem refuses (a full disk) raises a one-line DataError naming ``path`` ("no space
    left on device") and leaves no temporary file (see :class:`WriteGuard`).

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
        self._guard: WriteGuard | None = None
        self._file: h5py.File | None = None

    def __enter__(self) -> H5ImageWriter:
        tmp = self._ctx.__enter__()
        try:
            self._guard = WriteGuard(tmp)
            self._file = h5py.File(self._guard, "w")
            init_layout(self._file, self.image_shape, self.label_shapes, self.attrs)
            self._raise_if_refused()
        except BaseException as exc:
            self.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    def append(self, images: Tensor, labels: dict[str, Tensor] | None = None) -> None:
        """Append (n, C, H, W) images and their (n, ...) labels."""
        assert self._file is not None, "use H5ImageWriter as a context manager"
        self._count = append_rows(self._file, self._count, images, labels or {}, self.path)
        self._raise_if_refused()

    def _raise_if_refused(self) -> None:
        if self._guard is not None and self._guard.error is not None:
            raise write_error(self.path, self._guard.error)

    def _close_file(self, complete: bool) -> None:
        """Close the HDF5 file (recording the count if ``complete``), then the file under it."""
        try:
            if self._file is not None:
                if complete:
                    self._file.attrs["count"] = self._count
                self._file.close()
        finally:
            if self._guard is not None:
                self._guard.close()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        failure: BaseException | None = None
        try:
            self._close_file(complete=exc is None)
        except Exception as close_exc:  # after the block's own error, that one is the one to report
            failure = None if exc is not None else close_exc
        guard, self._file, self._guard = self._guard, None, None
        if exc is None and failure is None and guard is not None and guard.error is not None:
            failure = write_error(self.path, guard.error)  # e.g. the disk filled up as the file closed
        if failure is not None:
            self._ctx.__exit__(type(failure), failure, failure.__traceback__)  # removes the temporary file
            raise failure
        self._ctx.__exit__(exc_type, exc, tb)


def write_images_h5(path: str | Path, data: LabelledImages, attrs: dict[str, Any]) -> None:
    """Write a whole :class:`LabelledImages` to ``path`` in the toolkit layout (atomically)."""
    label_shapes = {k: tuple(v.shape[1:]) for k, v in data.labels.items()}
    with H5ImageWriter(path, tuple(data.images.shape[1:]), label_shapes, attrs) as writer:  # type: ignore[arg-type]
        for start in range(0, len(data), 4096):
            chunk = data.subset(slice(start, start + 4096))
            writer.append(chunk.images, chunk.labels)


def open_images_h5(path: str | Path) -> h5py.File:
    """``path`` opened read-only, checked to hold (N, C, H, W) ``images``; the caller closes it.

    Raises:
        DataError: naming ``path``: missing, not HDF5 (or truncated), or without 4-d ``images``.
    """
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
    with open_images_h5(path) as f:
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in f.attrs.items()}


def iter_images_h5(path: str | Path, batch_size: int = 1024) -> Iterator[LabelledImages]:
    """Yield consecutive batches of images and labels without loading the whole file."""
    with open_images_h5(path) as f:
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
    with open_images_h5(path) as f:
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
