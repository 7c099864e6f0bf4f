"""Fabricate tiny look-alike files of the gaze datasets, in their exact on-disk formats
(data-formats.md 1.6, 2.5 and 3).

Each fixture returns a writer function so tests choose sizes and values.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import scipy.io
from PIL import Image

#: The section 1.4 sample gaze (Unity camera space, y up): pitch +22.8 deg, yaw -21.7 deg.
SAMPLE_LOOK_VEC = (0.3404, 0.3879, -0.8566)
#: Scene geometry at 640x480, in screen pixels relative to the eyeball centre (frame centre);
#: scaled by width / 640 for other resolutions, like a re-rendered scene.
EYE_HALF_WIDTH, EYE_HALF_HEIGHT = 60.0, 25.0
CARUNCLE_OFFSET, CARUNCLE_RADIUS = -68.0, 3.0
PUPIL_OFFSET = (15.0, 5.0)  # right of and *above* the eye centre (screen y points up)
IRIS_RADIUS, DOT_RADIUS = 12.0, 6.0
BACKGROUND, DOT = 50, 250


def _circle(cx: float, cy: float, rx: float, ry: float, n: int, start: float = 0.0) -> list[tuple[float, float]]:
    """n points on an ellipse, starting at angle ``start`` and going counter-clockwise."""
    return [(cx + rx * math.cos(start + 2 * math.pi * i / n), cy + ry * math.sin(start + 2 * math.pi * i / n)) for i in range(n)]


def _fmt(points: Sequence[tuple[float, float]], z: float = 9.0) -> list[str]:
    return [f"({x:.4f}, {y:.4f}, {z:.4f})" for x, y in points]


def unityeyes_json(width: int, height: int, look_vec: Sequence[float] = SAMPLE_LOOK_VEC) -> dict[str, Any]:
    """A UnityEyes JSON document (all values strings) for the test scene at ``width x height``.

    The eyelid margin is an ellipse centred on the frame centre whose index 8 is the rightmost
    point (the outer corner); the caruncle sits left of it; the iris is a circle around the
    pupil. Crop width = 1.5 * (60 + 68) * k = 192 k, with k = width / 640.
    """
    k = width / 640
    cx, cy = width / 2, height / 2
    px, py = cx + PUPIL_OFFSET[0] * k, cy + PUPIL_OFFSET[1] * k
    return {
        "interior_margin_2d": _fmt(_circle(cx, cy, EYE_HALF_WIDTH * k, EYE_HALF_HEIGHT * k, 16, start=math.pi)),
        "caruncle_2d": _fmt(_circle(cx + CARUNCLE_OFFSET * k, cy, CARUNCLE_RADIUS * k, CARUNCLE_RADIUS * k, 7)),
        "iris_2d": _fmt(_circle(px, py, IRIS_RADIUS * k, IRIS_RADIUS * k, 32)),
        "eye_details": {
            "look_vec": "({:.4f}, {:.4f}, {:.4f}, 0.0000)".format(*look_vec),
            "pupil_size": "0.1020631",
            "iris_size": "0.9349335",
            "iris_texture": "eyeball_brown",
        },
        "lighting_details": {
            "skybox_texture": "bergen_2k",
            "skybox_exposure": "1.191213",
            "skybox_rotation": "231",
            "ambient_intensity": "1.15163",
            "light_rotation": "(30.0, 248.5, 0.0)",
            "light_intensity": "0.8451564",
        },
        "eye_region_details": {
            "pca_shape_coeffs": ["-0.01061361"] + [f"{0.01 * i:.6f}" for i in range(1, 19)] + ["1.924006E-17"],
            "primary_skin_texture": "f02_color",
        },
        "head_pose": "(355.0770, 203.8451, 0.0000)",
    }


def unityeyes_image(width: int, height: int, colour: tuple[int, int, int] = (DOT, DOT, DOT)) -> np.ndarray:
    """(H, W, 3) uint8 frame: flat background and a bright disc centred on the pupil."""
    k = width / 640
    # Screen (bottom-left origin, pixel i covers [i, i+1]) -> image pixel centres.
    px = width / 2 + PUPIL_OFFSET[0] * k - 0.5
    py = height - (height / 2 + PUPIL_OFFSET[1] * k) - 0.5
    ys, xs = np.mgrid[0:height, 0:width]
    frame = np.full((height, width, 3), BACKGROUND, dtype=np.uint8)
    frame[(xs - px) ** 2 + (ys - py) ** 2 <= (DOT_RADIUS * k) ** 2] = colour
    return frame


WriteFrame = Callable[..., Path]


@pytest.fixture
def write_unityeyes() -> WriteFrame:
    """``write(folder, n, width=640, height=480, doc=None, image=None)`` -> path of ``n.json``.

    Writes ``folder/n.json`` (SimpleJSON style: 2-space indent) and ``folder/n.jpg`` (quality 95).
    """

    def write(folder: Path, n: int, width: int = 640, height: int = 480, doc: dict | None = None,
              image: np.ndarray | None = None) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        doc = unityeyes_json(width, height) if doc is None else doc
        path = folder / f"{n}.json"
        path.write_text(json.dumps(doc, indent=2))
        frame = unityeyes_image(width, height) if image is None else image
        Image.fromarray(frame).save(folder / f"{n}.jpg", quality=95)
        return path

    return write


WriteDay = Callable[..., Path]


def day_arrays(n: int, seed: int) -> dict[str, np.ndarray]:
    """Random but valid arrays of one eye side: gaze (n, 3) unit with z < 0, image, pose."""
    rng = np.random.default_rng(seed)
    gaze = rng.normal(size=(n, 3)) * 0.2 + np.array([0.0, 0.0, -1.0])
    gaze /= np.linalg.norm(gaze, axis=1, keepdims=True)
    return {
        "gaze": gaze,
        "image": rng.integers(0, 256, size=(n, 36, 60), dtype=np.uint8),
        "pose": rng.normal(size=(n, 3)) * 0.1,
    }


@pytest.fixture
def write_mpiigaze_day() -> WriteDay:
    """``write(root, person, day, n=3, left=None, right=None, seed=0)`` -> the ``.mat`` path.

    Writes ``root/Data/Normalized/pXX/dayYY.mat`` as ``scipy.io.savemat`` of
    ``{'data': {'left': E, 'right': E}, 'filenames': F}``, E keyed in the order gaze, image,
    pose, F an (n, 1) object array of ``'%04d.jpg'``. ``left``/``right`` override arrays.
    """

    def write(root: Path, person: int, day: int, n: int = 3, left: dict | None = None,
              right: dict | None = None, seed: int = 0) -> Path:
        folder = root / "Data" / "Normalized" / f"p{person:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        sides = {}
        for offset, (side, given) in enumerate((("left", left), ("right", right))):
            arrays = day_arrays(n, seed * 2 + offset)
            arrays.update(given or {})
            sides[side] = {key: arrays[key] for key in ("gaze", "image", "pose")}
        filenames = np.empty((n, 1), dtype=object)
        for i in range(n):
            filenames[i, 0] = f"{i + 1:04d}.jpg"
        path = folder / f"day{day:02d}.mat"
        scipy.io.savemat(path, {"data": sides, "filenames": filenames})
        return path

    return write


@pytest.fixture
def write_evaluation_list() -> Callable[[Path, int, list[str]], Path]:
    """``write(root, person, lines)`` -> ``root/Evaluation Subset/sample list for eye image/pXX.txt``."""

    def write(root: Path, person: int, lines: list[str]) -> Path:
        folder = root / "Evaluation Subset" / "sample list for eye image"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"p{person:02d}.txt"
        path.write_text("\n".join(lines) + "\n")
        return path

    return write


@pytest.fixture
def write_kaggle_h5() -> Callable[..., Path]:
    """``write(path, images, names=None, look_vec=None)`` -> path.

    ``images`` (K, 35, 55) uint8 go to ``image/<name>`` (default names "0", "1", ... unpadded);
    ``look_vec`` (K, 3|4) float32 and a ``path`` column are added when given (gaze.h5 layout).
    """

    def write(path: Path, images: np.ndarray, names: list[str] | None = None,
              look_vec: np.ndarray | None = None) -> Path:
        names = [str(i) for i in range(len(images))] if names is None else names
        with h5py.File(path, "w") as f:
            group = f.create_group("image")
            for name, image in zip(names, images):
                group.create_dataset(name, data=image)
            if look_vec is not None:
                f.create_dataset("look_vec", data=np.asarray(look_vec, dtype=np.float32))
                f.create_dataset("path", data=[f"imgs/{n}.jpg" for n in names], dtype=h5py.string_dtype())
        return path

    return write


@pytest.fixture(name="unityeyes_json")
def unityeyes_json_fixture() -> Callable[..., dict[str, Any]]:
    """:func:`unityeyes_json`: the test scene's JSON document, to edit before writing."""
    return unityeyes_json


@pytest.fixture(name="unityeyes_image")
def unityeyes_image_fixture() -> Callable[..., np.ndarray]:
    """:func:`unityeyes_image`: the test scene's frame, optionally with a coloured disc."""
    return unityeyes_image
