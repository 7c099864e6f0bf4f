"""NYU Hand Pose dataset loader: real Kinect frames cropped exactly like the simulator's crops.

Format ``nyu_hand``; one unit per frame (key ``"{kinect}_{frame:07d}"``, frame 1-based like the
file names). Root: a split folder (``dataset/train`` or ``dataset/test``, holding
``joint_data.mat`` and the PNGs), or ``dataset/`` with the option ``split``.

Crops
-----
Every frame is cropped with :func:`simgan_hand.render.crop_params`, the simulator's own crop: a
``cube_mm`` cube (300 mm; 250 mm is used for test subject 2 in some protocols) centred on the
annotated palm centre PALM_3 (found by name in ``joint_names``, like the 14 evaluation joints),
whose cross-section at the centre depth (a cube_mm square at zc) is resampled to ``size x size`` (224) crop pixels with the centre's projection
on crop pixel ``(size - 1) / 2 = 111.5``. The 640x480 depth frame is
point-sampled at the crop pixel centres (nearest Kinect pixel; the simulator casts one ray per
crop pixel centre), so real and simulated crops have identical geometry. Depth is normalised
like the simulator's, ``(z - zc) / (cube_mm / 2)`` clipped to [-1, 1]; no reading (0 mm), beyond
the cube's back face, outside the 640x480 frame or outside the mask is the far value +1.

Mask ("cropping the real images using the synthetic images", SimGAN)
-------------------------------------------------------------------
With ``mask="synthdepth"`` (the default for ``kind="depth"``) a real pixel is kept only where the
matching ``synthdepth_K_NNNNNNN.png`` (Tompson's fitted hand model rendered at the annotated
pose, background 0) is > 0 after dilating that silhouette by ``mask_dilate`` Kinect pixels
(default 2): the model's silhouette is a fit, a pixel or two inside the real hand's outline, and
the dilation keeps the real edge pixels (a 2 px rim of forearm at the wrist is the price). This
removes the forearm, body and anything else inside the cube. ``mask="none"`` keeps the whole
cube. ``kind="synthdepth"`` crops the synthdepth renders themselves (the paired synthetic source:
hand only) with the same geometry.

Labels (float32)
----------------
``joints_uvd`` (N, 14, 3)
    The 14 evaluation joints in :data:`simgan_hand.skeleton.NYU_EVAL_NAMES` order (file indices
    0, 3, 6, 9, 12, 15, 18, 21, 24, 25, 27, 30, 31, 32, found by name): crop column ``u``, row
    ``v`` (pixel centres at integers) and normalised depth ``(z - zc) / (cube_mm / 2)``, not
    clipped -- the simulator's ``joints_uvd``. u, v are *projected from* ``joint_xyz`` with the
    official intrinsics (:data:`~simgan_hand.skeleton.NYU_INTRINSICS`: fx 588.036865, fy
    587.075073, cx 320, cy 240), not read from ``joint_uvd``, so they agree with the crop geometry
    to float precision. The official helpers are MATLAB (``ndgrid(1:H, 1:W)``), so the file's u, v
    are probably 1-based while we treat Kinect pixel ``(col, row)`` as ``u = col`` (0-based): if
    so, labels sit up to 1 Kinect pixel (~1 crop pixel at 800 mm) off the image content. The
    offset is the same for every frame.
``joints_xyz`` (N, 14, 3)
    Those joints in camera space, mm, x right, **y down** (NYU's y-up ``joint_xyz`` negated).
``centre_mm`` (N, 3)
    The crop centre, camera space (y down), mm: PALM_3, or the depth centre of mass with
    ``centre="com"``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor

from simgan_hand.nyu_files import (
    JOINT_FILE,
    KINDS,
    KINECTS,
    JointData,
    frame_path,
    has_frames,
    load_joint_data,
    read_depth_png,
)
from simgan_hand.skeleton import DEFAULT_CUBE_MM, NYU_INTRINSICS
from simgan_toolkit.data.loader import DatasetLoader, Unit
from simgan_toolkit.errors import ConfigError, DataError
from simgan_toolkit.task import LabelledImages

if TYPE_CHECKING:
    from simgan_hand.render import CropParams

SPLITS = ("train", "test")
MASKS = ("synthdepth", "none")
CENTRES = ("palm", "com")
NUM_EVAL_JOINTS = 14
#: Kinect pixels the synthdepth silhouette is dilated by before masking the real frame.
DEFAULT_MASK_DILATE = 2


# --------------------------------------------------------------------------------------------
# Cropping (pure functions, usable without a loader)
# --------------------------------------------------------------------------------------------


def make_crop(centre_mm: Tensor, cube_mm: float = DEFAULT_CUBE_MM, size: int = 224) -> CropParams:
    """The simulator's crop (:class:`simgan_hand.render.CropParams`) around ``centre_mm`` (1, 3)."""
    from simgan_hand.render import crop_params  # deferred: render pulls in kornia

    return crop_params(centre_mm, cube_mm, NYU_INTRINSICS, size)


def crop_pixel_uv(crop: CropParams) -> tuple[Tensor, Tensor]:
    """Kinect-image coordinates of the crop pixel centres: u per column (S,), v per row (S,)."""
    idx = torch.arange(crop.size, dtype=crop.scale.dtype)
    uv = crop.crop_to_image(torch.stack([idx, idx], dim=-1).unsqueeze(0))[0]
    return uv[:, 0], uv[:, 1]


def crop_pixel_index(crop: CropParams, height: int, width: int) -> tuple[Tensor, Tensor, Tensor]:
    """Nearest frame pixel of every crop pixel centre: rows (S,), cols (S,) clamped into the
    frame, and (S, S) bool whether the centre lies inside the frame (pixel centres at integers,
    the bounds of :meth:`CropParams.inside_frame`)."""
    u, v = crop_pixel_uv(crop)
    cols, rows = torch.floor(u + 0.5).long(), torch.floor(v + 0.5).long()
    ok_u = (u >= -0.5) & (u < width - 0.5) & (cols >= 0) & (cols < width)
    ok_v = (v >= -0.5) & (v < height - 0.5) & (rows >= 0) & (rows < height)
    inside = ok_v.unsqueeze(1) & ok_u.unsqueeze(0)
    return rows.clamp(0, height - 1), cols.clamp(0, width - 1), inside


def sample_frame(frame_mm: Tensor, crop: CropParams) -> Tensor:
    """Point-sample a (H, W) frame at the crop pixel centres -> (1, 1, S, S); 0 outside the frame.

    The nearest Kinect pixel of each crop pixel centre is taken, like the simulator's one ray per
    crop pixel centre; centres outside the frame read 0 (no reading).
    """
    rows, cols, inside = crop_pixel_index(crop, *frame_mm.shape)
    out = frame_mm[rows][:, cols].masked_fill(~inside, 0)
    return out.view(1, 1, crop.size, crop.size)


def sample_silhouette(frame_mm: Tensor, crop: CropParams, dilate: int = DEFAULT_MASK_DILATE) -> Tensor:
    """(1, 1, S, S) bool: the silhouette ``frame_mm > 0`` (H, W), dilated by ``dilate`` frame
    pixels (square neighbourhood), at the crop pixel centres; False outside the frame.

    Only the crop window (plus the dilation margin) is dilated, which keeps it cheap.
    """
    h, w = frame_mm.shape
    rows, cols, inside = crop_pixel_index(crop, h, w)
    r0, c0 = max(int(rows.min()) - dilate, 0), max(int(cols.min()) - dilate, 0)
    r1, c1 = min(int(rows.max()) + dilate + 1, h), min(int(cols.max()) + dilate + 1, w)
    mask = (frame_mm[r0:r1, c0:c1] > 0).float()[None, None]
    if dilate > 0:
        mask = torch.nn.functional.max_pool2d(mask, kernel_size=2 * dilate + 1, stride=1, padding=dilate)
    keep = mask[0, 0][rows - r0][:, cols - c0] > 0
    return (keep & inside).view(1, 1, crop.size, crop.size)


def depth_centre_of_mass(depth_crop_mm: Tensor, crop: CropParams) -> Tensor | None:
    """(1, 3) camera-space mean of the crop's pixels inside the cube, or None if there are none.

    Mean of image ``(u, v, z)`` over the sampled pixels with a reading within ``cube_mm / 2`` of
    the crop centre's depth, back-projected (DeepPrior's centre of mass, one refinement step).
    """
    z = depth_crop_mm[0, 0]
    zc = float(crop.centre_mm[0, 2])
    valid = (z > 0) & ((z - zc).abs() <= 0.5 * crop.cube_mm)
    if not bool(valid.any()):
        return None
    u, v = crop_pixel_uv(crop)
    uu = u.unsqueeze(0).expand_as(z)[valid]
    vv = v.unsqueeze(1).expand_as(z)[valid]
    uvz = torch.stack([uu.mean(), vv.mean(), z[valid].mean()]).view(1, 3)
    return NYU_INTRINSICS.backproject(uvz)


# --------------------------------------------------------------------------------------------
# Loader
# --------------------------------------------------------------------------------------------


class NYUHandLoader(DatasetLoader):
    """NYU Hand Pose depth frames as 1 x ``size`` x ``size`` crops (see the module docstring).

    Options:
        kind: ``"depth"`` (real Kinect frames) or ``"synthdepth"`` (the hand-model renders).
        mask: ``"synthdepth"`` (keep real pixels inside the dilated synthdepth silhouette) or
            ``"none"``; default ``"synthdepth"`` for ``kind="depth"``, ``"none"`` otherwise.
        mask_dilate: Kinect pixels the synthdepth silhouette is dilated by (default 2).
        kinect: 1 (front, the evaluation view), 2 or 3.
        split: ``"train"`` or ``"test"`` when the root is ``dataset/``; None when the root is the
            split folder itself.
        cube_mm: side of the crop cube, mm (300; 250 for test subject 2 in some protocols).
        centre: ``"palm"`` (PALM_3, the simulator's centre) or ``"com"`` (centre of mass of the
            masked depth inside the PALM_3 cube; PALM_3 when the cube holds no reading).
        size: crop side in pixels (224).
    """

    name = "nyu_hand"

    def __init__(
        self,
        kind: Literal["depth", "synthdepth"] = "depth",
        mask: Literal["synthdepth", "none"] | None = None,
        kinect: int = 1,
        split: Literal["train", "test"] | None = None,
        cube_mm: float = DEFAULT_CUBE_MM,
        centre: Literal["palm", "com"] = "palm",
        mask_dilate: int = DEFAULT_MASK_DILATE,
        size: int = 224,
    ) -> None:
        if kind not in KINDS:
            raise ConfigError(f"nyu_hand option kind must be one of {KINDS}, got {kind!r}")
        mask = mask if mask is not None else ("synthdepth" if kind == "depth" else "none")
        if mask not in MASKS:
            raise ConfigError(f"nyu_hand option mask must be one of {MASKS}, got {mask!r}")
        if isinstance(kinect, bool) or kinect not in KINECTS:
            raise ConfigError(f"nyu_hand option kinect must be one of {KINECTS}, got {kinect!r}")
        if split is not None and split not in SPLITS:
            raise ConfigError(f"nyu_hand option split must be one of {SPLITS} or None, got {split!r}")
        if isinstance(cube_mm, bool) or not isinstance(cube_mm, (int, float)) or not cube_mm > 0:
            raise ConfigError(f"nyu_hand option cube_mm must be a positive number, got {cube_mm!r}")
        if centre not in CENTRES:
            raise ConfigError(f"nyu_hand option centre must be one of {CENTRES}, got {centre!r}")
        if isinstance(mask_dilate, bool) or not isinstance(mask_dilate, int) or mask_dilate < 0:
            raise ConfigError(f"nyu_hand option mask_dilate must be an integer >= 0, got {mask_dilate!r}")
        if isinstance(size, bool) or not isinstance(size, int) or size < 8:
            raise ConfigError(f"nyu_hand option size must be an integer >= 8, got {size!r}")
        self.kind, self.mask, self.kinect, self.split = kind, mask, kinect, split
        self.cube_mm, self.centre, self.mask_dilate, self.size = float(cube_mm), centre, mask_dilate, size
        # joint_data.mat is large (3 x 72757 x 36 x 3 doubles): read once per split folder.
        self._joints: dict[Path, JointData] = {}
        self._lock = threading.Lock()

    # --- interface --------------------------------------------------------------------------
    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (1, self.size, self.size)

    @property
    def label_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"joints_uvd": (NUM_EVAL_JOINTS, 3), "joints_xyz": (NUM_EVAL_JOINTS, 3), "centre_mm": (3,)}

    @classmethod
    def detect(cls, root: Path) -> bool:
        """A folder with ``joint_data.mat`` and ``depth_1_*.png``, or ``train/``/``test/`` ones."""
        root = Path(root)
        return has_frames(root) or any(has_frames(root / s) for s in SPLITS)

    def units(self, root: Path) -> list[Unit]:
        """One unit per annotated frame (count from ``joint_data.mat``); no PNG is opened."""
        folder = self.split_folder(root)
        data = self.joint_data(folder)
        if not has_frames(folder, self.kind, self.kinect):
            raise DataError(f"{folder}: no {self.kind}_{self.kinect}_NNNNNNN.png next to {JOINT_FILE}")
        k = self.kinect
        return [
            Unit(f"{k}_{f:07d}", frame_path(folder, self.kind, k, f), (folder, f - 1))
            for f in range(1, data.frames + 1)
        ]

    def read_unit(self, unit: Unit) -> LabelledImages:
        """Decode one frame into a (1, 1, size, size) crop and its labels."""
        folder, index = unit.info
        data = self.joint_data(Path(folder))
        if not 0 <= index < data.frames:
            raise DataError(f"{data.path}: frame {index + 1} asked for, the file has {data.frames}")
        xyz = torch.from_numpy(data.xyz[index])  # (36, 3) float64, y down
        if not bool(torch.isfinite(xyz).all()):
            raise DataError(f"{data.path}: frame {index + 1}: joint_xyz holds non-finite values (NaN or inf)")
        frame = torch.from_numpy(read_depth_png(unit.path))
        synth = None
        if self.mask == "synthdepth":
            synth = frame if self.kind == "synthdepth" else torch.from_numpy(
                read_depth_png(frame_path(Path(folder), "synthdepth", self.kinect, index + 1))
            )
        # Geometry in float64: sub-pixel label accuracy at any crop size; outputs are float32.
        crop = self._crop(xyz[data.palm_index].view(1, 3), data, index)  # PALM_3, found by name
        depth = self._sample(frame, synth, crop)
        if self.centre == "com":
            com = depth_centre_of_mass(depth, crop)
            if com is not None:
                crop = self._crop(com, data, index)
                depth = self._sample(frame, synth, crop)

        joints = xyz[list(data.eval_indices)].unsqueeze(0)  # (1, 14, 3)
        labels = {
            "joints_uvd": crop.project(joints).float(),
            "joints_xyz": joints.float(),
            "centre_mm": crop.centre_mm.float(),
        }
        return LabelledImages(crop.depth_to_image(depth).float(), labels)

    def unit_size(self, unit: Unit) -> int:
        return 1

    def unit_files(self, unit: Unit) -> list[Path]:
        """The frame's PNG, the synthdepth PNG that masks it (if any), and the split's joint_data.mat."""
        folder, index = unit.info
        files = [unit.path]
        if self.mask == "synthdepth" and self.kind != "synthdepth":
            files.append(frame_path(Path(folder), "synthdepth", self.kinect, index + 1))
        return [*files, Path(folder) / JOINT_FILE]

    # --- helpers ----------------------------------------------------------------------------
    def split_folder(self, root: Path) -> Path:
        """The folder holding ``joint_data.mat`` and the PNGs: ``root`` or ``root / split``."""
        root = Path(root)
        if self.split is not None and (root / self.split / JOINT_FILE).is_file():
            return root / self.split
        if (root / JOINT_FILE).is_file():
            if self.split is not None and root.name in SPLITS and root.name != self.split:
                raise DataError(f"{root}: is the {root.name!r} folder but split={self.split!r} was asked for")
            return root
        present = [s for s in SPLITS if (root / s / JOINT_FILE).is_file()]
        if present:
            held = " and ".join(f"{s}/" for s in present)
            if self.split is None:
                choices = " or ".join(repr(s) for s in present)
                raise DataError(f"{root}: holds the NYU split folder{'s' if len(present) > 1 else ''} {held}; "
                                f"set the option split to {choices}")
            raise DataError(f"{root / self.split}: missing {JOINT_FILE} ({root} holds only {held})")
        raise DataError(
            f"{root}: not an NYU Hand folder (expected {JOINT_FILE} and depth_K_NNNNNNN.png, "
            "or train/ and test/ folders holding them)"
        )

    def joint_data(self, folder: Path) -> JointData:
        """``folder/joint_data.mat`` for this loader's Kinect, read once and cached."""
        folder = Path(folder)
        with self._lock:
            if folder not in self._joints:
                self._joints[folder] = load_joint_data(folder / JOINT_FILE, self.kinect)
            return self._joints[folder]

    def _sample(self, frame: Tensor, synth: Tensor | None, crop: CropParams) -> Tensor:
        """(1, 1, S, S) float64 mm of ``frame`` in ``crop``; 0 outside the synthdepth mask."""
        depth = sample_frame(frame, crop).double()
        if synth is not None:
            depth = depth.masked_fill(~sample_silhouette(synth, crop, self.mask_dilate), 0.0)
        return depth

    def _crop(self, centre_mm: Tensor, data: JointData, index: int) -> CropParams:
        try:
            return make_crop(centre_mm.double(), self.cube_mm, self.size)
        except ValueError as exc:
            raise DataError(f"{data.path}: frame {index + 1}: bad crop centre {centre_mm.tolist()} mm ({exc})") from None

    def __getstate__(self) -> dict[str, Any]:
        # Picklable for worker processes: locks cannot be pickled, and the cache is rebuilt.
        state = dict(self.__dict__)
        state["_joints"], state["_lock"] = {}, None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
