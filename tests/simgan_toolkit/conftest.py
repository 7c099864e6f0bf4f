"""A tiny fake dataset format for the reading, convert, CLI and pipeline tests, and a tiny task
(``spot``) that core tests build on instead of the gaze and hand plugins.

Format ``npz``: a folder holding a ``NPZ_DATASET`` marker file and one ``uNN.npz`` per unit,
each with ``images`` (n, C, H, W), uint8 0..255 (scaled to [-1, 1]) or float32 (taken as
is), and the label ``y`` (n, 2).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from simgan_toolkit.data.loader import DatasetLoader, Unit
from simgan_toolkit.errors import DataError
from simgan_toolkit.plugin import Register, Registry, hookimpl
from simgan_toolkit.task import ImageSpec, LabelledImages, MetricSpec, Task, seeded_generator

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


# --- a tiny task of the tests' own ----------------------------------------------------------
# Core tests build on this, not on the gaze or hand plugins: core must work for any domain.

SPOT_H, SPOT_W = 12, 16


def draw_spots(n: int, generator: torch.Generator, device: torch.device, blur: float = 1.0) -> LabelledImages:
    """(n, 1, 12, 16) images of one bright Gaussian spot on -1, label ``y`` (n, 2) = its (x, y) in pixels."""
    centre = torch.rand(n, 2, generator=generator, device=device) * torch.tensor([SPOT_W - 1, SPOT_H - 1], device=device)
    ys = torch.arange(SPOT_H, device=device, dtype=torch.float32)[None, :, None]
    xs = torch.arange(SPOT_W, device=device, dtype=torch.float32)[None, None, :]
    d2 = (xs - centre[:, 0, None, None]) ** 2 + (ys - centre[:, 1, None, None]) ** 2
    images = torch.exp(-d2 / (2 * blur**2)) * 2 - 1
    return LabelledImages(images[:, None], {"y": centre})


class SpotTask(Task):
    """A task of milliseconds: locate one spot in a 12x16 image (simulator: sharp; target: blurred)."""

    name = "tiny_spot"

    @property
    def image_spec(self) -> ImageSpec:
        return ImageSpec(channels=1, height=SPOT_H, width=SPOT_W)

    def synthetic(self, n: int, seed: int, device: torch.device) -> LabelledImages:
        return draw_spots(n, seeded_generator(seed, device), device)

    def target(self, n: int, seed: int, device: torch.device) -> Tensor:
        return self.target_labelled(n, seed, device).images

    def target_labelled(self, n: int, seed: int, device: torch.device) -> LabelledImages:
        return draw_spots(n, seeded_generator(seed, device), device, blur=2.0)

    def profiles(self) -> dict[str, dict[str, Any]]:
        tiny = {
            "refiner": {"width": 4, "blocks": 1, "output": "residual"},
            "discriminator": {"layers": ["conv3s2-8", "conv1-2"]},
            "train": {"batch_size": 4, "refiner_pretrain_steps": 2, "discriminator_pretrain_steps": 2, "steps": 2,
                      "history_size": 8, "log_every": 1, "sample_every": 2, "checkpoint_every": 2},
            "data": {"n_synthetic": 16, "n_target": 16, "n_test": 8, "n_target_train": 16},
            "estimator": {"name": "tiny_linear", "steps": 3, "batch_size": 4},
        }
        return {"smoke": tiny, "default": tiny}

    @property
    def estimator_output_dim(self) -> int:
        return 2

    @property
    def estimator_labels(self) -> dict[str, tuple[int, ...]]:
        return {"y": (2,)}

    def estimator_loss(self, prediction: Tensor, labels: dict[str, Tensor]) -> Tensor:
        return F.mse_loss(prediction, labels["y"])

    def estimator_metrics(self, prediction: Tensor, labels: dict[str, Tensor]) -> dict[str, float]:
        return {"error_px": float((prediction - labels["y"]).norm(dim=1).mean())}

    @property
    def primary_metric(self) -> MetricSpec:
        return MetricSpec("error_px", lower_is_better=True, unit="px")

    def label_preservation(self, synthetic: LabelledImages, refined: Tensor) -> dict[str, float]:
        return {"mean_abs_pixel_change": float((refined - synthetic.images).abs().mean())}


class TinyLinear(nn.Module):
    """The tiny task's estimator: a linear map of the flattened image."""

    def __init__(self, image_spec: ImageSpec, output_dim: int) -> None:
        super().__init__()
        self.head = nn.Linear(image_spec.channels * image_spec.height * image_spec.width, output_dim)

    def features(self, x: Tensor) -> Tensor:
        return x

    def forward(self, x: Tensor) -> Tensor:
        return self.head(x.flatten(1))


class SpotPlugin:
    """Registers ``tiny_spot`` and ``tiny_linear``, as a third-party plugin would."""

    @hookimpl
    def simgan_register_tasks(self, register: Register) -> None:
        register.task("tiny_spot", SpotTask, description="tests: one spot in 12x16, sharp vs blurred")

    @hookimpl
    def simgan_register_estimators(self, register: Register) -> None:
        register.estimator("tiny_linear", TinyLinear, description="tests: a linear head")


@pytest.fixture
def spot() -> SimpleNamespace:
    """The tests' own task: ``spot.Task``, ``spot.draw(n, generator, device, blur)``, ``spot.plugin`` and
    ``spot.registry()`` (a registry holding only it and its estimator; no entry points loaded)."""
    from simgan_toolkit.plugin import PluginManager

    return SimpleNamespace(
        Task=SpotTask, draw=draw_spots, plugin=SpotPlugin,
        registry=lambda: PluginManager(load_entry_points=False, plugins=[("tiny_spot", SpotPlugin())]).registry,
    )
