"""UnityEyes renders (``imgs/N.jpg`` + ``imgs/N.json``) -> 35x55 eye crops with gaze labels.

Format (data-formats.md section 1): every JSON value is a string, landmarks are
``"(x, y, z)"`` in Unity screen pixels with the origin at the *bottom-left*, ``look_vec`` is
``"(x, y, z, 0.0000)"`` in Unity camera space (y up). The JPEG is at the render-window size,
which is the user's choice, so it is always read from the file.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from simgan_gaze.datasets.conventions import (
    EYE_HEIGHT,
    EYE_WIDTH,
    EyeCropLoader,
    gaze_labels,
    intensities_to_unit_range,
    unity_to_camera,
)
from simgan_gaze.datasets.crop import crop_affine, eye_crop_matrix, transform_points
from simgan_toolkit.data.loader import Unit, bool_option
from simgan_toolkit.errors import DataError
from simgan_toolkit.task import LabelledImages

#: Landmark lists and how many points each holds (UnityEyes' EyeRegionTopology).
LANDMARK_COUNTS = {"interior_margin_2d": 16, "caruncle_2d": 7, "iris_2d": 32}
#: Index of the outer eye corner in ``interior_margin_2d``.
OUTER_CORNER = 8
N_PCA_COEFFS = 20
N_LANDMARKS = sum(LANDMARK_COUNTS.values())
#: A crop box with less than this fraction of its area inside the frame is refused.
MIN_CROP_INSIDE = 0.5

_NUMBERED = re.compile(r"^\d+$")


@dataclass(frozen=True)
class UnityEyesRecord:
    """Every field of one UnityEyes JSON file, parsed.

    Landmarks are as written: Unity screen pixels, origin bottom-left, z = distance from the
    camera. Angles of ``head_pose`` and ``light_rotation`` are Unity Euler degrees.

    Attributes:
        interior_margin: (16, 3) eyelid-margin contour; index 8 is the outer corner.
        caruncle: (7, 3) caruncle contour; its mean is the inner corner.
        iris: (32, 3) limbus contour; its mean is the iris/pupil centre.
        look_vec: (3,) optical axis in Unity camera space (x right, y up, z forward); w dropped.
        head_pose: (3,) camera Euler angles (pitch, yaw, roll) in degrees, each in [0, 360).
        pca_shape_coeffs: (20,) eye-region shape coefficients.
    """

    interior_margin: Tensor
    caruncle: Tensor
    iris: Tensor
    look_vec: Tensor
    pupil_size: float
    iris_size: float
    iris_texture: str
    skybox_texture: str
    skybox_exposure: float
    skybox_rotation: float
    ambient_intensity: float
    light_rotation: tuple[float, float, float]
    light_intensity: float
    pca_shape_coeffs: Tensor
    primary_skin_texture: str
    head_pose: Tensor


class _Fields:
    """Typed access to the JSON object of one file; every failure names the file and field."""

    def __init__(self, data: Any, path: Path) -> None:
        self.data = data
        self.path = path

    def fail(self, where: str, expected: str, got: Any) -> DataError:
        shown = repr(got)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        return DataError(f"{self.path}: field {where!r} must be {expected}, got {shown}")

    def get(self, *keys: str) -> Any:
        node = self.data
        for depth, key in enumerate(keys):
            if not isinstance(node, dict) or key not in node:
                missing = ".".join(keys[: depth + 1])
                raise DataError(f"{self.path}: missing field {missing!r} (not a UnityEyes JSON file?)")
            node = node[key]
        return node

    def number(self, *keys: str) -> float:
        value = self.get(*keys)
        try:
            return float(value)  # "1.924006E-17" and "231" both parse
        except (TypeError, ValueError):
            raise self.fail(".".join(keys), "a number (as a string)", value) from None

    def text(self, *keys: str) -> str:
        value = self.get(*keys)
        if not isinstance(value, str):
            raise self.fail(".".join(keys), "a string", value)
        return value

    def vector(self, value: Any, where: str, sizes: tuple[int, ...]) -> tuple[float, ...]:
        """A ``"(x, y, z)"`` string (or an already-numeric list) with one of ``sizes`` components."""
        expected = "an '(" + ", ".join("xyzw"[: sizes[0]]) + ")' tuple string"
        if isinstance(value, str) and value.count(",") == 2 * sizes[0] - 1:
            # A comma-decimal locale writes "(371,4855, 296,4230, 8,8595)".
            expected += " (written with a comma-decimal locale?)"
        parsed = value
        if isinstance(value, str):
            try:
                parsed = ast.literal_eval(value.strip())  # literal_eval: data, never code
            except (ValueError, SyntaxError):
                raise self.fail(where, expected, value) from None
        if (
            not isinstance(parsed, (tuple, list))
            or len(parsed) not in sizes
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in parsed)
        ):
            raise self.fail(where, expected, value)
        return tuple(float(v) for v in parsed)

    def vector_field(self, *keys: str, sizes: tuple[int, ...] = (3,)) -> tuple[float, ...]:
        return self.vector(self.get(*keys), ".".join(keys), sizes)

    def vector_list(self, key: str, count: int) -> Tensor:
        """(count, 3) from a list of ``count`` tuple strings."""
        items = self.get(key)
        if not isinstance(items, list) or len(items) != count:
            got = f"a list of {len(items)}" if isinstance(items, list) else type(items).__name__
            raise DataError(f"{self.path}: field {key!r} must be a list of {count} '(x, y, z)' strings, got {got}")
        return torch.tensor([self.vector(v, f"{key}[{i}]", (3,)) for i, v in enumerate(items)], dtype=torch.float64)

    def number_list(self, *keys: str, count: int) -> Tensor:
        items = self.get(*keys)
        where = ".".join(keys)
        if not isinstance(items, list) or len(items) != count:
            got = f"a list of {len(items)}" if isinstance(items, list) else type(items).__name__
            raise DataError(f"{self.path}: field {where!r} must be a list of {count} numbers, got {got}")
        values = []
        for i, v in enumerate(items):
            try:
                values.append(float(v))
            except (TypeError, ValueError):
                raise self.fail(f"{where}[{i}]", "a number (as a string)", v) from None
        return torch.tensor(values, dtype=torch.float64)


def parse_unityeyes_json(path: Path) -> UnityEyesRecord:
    """Parse one UnityEyes JSON file; unknown keys (added by forks) are ignored.

    Raises:
        DataError: unreadable JSON, a missing field, a wrong count or an unparsable value; the
            message names the file and the field.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a readable JSON file ({exc})") from None
    f = _Fields(data, path)
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object with UnityEyes fields, got {type(data).__name__}")
    lm = {key: f.vector_list(key, count) for key, count in LANDMARK_COUNTS.items()}
    return UnityEyesRecord(
        interior_margin=lm["interior_margin_2d"],
        caruncle=lm["caruncle_2d"],
        iris=lm["iris_2d"],
        look_vec=torch.tensor(f.vector_field("eye_details", "look_vec", sizes=(4, 3))[:3], dtype=torch.float64),
        pupil_size=f.number("eye_details", "pupil_size"),
        iris_size=f.number("eye_details", "iris_size"),
        iris_texture=f.text("eye_details", "iris_texture"),
        skybox_texture=f.text("lighting_details", "skybox_texture"),
        skybox_exposure=f.number("lighting_details", "skybox_exposure"),
        skybox_rotation=f.number("lighting_details", "skybox_rotation"),
        ambient_intensity=f.number("lighting_details", "ambient_intensity"),
        light_rotation=f.vector_field("lighting_details", "light_rotation"),  # type: ignore[arg-type]
        light_intensity=f.number("lighting_details", "light_intensity"),
        pca_shape_coeffs=f.number_list("eye_region_details", "pca_shape_coeffs", count=N_PCA_COEFFS),
        primary_skin_texture=f.text("eye_region_details", "primary_skin_texture"),
        head_pose=torch.tensor(f.vector_field("head_pose"), dtype=torch.float64),
    )


def read_rgb_image(path: Path) -> Tensor:
    """Decode an image file fully into uint8 (3, H, W); a truncated or unreadable file is a DataError."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()  # decode now: PIL is lazy, and a truncated JPEG only fails here
            rgb = img.convert("RGB")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, SyntaxError, UnidentifiedImageError, ValueError) as exc:
        raise DataError(f"{path}: not a complete JPEG image (truncated or corrupt?): {exc}") from None
    return torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8).view(rgb.height, rgb.width, 3).permute(2, 0, 1)


def screen_to_image(points: Tensor, height: int) -> Tensor:
    """Unity screen pixels (K, >=2), origin bottom-left -> image ``(x, y)`` (K, 2), rows down.

    Screen pixel ``i`` covers ``[i, i+1]`` (its centre is ``i + 0.5``), while image pixel
    centres are integers, hence ``x - 0.5`` and ``H - y - 0.5``. (GazeML uses ``H - y``; the
    half pixel is below the landmark accuracy, but this keeps landmarks and pixels exact.)
    """
    return torch.stack([points[:, 0] - 0.5, height - points[:, 1] - 0.5], dim=1)


def crop_record(record: UnityEyesRecord, image: Tensor, rgb: bool, source: str = "look_vec") -> LabelledImages:
    """One UnityEyes frame -> a 35x55 crop (1, C, 35, 55) in [-1, 1] with its labels.

    The crop follows GazeML's scale-normalised recipe: width ``1.5 * |mean(caruncle).x -
    interior[8].x|``, centred on the bounding-box centre of the eyelid margin.

    Args:
        record: the parsed JSON.
        image: (3, H, W) uint8 frame.
        rgb: keep colour (C=3) or convert to grayscale (C=1).
        source: the file named if ``look_vec`` is zero.

    Raises:
        ValueError: degenerate landmarks (the corners share an x), or a crop box lying mostly
            outside the frame; reported by the caller.
    """
    from kornia.color import rgb_to_grayscale

    height, width = image.shape[1], image.shape[2]
    points = screen_to_image(torch.cat([record.interior_margin, record.caruncle, record.iris]), height)
    margin = points[: LANDMARK_COUNTS["interior_margin_2d"]]
    caruncle = points[len(margin) : len(margin) + LANDMARK_COUNTS["caruncle_2d"]]
    iris = points[len(margin) + len(caruncle) :]
    centre = (margin.min(dim=0).values + margin.max(dim=0).values) / 2
    matrix = eye_crop_matrix(caruncle.mean(dim=0), margin[OUTER_CORNER], centre, (EYE_HEIGHT, EYE_WIDTH))
    inside = _fraction_inside(matrix, width, height)
    if inside < MIN_CROP_INSIDE:
        raise ValueError(f"only {100 * inside:.0f}% of the crop box lies inside the {width} x {height} frame")
    crop = crop_affine(image.float(), matrix, (EYE_HEIGHT, EYE_WIDTH))[None]  # (1, 3, 35, 55), 0..255
    if not rgb:
        crop = rgb_to_grayscale(crop / 255.0) * 255.0
    labels = gaze_labels(unity_to_camera(record.look_vec[None]), source)
    labels["pupil_centre"] = transform_points(iris.mean(dim=0, keepdim=True), matrix).float()
    labels["landmarks"] = transform_points(points, matrix).float()[None]
    return LabelledImages(intensities_to_unit_range(crop), labels)


def _fraction_inside(matrix: Tensor, width: int, height: int) -> float:
    """Fraction of the crop box (the output's pixel area mapped back to the frame) inside the
    frame's pixel area ``[-0.5, W - 0.5] x [-0.5, H - 0.5]`` (a scale-and-translation matrix)."""
    s, tx, ty = float(matrix[0, 0]), float(matrix[0, 2]), float(matrix[1, 2])
    x0, x1 = (-0.5 - tx) / s, (EYE_WIDTH - 0.5 - tx) / s
    y0, y1 = (-0.5 - ty) / s, (EYE_HEIGHT - 0.5 - ty) / s
    overlap_x = max(0.0, min(x1, width - 0.5) - max(x0, -0.5))
    overlap_y = max(0.0, min(y1, height - 0.5) - max(y0, -0.5))
    return overlap_x * overlap_y / ((x1 - x0) * (y1 - y0))


def landmark_bounds(record: UnityEyesRecord) -> tuple[float, float, float, float]:
    """``(x_min, x_max, y_min, y_max)`` of all 2-D landmarks, Unity screen pixels."""
    points = torch.cat([record.interior_margin, record.caruncle, record.iris])[:, :2]
    low, high = points.min(dim=0).values, points.max(dim=0).values
    return float(low[0]), float(high[0]), float(low[1]), float(high[1])


def _numbered(paths: Iterator[Path]) -> list[Path]:
    """JSON files whose stem is a decimal number, sorted numerically (1, 2, ..., 10)."""
    return sorted((p for p in paths if _NUMBERED.match(p.stem)), key=lambda p: int(p.stem))


def _frames_dir(root: Path) -> Path | None:
    """The folder holding ``N.json`` frames: ``root/imgs`` or ``root`` itself."""
    for folder in (root / "imgs", root):
        if folder.is_dir() and any(
            _NUMBERED.match(p.stem) and p.with_suffix(".jpg").exists() for p in folder.glob("*.json")
        ):
            return folder
    return None


class UnityEyesLoader(EyeCropLoader):
    """UnityEyes renders -> (1, C, 35, 55) eye crops in [-1, 1], one unit per frame.

    ``root`` is the folder UnityEyes ran in (holding ``imgs/``) or ``imgs/`` itself. Units are
    the ``N.json`` files in numeric order, keyed by ``N``; each needs its ``N.jpg`` partner.

    Labels (per image):
        gaze: (3,) unit gaze vector, MPIIGaze/OpenCV camera convention (``look_vec`` with y
            negated).
        pitch_yaw: (2,) radians, ``pitch = asin(-y)``, ``yaw = atan2(-x, -z)``.
        pupil_centre: (2,) ``(x, y)`` crop pixels (integer pixel centres) of the mean of
            ``iris_2d``.
        landmarks: (55, 2) ``(x, y)`` crop pixels of interior_margin_2d (16), caruncle_2d (7)
            and iris_2d (32), in that order.

    Args:
        rgb: keep the render's colour (C=3); default grayscale (C=1, kornia's luma weights).
    """

    name = "unityeyes"

    def __init__(self, rgb: bool = False) -> None:
        self.rgb = bool_option(self.name, "rgb", rgb)

    @property
    def label_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"gaze": (3,), "pitch_yaw": (2,), "pupil_centre": (2,), "landmarks": (N_LANDMARKS, 2)}

    @classmethod
    def detect(cls, root: Path) -> bool:
        """A folder with ``imgs/N.json`` + ``imgs/N.jpg`` (or those files directly)."""
        return _frames_dir(Path(root)) is not None

    def units(self, root: Path) -> list[Unit]:
        root = Path(root)
        folder = _frames_dir(root)
        if folder is None:
            raise DataError(
                f"{root}: no UnityEyes frames found; expected imgs/N.json + imgs/N.jpg (N = 1, 2, ...) "
                "under it or in it"
            )
        return [Unit(key=p.stem, path=p) for p in _numbered(folder.glob("*.json"))]

    def read_unit(self, unit: Unit) -> LabelledImages:
        record = parse_unityeyes_json(unit.path)
        jpg = unit.path.with_suffix(".jpg")
        if not jpg.exists():
            raise DataError(f"{unit.path}: its image {jpg.name} is missing (expected next to the JSON)")
        image = read_rgb_image(jpg)
        height, width = image.shape[1], image.shape[2]
        x0, x1, y0, y1 = landmark_bounds(record)
        if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
            raise DataError(
                f"{unit.path}: landmarks span x {x0:.1f}..{x1:.1f}, y {y0:.1f}..{y1:.1f} (screen pixels), outside "
                f"its image {jpg.name} of {width} x {height}: are the JSON and the JPEG from the same render "
                "(same window size)?"
            )
        try:
            return crop_record(record, image, self.rgb, f"{unit.path}: look_vec")
        except ValueError as exc:
            raise DataError(f"{unit.path}: cannot crop the eye from {jpg.name} ({width} x {height}): {exc}") from None

    def unit_size(self, unit: Unit) -> int:
        return 1

    def unit_files(self, unit: Unit) -> list[Path]:
        """``N.json`` and its ``N.jpg``."""
        return [unit.path, unit.path.with_suffix(".jpg")]
