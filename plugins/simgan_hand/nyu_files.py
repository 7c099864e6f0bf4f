"""NYU Hand Pose dataset files (Tompson et al. 2014): names, depth PNGs and ``joint_data.mat``.

Layout of one split folder (``dataset/train`` or ``dataset/test``)::

    joint_data.mat                          joint_xyz, joint_uvd (3, N, 36, 3), joint_names (1, 36)
    depth_{K}_{FFFFFFF}.png                 Kinect K in {1, 2, 3}, frame F = 1 .. N (1-based)
    synthdepth_{K}_{FFFFFFF}.png            the fitted hand model rendered at the annotated pose
    rgb_{K}_{FFFFFFF}.png                   (not used)

Depth PNGs are 640x480 8-bit RGB with depth in mm packed as ``G * 256 + B`` (R unused); 0 is
"no reading" (and the synthdepth background). ``joint_xyz`` is in mm in each Kinect's camera
frame with x right, **y up**, z forward; :func:`nyu_to_camera` flips y into the toolkit's y-down
camera space. Everything here is numpy/scipy/PIL only and raises
:class:`~simgan_toolkit.errors.DataError` naming the file and what was expected.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simgan_toolkit.errors import DataError

#: Frame size of every NYU PNG, (width, height) as PIL reports it.
FRAME_SIZE = (640, 480)
JOINT_FILE = "joint_data.mat"
KINDS = ("depth", "synthdepth")
KINECTS = (1, 2, 3)
#: The 36 joints of ``joint_data.mat`` in file order: per finger (F1 little, F2 ring, F3 middle,
#: F4 index, TH thumb) KNU3_A (tip) .. KNU1_B, then PALM_1 .. PALM_6.
NYU_JOINT_NAMES: tuple[str, ...] = tuple(
    f"{finger}_KNU{k}_{ab}" for finger in ("F1", "F2", "F3", "F4", "TH") for k in (3, 2, 1) for ab in "AB"
) + tuple(f"PALM_{i}" for i in range(1, 7))
#: The 14 evaluation joints (DeepPrior++'s ``restrictedJointsEval``) as indices into the 36.
NYU_EVAL_FILE_INDICES: tuple[int, ...] = (0, 3, 6, 9, 12, 15, 18, 21, 24, 25, 27, 30, 31, 32)
#: PALM_3, the palm centre every crop is centred on: its index in the *standard* order. A file's
#: own ``joint_names`` decide its index there (:attr:`JointData.palm_index`).
PALM_3 = NYU_JOINT_NAMES.index("PALM_3")


def frame_path(folder: Path, kind: str, kinect: int, frame: int) -> Path:
    """``folder / f"{kind}_{kinect}_{frame:07d}.png"``; ``frame`` is 1-based like the files."""
    return Path(folder) / f"{kind}_{kinect}_{frame:07d}.png"


def has_frames(folder: Path, kind: str = "depth", kinect: int = 1) -> bool:
    """Whether ``folder`` holds ``joint_data.mat`` and at least one ``{kind}_{kinect}_*.png``.

    Stops at the first match, so it stays cheap on a folder of 650k files.
    """
    folder = Path(folder)
    if not (folder / JOINT_FILE).is_file():
        return False
    prefix = f"{kind}_{kinect}_"
    try:
        with os.scandir(folder) as entries:
            return any(e.name.startswith(prefix) and e.name.endswith(".png") for e in entries)
    except OSError:
        return False


# --------------------------------------------------------------------------------------------
# Depth PNGs
# --------------------------------------------------------------------------------------------


def pack_depth_rgb(depth_mm: np.ndarray) -> np.ndarray:
    """Depth (H, W) integer mm in [0, 65535] -> uint8 RGB (H, W, 3): R = 0, G = high, B = low byte."""
    d = np.asarray(depth_mm)
    if d.ndim != 2:
        raise ValueError(f"depth must have shape (H, W), got {d.shape}")
    if d.size and (d.min() < 0 or d.max() > 65535):
        raise ValueError("depth must lie in [0, 65535] mm")
    d = d.astype(np.uint16)
    rgb = np.zeros(d.shape + (3,), dtype=np.uint8)
    rgb[..., 1] = d >> 8
    rgb[..., 2] = d & 255
    return rgb


def unpack_depth_rgb(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) -> depth (H, W) float32 mm, ``G * 256 + B`` (exact up to 65535)."""
    return rgb[..., 1].astype(np.float32) * 256.0 + rgb[..., 2].astype(np.float32)


def read_depth_png(path: Path) -> np.ndarray:
    """Decode one NYU depth or synthdepth PNG to (480, 640) float32 mm (0 = no reading).

    Raises:
        DataError: the file is missing, unreadable or truncated, or not a 640x480 RGB image.
    """
    from PIL import Image  # deferred: only reading needs PIL

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: missing NYU depth image (expected a 640x480 RGB PNG)")
    try:
        with Image.open(path) as img:
            if img.mode != "RGB" or img.size != FRAME_SIZE:
                raise DataError(
                    f"{path}: expected a 640x480 RGB PNG (depth = G*256 + B mm), "
                    f"got mode {img.mode} size {img.size[0]}x{img.size[1]}"
                )
            rgb = np.asarray(img.convert("RGB"))
    except DataError:
        raise
    # PIL reports a truncated or corrupt file as OSError, SyntaxError, ValueError or zlib.error.
    except (OSError, SyntaxError, ValueError, zlib.error) as exc:
        raise DataError(f"{path}: cannot decode PNG ({exc}); expected a 640x480 RGB depth image") from None
    return unpack_depth_rgb(rgb)


# --------------------------------------------------------------------------------------------
# joint_data.mat
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JointData:
    """The annotations of one split and Kinect, in the toolkit's camera space.

    Attributes:
        path: the ``joint_data.mat`` they came from.
        kinect: 1, 2 or 3.
        xyz: (N, 36, 3) float64 joints in mm, x right, **y down**, z forward (file order).
        names: the 36 joint names of the file.
        eval_indices: file indices of the 14 evaluation joints in
            :data:`simgan_hand.skeleton.NYU_EVAL_NAMES` order, found by name.
        palm_index: file index of PALM_3 (the crop centre), found by name.
    """

    path: Path
    kinect: int
    xyz: np.ndarray
    names: tuple[str, ...]
    eval_indices: tuple[int, ...]
    palm_index: int

    @property
    def frames(self) -> int:
        return int(self.xyz.shape[0])


def nyu_to_camera(xyz: np.ndarray) -> np.ndarray:
    """NYU ``joint_xyz`` (..., 3), y up, to the toolkit's camera space (y down): negate y."""
    out = np.array(xyz, dtype=np.float64, copy=True)
    out[..., 1] *= -1.0
    return out


def _names(raw: object, path: Path) -> tuple[str, ...]:
    """``joint_names`` as loaded by scipy (a (1, 36) object array of str or 1-element arrays)."""
    arr = np.asarray(raw, dtype=object).ravel()
    names = []
    for item in arr:
        while isinstance(item, np.ndarray) and item.size == 1:
            item = item.ravel()[0]
        names.append(str(item).strip())
    if len(names) != len(NYU_JOINT_NAMES) or set(names) != set(NYU_JOINT_NAMES):
        raise DataError(
            f"{path}: joint_names must hold the 36 NYU joint names (F1_KNU3_A .. PALM_6), got {names[:4]}..."
        )
    return tuple(names)


#: Bytes of a MATLAB v5 file's text header, before its first data element.
_MAT_HEADER = 128
#: Data element type of a zlib-compressed element (the only one not padded to 8 bytes).
_MI_COMPRESSED = 15


def mat_truncation(path: Path) -> str | None:
    """Why the MATLAB v5 file ``path`` is cut short, or None when its elements end with the file.

    scipy reads only the variables asked for and seeks past the others, so a file cut in the
    middle loads as if the variables after the cut were never there. Walking the top-level
    element tags (type, byte count) finds the cut whatever is asked for. Files that are not
    v5 (v7.3 is HDF5) return None: scipy's own error describes those.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        header = f.read(_MAT_HEADER)
        if len(header) < _MAT_HEADER:
            return f"{size} bytes, shorter than the {_MAT_HEADER}-byte MAT-file header"
        endian = {b"IM": "<", b"MI": ">"}.get(header[126:128])
        if endian is None or struct.unpack(endian + "H", header[124:126])[0] != 0x0100:
            return None
        offset = _MAT_HEADER
        while offset < size:
            f.seek(offset)
            tag = f.read(8)
            if len(tag) < 8:
                return f"the file ends {size - offset} bytes into a data element tag"
            kind, nbytes = struct.unpack(endian + "II", tag)
            if kind >> 16:  # small element: its data sits inside the 8-byte tag
                end = offset + 8
            else:
                end = offset + 8 + nbytes
                if kind != _MI_COMPRESSED:
                    end += -end % 8
            if end > size:
                return f"a data element at byte {offset} needs {end} bytes, the file has {size}"
            offset = end
    return None


def load_joint_data(path: Path, kinect: int = 1) -> JointData:
    """Read ``joint_data.mat`` and keep Kinect ``kinect``'s joints, converted to y-down mm.

    ``joint_xyz`` (3, N, 36, 3) is required; ``joint_names`` (1, 36) is checked when present
    (and used to find the evaluation joints and PALM_3); ``joint_uvd`` is not needed (uv is
    recomputed from xyz) and is not loaded, but its shape (read from the file's variable
    headers with ``scipy.io.whosmat``) must match ``joint_xyz``'s when present.

    Raises:
        DataError: missing, truncated or unreadable file, a missing variable or a wrong shape.
    """
    import scipy.io  # deferred: only reading needs scipy

    from simgan_hand.skeleton import NYU_EVAL_NAMES  # deferred: skeleton imports torch

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: missing NYU {JOINT_FILE} (expected joint_xyz, joint_uvd, joint_names)")
    try:
        cut = mat_truncation(path)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    if cut is not None:
        raise DataError(f"{path}: truncated or damaged ({cut}); copy {JOINT_FILE} from the NYU download again")
    try:
        shapes = {name: tuple(shape) for name, shape, _ in scipy.io.whosmat(str(path))}
        mat = scipy.io.loadmat(str(path), variable_names=["joint_xyz", "joint_names"])
    # scipy reports corrupt files as MatReadError, ValueError, IndexError, ... (v7.3/HDF5 files as
    # NotImplementedError): whatever it raises, the file is not a readable v5 MAT file.
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"{path}: cannot read as a MATLAB v5 file ({exc})") from None
    if not shapes:
        raise DataError(f"{path}: holds no variables (an empty or truncated file); expected joint_xyz (3, N, 36, 3)")
    if "joint_xyz" not in mat:
        raise DataError(f"{path}: missing variable joint_xyz (expected shape (3, N, 36, 3), mm, y up)")
    xyz = np.asarray(mat["joint_xyz"])
    if xyz.ndim != 4 or xyz.shape[0] < 1 or xyz.shape[2:] != (36, 3) or xyz.shape[1] < 1:
        raise DataError(f"{path}: joint_xyz must have shape (kinects, N, 36, 3), got {xyz.shape}")
    if not np.issubdtype(xyz.dtype, np.number):
        raise DataError(f"{path}: joint_xyz must be numeric, got dtype {xyz.dtype}")
    if kinect > xyz.shape[0]:
        raise DataError(f"{path}: joint_xyz holds {xyz.shape[0]} kinect(s), kinect {kinect} was asked for")
    if "joint_uvd" in shapes and shapes["joint_uvd"] != xyz.shape:
        raise DataError(f"{path}: joint_uvd must have the shape of joint_xyz {xyz.shape}, got {shapes['joint_uvd']}")
    names = _names(mat["joint_names"], path) if "joint_names" in mat else NYU_JOINT_NAMES
    eval_indices = tuple(names.index(n) for n in NYU_EVAL_NAMES)
    return JointData(path, kinect, nyu_to_camera(xyz[kinect - 1]), names, eval_indices, names.index("PALM_3"))
