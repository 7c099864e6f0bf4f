"""A tiny fake dataset format for the reading, convert, CLI and pipeline tests.

Format ``npz``: a folder holding a ``NPZ_DATASET`` marker file and one ``uNN.npz`` per unit,
each with ``images`` (n, C, H, W), uint8 0..255 (scaled to [-1, 1]) or float32 (taken as
is), and the label ``y`` (n, 2).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from simgan_toolkit.data.loader import DatasetLoader, Unit
from simgan_toolkit.errors import DataError
from simgan_toolkit.plugin import Register, Registry
from simgan_toolkit.task import LabelledImages

MARKER = "NPZ_DATASET"


class NpzLoader(DatasetLoader):
    """The fake format. ``reads`` records the unit keys read; ``interrupt_at`` / ``fail_at``
    make reading that unit raise KeyboardInterrupt / RuntimeError (an interrupted conversion)."""

    name = "npz"
    interrupt_at: str | None = None
    fail_at: str | None = None

    def __init__(self, channels: int = 1, height: int = 12, width: int = 16) -> None:
        self._shape = (channels, height, width)
        self.reads: list[str] = []

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self._shape

    @property
    def label_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"y": (2,)}

    @classmethod
    def detect(cls, root: Path) -> bool:
        return (Path(root) / MARKER).is_file()

    def units(self, root: Path) -> list[Unit]:
        if not Path(root).is_dir():
            raise DataError(f"{root}: not an npz dataset folder")
        return [Unit(p.stem, p) for p in sorted(Path(root).glob("*.npz"))]

    def read_unit(self, unit: Unit) -> LabelledImages:
        self.reads.append(unit.key)
        if unit.key == self.interrupt_at:
            raise KeyboardInterrupt
        if unit.key == self.fail_at:
            raise RuntimeError("simulated failure")
        # Our own file handle: np.load leaks its own when the file is not a valid .npz.
        with open(unit.path, "rb") as fh, np.load(fh) as z:
            raw, y = z["images"], z["y"]
        images = torch.from_numpy(raw.astype(np.float32) / 127.5 - 1 if raw.dtype == np.uint8 else raw)
        return LabelledImages(images, {"y": torch.from_numpy(y)})


class OtherLoader(NpzLoader):
    """A second format that recognises the same folders (for 'several formats match')."""

    name = "npz_other"


def write_unit(root: Path, key: str, images: np.ndarray, y: np.ndarray | None = None) -> Path:
    """One unit file; ``y`` defaults to (row, row + 0.5) per image."""
    n = images.shape[0]
    if y is None:
        y = np.stack([np.arange(n), np.arange(n) + 0.5], axis=1).astype(np.float32)
    path = root / f"{key}.npz"
    np.savez(path, images=images, y=y)
    return path


def write_dataset(root: Path, counts: list[int], shape: tuple[int, int, int] = (1, 12, 16), seed: int = 0) -> LabelledImages:
    """Units u00, u01, ... holding ``counts[i]`` random uint8 images; returns what they decode to."""
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text("")
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for i, n in enumerate(counts):
        raw = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
        y = rng.normal(size=(n, 2)).astype(np.float32)
        write_unit(root, f"u{i:02d}", raw, y)
        images.append(raw.astype(np.float32) / 127.5 - 1)
        labels.append(y)
    return LabelledImages(torch.from_numpy(np.concatenate(images)), {"y": torch.from_numpy(np.concatenate(labels))})


def make_registry(*loader_classes: type[DatasetLoader]) -> Registry:
    """A fresh registry holding only these dataset formats."""
    registry = Registry()
    register = Register(registry, "tests")
    for cls in loader_classes or (NpzLoader,):
        register.dataset(cls.name, cls, description=f"test format {cls.name}")
    return registry


@pytest.fixture
def npz() -> SimpleNamespace:
    """The fake format: ``npz.Loader``, ``npz.Other``, ``npz.write(root, counts)``, ``npz.unit(...)``, ``npz.registry(...)``."""
    return SimpleNamespace(
        Loader=NpzLoader, Other=OtherLoader, write=write_dataset, unit=write_unit, registry=make_registry, marker=MARKER
    )
