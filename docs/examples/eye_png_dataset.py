"""An example dataset format for simgan-toolkit: eye PNGs listed in a labels.csv.

Layout::

    my_eyes/labels.csv      file,pitch_deg,yaw_deg   (one row per image)
    my_eyes/0001.png ...    grayscale or colour, any size (resized to 55x35)

Register it with an entry point in your package's pyproject.toml::

    [project.entry-points.simgan_toolkit]
    eye_png = "eye_png_dataset"

then ``simgan convert my_eyes eyes.h5`` (``--format auto`` finds it by its labels.csv) or
``data.target = "my_eyes"`` in a run's config.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from simgan_toolkit.data import DatasetLoader, Unit
from simgan_toolkit.errors import DataError
from simgan_toolkit.plugin import Register, hookimpl
from simgan_toolkit.task import LabelledImages


class EyePngLoader(DatasetLoader):
    """One unit per CSV row -> a (1, 1, 35, 55) image in [-1, 1] with gaze labels."""

    name = "eye_png"

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (1, 35, 55)  # the gaze task's ImageSpec

    @property
    def label_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"gaze": (3,), "pitch_yaw": (2,)}  # the gaze task's labels

    @classmethod
    def detect(cls, root: Path) -> bool:
        return (Path(root) / "labels.csv").is_file()  # cheap: a name, not contents

    def units(self, root: Path) -> list[Unit]:
        index = Path(root) / "labels.csv"
        if not index.is_file():
            raise DataError(f"{root}: no labels.csv (expected file,pitch_deg,yaw_deg rows)")
        with index.open(newline="") as f:
            rows = list(csv.DictReader(f))
        return [Unit(key=r["file"], path=Path(root) / r["file"], info=r) for r in rows]

    def unit_size(self, unit: Unit) -> int:
        return 1  # optional: lets --skip-bad say how many images it skipped

    def read_unit(self, unit: Unit) -> LabelledImages:
        # A truncated PNG raises OSError and a bad number ValueError: the toolkit turns both
        # into an error naming unit.path (or skips the unit with --skip-bad).
        with Image.open(unit.path) as img:
            pixels = np.asarray(img.convert("L").resize((55, 35), Image.BILINEAR), dtype=np.float32)
        pitch, yaw = math.radians(float(unit.info["pitch_deg"])), math.radians(float(unit.info["yaw_deg"]))
        gaze = [-math.cos(pitch) * math.sin(yaw), -math.sin(pitch), -math.cos(pitch) * math.cos(yaw)]
        return LabelledImages(
            torch.from_numpy(pixels / 127.5 - 1.0).view(1, 1, 35, 55),
            {"gaze": torch.tensor([gaze]), "pitch_yaw": torch.tensor([[pitch, yaw]])},
        )


@hookimpl
def simgan_register_datasets(register: Register) -> None:
    register.dataset("eye_png", EyePngLoader, description="labels.csv + eye PNGs (example)")
