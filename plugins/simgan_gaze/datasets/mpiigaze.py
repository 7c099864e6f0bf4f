"""MPIIGaze Normalized eye images (``Data/Normalized/pXX/dayYY.mat``) -> 35x55 eyes with gaze.

Format (data-formats.md section 2): MATLAB v5 files with ``data.left`` / ``data.right`` structs of
``gaze`` (N, 3), ``image`` (N, 36, 60) uint8 and ``pose`` (N, 3) Rodrigues vectors, plus
``filenames`` (N, 1). The evaluation subset lists ``dayYY/NNNN.jpg left|right`` per person in
``Evaluation Subset/sample list for eye image/pXX.txt``.

Right eyes are mirrored to look like left eyes (the standard practice, and the orientation of
UnityEyes renders): the image is flipped left-right, the gaze x and the head-pose yaw negated.
Splits are by person (leave-one-person-out), never by image: images of one person are
near-duplicates.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from simgan_gaze.datasets.conventions import (
    EyeCropLoader,
    as_channels,
    gaze_labels,
    intensities_to_unit_range,
    mirror_gaze,
    pose_pitch_yaw,
    resize_eyes,
)
from simgan_toolkit.data.loader import Unit, bool_option
from simgan_toolkit.errors import ConfigError, DataError
from simgan_toolkit.task import LabelledImages

#: Stored image size (H, W) of MPIIGaze Normalized eyes.
MAT_HEIGHT, MAT_WIDTH = 36, 60
EVALUATION_LISTS = Path("Evaluation Subset") / "sample list for eye image"
SIDES = ("left", "right")

_PERSON = re.compile(r"^p(\d+)$")
_DAY = re.compile(r"^day(\d+)$")
_LIST_LINE = re.compile(r"^(day\d+)/(\S+)\s+(left|right)$")


def person_id(value: int | str) -> int:
    """``3``, ``"3"``, ``"p03"`` -> 3."""
    text = str(value).strip().lower()
    match = re.fullmatch(r"p?(\d+)", text)
    if isinstance(value, bool) or match is None:
        raise ConfigError(f"person {value!r} is not a person id such as 3 or 'p03'")
    return int(match.group(1))


def _person_set(values: int | str | Iterable[int | str] | None, option: str = "persons") -> set[int] | None:
    if values is None:
        return None
    if isinstance(values, (int, str)):
        values = str(values).split(",") if isinstance(values, str) else [values]
    if not isinstance(values, (list, tuple, set, frozenset, range)):
        raise ConfigError(f"mpiigaze: option {option} must be a person id, a list of them or a string such as "
                          f"'0,3', got {values!r}")
    return {person_id(v) for v in values}


def leave_one_person_out(persons: Iterable[int | str], test_person: int | str) -> tuple[list[int], list[int]]:
    """Split person ids for leave-one-person-out: ``(train_persons, [test_person])``.

    Pass the halves as ``persons=`` of two :class:`MPIIGazeLoader` (the standard protocol tests on
    ``split="evaluation"``)::

        train, test = leave_one_person_out(range(15), 3)
        MPIIGazeLoader(persons=train), MPIIGazeLoader(persons=test, split="evaluation")
    """
    ids = sorted({person_id(p) for p in persons})
    test = person_id(test_person)
    if test not in ids:
        raise ConfigError(f"test person p{test:02d} is not among the persons {ids}")
    return [p for p in ids if p != test], [test]


@dataclass(frozen=True)
class DayInfo:
    """What a unit reads: one person's day file and, for the evaluation split, which samples.

    Attributes:
        person: person id (``p07`` -> 7).
        samples: ``(frame name, side)`` pairs in list order, or None for every sample.
        list_file: the evaluation list the samples come from (None for every sample).
    """

    person: int
    samples: tuple[tuple[str, str], ...] | None = None
    list_file: Path | None = None


def _field(struct: Any, name: str, where: str, path: Path) -> Any:
    """Field ``name`` of a loadmat struct (a (1, 1) record array without ``squeeze_me``)."""
    if not isinstance(struct, np.ndarray) or struct.dtype.names is None or name not in struct.dtype.names:
        raise DataError(f"{path}: missing struct field {where}.{name}; expected MPIIGaze Normalized "
                        "data.left/right with fields gaze, image, pose")
    if struct.size != 1:
        raise DataError(f"{path}: {where} must be a 1x1 struct, got shape {struct.shape}")
    return struct[name].reshape(-1)[0]


def _rows(array: Any, n: int | None, width: tuple[int, ...], what: str, path: Path) -> np.ndarray:
    """``array`` as (N, *width); restores the leading 1 a squeezed single-sample file loses."""
    a = np.asarray(array)
    if a.shape == width:  # N = 1 written or read with singleton dimensions dropped
        a = a[None]
    if a.size == 0 and n in (None, 0):
        return a.reshape(0, *width)
    if a.ndim != 1 + len(width) or a.shape[1:] != width or (n is not None and a.shape[0] != n):
        rows = "N" if n is None else str(n)
        raise DataError(f"{path}: {what} must have shape ({', '.join([rows, *map(str, width)])}), got {a.shape}")
    if a.dtype.kind not in "uif":
        raise DataError(f"{path}: {what} must be numeric, got dtype {a.dtype}")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise DataError(f"{path}: {what} holds non-finite values (NaN or inf)")
    return a


def _strings(array: Any) -> list[str]:
    """File names from a loadmat cell array ((N, 1) of (1,) str arrays) or char matrix ((N,) str)."""
    out = []
    for item in np.asarray(array, dtype=object).reshape(-1):
        flat = np.asarray(item).reshape(-1)
        out.append("".join(str(c) for c in flat).strip())
    return out


@dataclass(frozen=True)
class EyeArrays:
    """One side of a day file: ``gaze`` (N, 3), ``image`` (N, 36, 60), ``pose`` (N, 3)."""

    gaze: np.ndarray
    image: np.ndarray
    pose: np.ndarray


def load_day(path: Path) -> tuple[dict[str, EyeArrays], list[str] | None]:
    """Read a Normalized ``dayYY.mat``: ``({"left": ..., "right": ...}, filenames or None)``.

    Loads without ``squeeze_me``, so a single-sample day keeps its (1, ...) shapes; squeezed
    shapes are accepted too.
    """
    import scipy.io

    try:
        mat = scipy.io.loadmat(path)
    except NotImplementedError:  # scipy's message for MATLAB v7.3 (HDF5) files
        raise DataError(f"{path}: a MATLAB v7.3 (HDF5) file; MPIIGaze Normalized files are MATLAB v5 "
                        "(MPIIFaceGaze files are v7.3 and a different format)") from None
    except Exception as exc:  # noqa: BLE001 - scipy raises many types for corrupt files
        raise DataError(f"{path}: not a readable MATLAB .mat file (truncated or corrupt?): {exc}") from None
    if "data" not in mat:
        raise DataError(f"{path}: no variable 'data'; expected MPIIGaze Normalized data.left/data.right")
    sides = {}
    for side in SIDES:
        eye = _field(mat["data"], side, "data", path)
        gaze = _rows(_field(eye, "gaze", f"data.{side}", path), None, (3,), f"data.{side}.gaze", path)
        n = gaze.shape[0]
        image = _rows(_field(eye, "image", f"data.{side}", path), n, (MAT_HEIGHT, MAT_WIDTH), f"data.{side}.image", path)
        if image.dtype != np.uint8 and image.size and (image.min() < 0 or image.max() > 255):
            raise DataError(f"{path}: data.{side}.image must hold 0..255 intensities, got "
                            f"{image.min():g}..{image.max():g} ({image.dtype})")
        pose = _rows(_field(eye, "pose", f"data.{side}", path), n, (3,), f"data.{side}.pose", path)
        sides[side] = EyeArrays(gaze.astype(np.float64), image, pose.astype(np.float64))
    if sides["left"].gaze.shape[0] != sides["right"].gaze.shape[0]:
        raise DataError(f"{path}: data.left has {sides['left'].gaze.shape[0]} samples but data.right has "
                        f"{sides['right'].gaze.shape[0]}")
    names = _strings(mat["filenames"]) if "filenames" in mat else None
    if names is not None and len(names) != sides["left"].gaze.shape[0]:
        raise DataError(f"{path}: 'filenames' has {len(names)} entries for {sides['left'].gaze.shape[0]} samples")
    return sides, names


def _normalized_dir(root: Path) -> Path | None:
    """``root/Data/Normalized``, or ``root`` itself when it holds ``pXX/dayYY.mat`` files.

    Names are tested before anything is stat'ed, so detecting a large unrelated folder costs one
    directory listing, not one stat per entry.
    """
    for folder in (root / "Data" / "Normalized", root):
        if folder.is_dir() and any(
            _PERSON.match(p.name) and p.is_dir() and any(p.glob("day*.mat")) for p in folder.iterdir()
        ):
            return folder
    return None


class MPIIGazeLoader(EyeCropLoader):
    """MPIIGaze Normalized eyes -> (N, C, 35, 55) in [-1, 1]; one unit per (person, day) file.

    ``root`` is the MPIIGaze folder (holding ``Data/Normalized`` and ``Evaluation Subset``) or
    ``Data/Normalized`` itself (then the evaluation lists are looked for two levels up). Unit
    keys are ``pXX/dayYY``. Within a unit, samples come left eyes first, then right eyes
    (``split="all"``), or in the order of the evaluation list.

    Labels (per image):
        gaze: (3,) unit gaze vector (normalized camera, OpenCV convention), x negated for mirrored
            right eyes.
        pitch_yaw: (2,) radians, ``pitch = asin(-y)``, ``yaw = atan2(-x, -z)``.
        head_pose: (2,) ``(pitch, yaw)`` radians of the head from the Rodrigues ``pose`` (column 3
            of its rotation matrix ``c``: ``asin(c_y)``, ``atan2(c_x, c_z)``); yaw negated for
            mirrored right eyes.
        person: () person id (``p07`` -> 7).
        eye: () 0 for a left eye, 1 for a right eye.

    Args:
        split: ``"all"`` (every sample) or ``"evaluation"`` (the 3000 per person of the
            evaluation subset lists).
        persons: person ids to include (``[0, 1]`` or ``["p00", "p01"]`` or ``"0,1"``); default all.
        exclude_persons: person ids to leave out (e.g. the test person of leave-one-person-out).
        eyes: ``"both"``, ``"left"`` or ``"right"``.
        flip_right: mirror right eyes to look like left eyes (default; see the module docstring).
        rgb: return 3 identical channels (C=3) instead of C=1, for RGB tasks.
    """

    name = "mpiigaze"

    def __init__(
        self,
        split: str = "all",
        persons: int | str | Sequence[int | str] | None = None,
        exclude_persons: int | str | Sequence[int | str] | None = None,
        eyes: str = "both",
        flip_right: bool = True,
        rgb: bool = False,
    ) -> None:
        if not isinstance(split, str) or split not in ("all", "evaluation"):
            raise ConfigError(f"mpiigaze: split must be 'all' or 'evaluation', got {split!r}")
        if not isinstance(eyes, str) or eyes not in ("both", *SIDES):
            raise ConfigError(f"mpiigaze: eyes must be 'both', 'left' or 'right', got {eyes!r}")
        self.split = split
        self.persons = _person_set(persons)
        self.exclude_persons = _person_set(exclude_persons, "exclude_persons") or set()
        self.sides = SIDES if eyes == "both" else (eyes,)
        self.flip_right = bool_option(self.name, "flip_right", flip_right)
        self.rgb = bool_option(self.name, "rgb", rgb)

    @property
    def label_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"gaze": (3,), "pitch_yaw": (2,), "head_pose": (2,), "person": (), "eye": ()}

    @classmethod
    def detect(cls, root: Path) -> bool:
        """A folder with ``Data/Normalized/pXX/`` (or the ``Normalized`` folder itself)."""
        return _normalized_dir(Path(root)) is not None

    # --- units ----------------------------------------------------------------------------
    def _person_dirs(self, normalized: Path) -> list[tuple[int, Path]]:
        # The name test first: one stat per pXX folder, not per entry of a large folder.
        found = {int(m.group(1)): p for p in normalized.iterdir() if (m := _PERSON.match(p.name)) and p.is_dir()}
        missing = (self.persons or set()) - set(found)
        if missing:
            raise DataError(f"{normalized}: no folder for person(s) {', '.join(f'p{i:02d}' for i in sorted(missing))}; "
                            f"found {', '.join(f'p{i:02d}' for i in sorted(found)) or 'none'}")
        chosen = [i for i in sorted(found) if (self.persons is None or i in self.persons) and i not in self.exclude_persons]
        return [(i, found[i]) for i in chosen]

    def _evaluation_samples(self, list_file: Path) -> dict[str, list[tuple[str, str]]]:
        """Day name -> ``(frame, side)`` pairs of a person's evaluation list ``pXX.txt``, in list order."""
        if not list_file.is_file():
            raise DataError(f"{list_file}: evaluation list missing (split='evaluation' needs "
                            f"'{EVALUATION_LISTS}/pXX.txt' next to Data/)")
        days: dict[str, list[tuple[str, str]]] = {}
        for number, line in enumerate(list_file.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            match = _LIST_LINE.match(line.strip())
            if match is None:
                raise DataError(f"{list_file}:{number}: expected 'dayYY/NNNN.jpg left|right', got {line.strip()!r}")
            day, frame, side = match.groups()
            days.setdefault(day, []).append((frame, side))
        return days

    def units(self, root: Path) -> list[Unit]:
        root = Path(root)
        normalized = _normalized_dir(root)
        if normalized is None:
            raise DataError(f"{root}: not an MPIIGaze folder; expected Data/Normalized/pXX/dayYY.mat under it")
        mpiigaze_root = normalized.parent.parent if normalized.name == "Normalized" else root
        units = []
        for person, person_dir in self._person_dirs(normalized):
            day_files = sorted(
                (p for p in person_dir.glob("day*.mat") if _DAY.match(p.stem)), key=lambda p: int(p.stem[3:])
            )
            if self.split == "all":
                units += [Unit(f"{person_dir.name}/{p.stem}", p, DayInfo(person)) for p in day_files]
                continue
            list_file = mpiigaze_root / EVALUATION_LISTS / f"{person_dir.name}.txt"
            listed = self._evaluation_samples(list_file)
            by_name = {p.stem: p for p in day_files}
            for day in sorted(listed, key=lambda d: int(d[3:])):
                samples = tuple(s for s in listed[day] if s[1] in self.sides)
                if day not in by_name:
                    raise DataError(f"{list_file}: lists {day} but {person_dir / (day + '.mat')} does not exist")
                if samples:
                    units.append(Unit(f"{person_dir.name}/{day}", by_name[day], DayInfo(person, samples, list_file)))
        return units

    def unit_size(self, unit: Unit) -> int | None:
        """The evaluation split's listed samples; None for a whole day (its size is in the file)."""
        samples = unit.info.samples
        return None if samples is None else len(samples)

    def unit_files(self, unit: Unit) -> list[Path]:
        """The day file, and for the evaluation split the list that picks its samples."""
        list_file = unit.info.list_file
        return [unit.path] if list_file is None else [unit.path, list_file]

    # --- reading --------------------------------------------------------------------------
    def _selection(self, unit: Unit, names: list[str] | None, n: int) -> list[tuple[str, int]]:
        """``(side, index)`` of the samples the unit reads, in output order."""
        info: DayInfo = unit.info
        if info.samples is None:
            return [(side, i) for side in self.sides for i in range(n)]
        if names is None:
            raise DataError(f"{unit.path}: no 'filenames' variable, needed to find the evaluation samples")
        index = {}
        for i, name in enumerate(names):
            index.setdefault(name, i)  # first occurrence, should a name repeat
        missing = [frame for frame, _ in info.samples if frame not in index]
        if missing:
            raise DataError(f"{unit.path}: evaluation list names {missing[0]!r} (and {len(missing) - 1} more) "
                            "that are not in 'filenames'")
        return [(side, index[frame]) for frame, side in info.samples]

    def read_unit(self, unit: Unit) -> LabelledImages:
        sides, names = load_day(unit.path)
        chosen = self._selection(unit, names, sides["left"].gaze.shape[0])
        parts_img, parts_gaze, parts_pose, parts_eye = [], [], [], []
        for side in SIDES:
            idx = np.array([i for s, i in chosen if s == side], dtype=np.int64)
            arrays = sides[side]
            image = torch.from_numpy(np.ascontiguousarray(arrays.image[idx])).float()[:, None]  # (n, 1, 36, 60)
            gaze = torch.from_numpy(arrays.gaze[idx])
            pose = pose_pitch_yaw(torch.from_numpy(arrays.pose[idx]))
            if side == "right" and self.flip_right:
                image = image.flip(-1)
                gaze = mirror_gaze(gaze)
                pose = pose * pose.new_tensor([1.0, -1.0])
            parts_img.append(image)
            parts_gaze.append(gaze)
            parts_pose.append(pose)
            parts_eye.append(torch.full((len(idx),), SIDES.index(side), dtype=torch.int64))
        # Restore the requested order (left block then right block, or evaluation-list order).
        order = _interleave_order([s for s, _ in chosen])
        images = resize_eyes(torch.cat(parts_img))[order]
        labels = gaze_labels(torch.cat(parts_gaze), str(unit.path))
        labels = {k: v[order] for k, v in labels.items()}
        labels["head_pose"] = torch.cat(parts_pose)[order]
        labels["eye"] = torch.cat(parts_eye)[order]
        labels["person"] = torch.full((len(chosen),), unit.info.person, dtype=torch.int64)
        return LabelledImages(as_channels(intensities_to_unit_range(images), self.rgb), labels)


def _interleave_order(sides: list[str]) -> Tensor:
    """Permutation taking [all left samples, all right samples] back to the order of ``sides``."""
    lefts = [i for i, s in enumerate(sides) if s == "left"]
    rights = [i for i, s in enumerate(sides) if s == "right"]
    position = torch.empty(len(sides), dtype=torch.int64)
    position[torch.tensor(lefts + rights, dtype=torch.int64)] = torch.arange(len(sides))
    return position
