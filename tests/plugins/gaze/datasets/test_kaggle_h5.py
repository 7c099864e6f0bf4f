"""Kaggle eye-gaze HDF5 loaders on fabricated gaze.h5 / real_gaze.h5 files."""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest
import torch

from simgan_gaze.datasets.kaggle_h5 import KaggleGazeLoader, KaggleRealGazeLoader, member_order
from simgan_toolkit.errors import ConfigError, DataError


def numbered_images(k: int) -> np.ndarray:
    """(k, 35, 55) uint8; image i is flat with value 10 * i, so pixels identify the sample."""
    return (np.arange(k, dtype=np.uint8)[:, None, None] * 10).repeat(35, 1).repeat(55, 2)


def numbered_look_vec(k: int, width: int) -> np.ndarray:
    """(k, width) Unity-convention look_vec whose x (and so yaw) identifies the sample."""
    v = np.zeros((k, width), np.float32)
    v[:, 0] = 0.05 * np.arange(k)
    v[:, 1] = 0.2  # Unity y up: the eye looks up
    v[:, 2] = -1.0
    return v


def read_all(loader, root):
    parts = [loader.read_unit(u) for u in loader.units(root)]
    return torch.cat([p.images for p in parts]), {k: torch.cat([p.labels[k] for p in parts]) for k in parts[0].labels}


@pytest.mark.parametrize("width", [3, 4])
def test_unpadded_names_are_read_in_numeric_order(tmp_path, write_kaggle_h5, width):
    path = write_kaggle_h5(tmp_path / "gaze.h5", numbered_images(12), look_vec=numbered_look_vec(12, width))
    with h5py.File(path) as f:  # the hazard: h5py lists "10", "11" before "2"
        assert list(f["image"])[:4] == ["0", "1", "10", "11"]
    loader = KaggleGazeLoader(chunk_size=5)
    units = loader.units(path)
    assert [u.key for u in units] == ["0:5", "5:10", "10:12"]
    images, labels = read_all(loader, path)
    assert images.shape == (12, 1, 35, 55)
    assert images[:, 0, 0, 0].tolist() == pytest.approx([10 * i / 127.5 - 1 for i in range(12)], abs=1e-6)
    # Row i of look_vec belongs to image i: yaw = atan2(-x, -z) with x = 0.05 i; pitch from Unity y up.
    for i in range(12):
        x, norm = 0.05 * i, math.sqrt((0.05 * i) ** 2 + 0.04 + 1.0)
        assert labels["pitch_yaw"][i].tolist() == pytest.approx([math.asin(0.2 / norm), math.atan2(-x, 1.0)], abs=1e-5)
        assert labels["gaze"][i].tolist() == pytest.approx([x / norm, -0.2 / norm, -1.0 / norm], abs=1e-5)


def test_member_order_sorts_numbers_by_value_then_text():
    assert sorted(["10", "2", "b", "0001", "a", "1"], key=member_order) == ["0001", "1", "2", "10", "a", "b"]


def test_real_gaze_is_unlabelled_and_rgb_option(tmp_path, write_kaggle_h5):
    path = write_kaggle_h5(tmp_path / "real_gaze.h5", numbered_images(3), names=["000", "001", "002"])
    loader = KaggleRealGazeLoader(rgb=True)
    assert loader.label_shapes == {} and loader.image_shape == (3, 35, 55)
    out = loader.read_unit(loader.units(path)[0])
    assert out.labels == {} and out.images.shape == (3, 3, 35, 55)
    assert out.images[2, :, 5, 5].tolist() == pytest.approx([20 / 127.5 - 1] * 3, abs=1e-6)
    with pytest.raises(DataError, match="look_vec.*kaggle_real_gaze"):
        KaggleGazeLoader().units(path)


def test_folder_root_picks_the_right_file_and_detect(tmp_path, write_kaggle_h5):
    write_kaggle_h5(tmp_path / "gaze.h5", numbered_images(2), look_vec=numbered_look_vec(2, 4))
    write_kaggle_h5(tmp_path / "real_gaze.h5", numbered_images(3))
    assert KaggleGazeLoader().units(tmp_path)[0].path.name == "gaze.h5"
    assert KaggleRealGazeLoader().units(tmp_path)[0].path.name == "real_gaze.h5"
    assert KaggleGazeLoader.detect(tmp_path) and KaggleRealGazeLoader.detect(tmp_path)
    assert KaggleGazeLoader.detect(tmp_path / "gaze.h5") and not KaggleGazeLoader.detect(tmp_path / "real_gaze.h5")
    assert KaggleRealGazeLoader.detect(tmp_path / "real_gaze.h5") and not KaggleRealGazeLoader.detect(tmp_path / "gaze.h5")
    write_kaggle_h5(tmp_path / "more_real.h5", numbered_images(1))
    assert not KaggleRealGazeLoader.detect(tmp_path)
    with pytest.raises(DataError, match="more_real.h5, real_gaze.h5"):
        KaggleRealGazeLoader().units(tmp_path)


def test_toolkit_hdf5_is_not_mistaken_for_kaggle(tmp_path):
    with h5py.File(tmp_path / "mine.h5", "w") as f:
        f.create_dataset("images", data=np.zeros((1, 1, 35, 55), np.float32))
    assert not KaggleGazeLoader.detect(tmp_path / "mine.h5") and not KaggleRealGazeLoader.detect(tmp_path)
    with pytest.raises(DataError, match="no 'image' group"):
        KaggleRealGazeLoader().units(tmp_path / "mine.h5")


def test_truncated_h5_names_the_file(tmp_path, write_kaggle_h5):
    path = write_kaggle_h5(tmp_path / "gaze.h5", numbered_images(8), look_vec=numbered_look_vec(8, 3))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=rf"{path}.*truncated"):
        KaggleGazeLoader().units(path)
    assert not KaggleGazeLoader.detect(path)


def test_look_vec_row_count_and_width_checked(tmp_path, write_kaggle_h5):
    path = write_kaggle_h5(tmp_path / "gaze.h5", numbered_images(3), look_vec=numbered_look_vec(2, 3))
    with pytest.raises(DataError, match=r"look_vec.*\(3, 3\).*got \(2, 3\)"):
        KaggleGazeLoader().units(path)
    path = write_kaggle_h5(tmp_path / "gaze.h5", numbered_images(3), look_vec=np.zeros((3, 2)))
    with pytest.raises(DataError, match="look_vec"):
        KaggleGazeLoader().units(path)


def test_bad_member_shape_names_member(tmp_path, write_kaggle_h5):
    images = [np.zeros((35, 55), np.uint8), np.zeros((36, 60), np.uint8)]
    path = write_kaggle_h5(tmp_path / "real_gaze.h5", images)
    loader = KaggleRealGazeLoader()
    with pytest.raises(DataError, match=rf"{path}: image/1.*\(36, 60\)"):
        loader.read_unit(loader.units(path)[0])


def test_prefixed_names_are_read_in_natural_order(tmp_path, write_kaggle_h5):
    """Names with a prefix ("img_10") sort by their number too, so labels stay with their images."""
    names = [f"img_{i}" for i in range(12)]
    path = write_kaggle_h5(tmp_path / "gaze.h5", numbered_images(12), names=names, look_vec=numbered_look_vec(12, 3))
    loader = KaggleGazeLoader()
    assert list(loader.units(path)[0].info.names) == names
    images, labels = read_all(loader, path)
    image_id = ((images[:, 0, 0, 0] + 1) * 127.5 / 10).round().int().tolist()
    label_id = (torch.tan(-labels["pitch_yaw"][:, 1]) / 0.05).round().int().tolist()
    assert image_id == label_id == list(range(12))
    assert sorted(["img_10", "img_2", "img_1b", "img_1a"], key=member_order) == ["img_1a", "img_1b", "img_2", "img_10"]


def test_labelled_file_with_unnumbered_or_clashing_names_is_refused(tmp_path, write_kaggle_h5):
    path = write_kaggle_h5(tmp_path / "gaze.h5", numbered_images(3), names=["a", "b", "c"], look_vec=numbered_look_vec(3, 3))
    with pytest.raises(DataError, match=rf"{path}: cannot tell which 'look_vec' row.*image/a.*no number.*kaggle_real_gaze"):
        KaggleGazeLoader().units(path)
    assert len(KaggleRealGazeLoader().units(path)[0].info.names) == 3  # unlabelled: order does not matter
    path = write_kaggle_h5(tmp_path / "gaze2.h5", numbered_images(3), names=["1", "01", "2"], look_vec=numbered_look_vec(3, 3))
    with pytest.raises(DataError, match=r"image/01 and image/1 have the same number"):
        KaggleGazeLoader().units(path)


def test_member_order_is_cross_checked_against_path(tmp_path, write_kaggle_h5):
    path = write_kaggle_h5(tmp_path / "gaze.h5", numbered_images(4), look_vec=numbered_look_vec(4, 3))
    with h5py.File(path, "r+") as f:  # rows listed in another order than the member numbers
        del f["path"]
        f.create_dataset("path", data=["imgs/0.jpg", "imgs/2.jpg", "imgs/1.jpg", "imgs/3.jpg"], dtype=h5py.string_dtype())
    with pytest.raises(DataError, match=rf"{path}: member order and 'path' disagree: image/1 .*path row 2"):
        KaggleGazeLoader().units(path)
    with h5py.File(path, "r+") as f:  # numbers unrelated to the names: nothing to cross-check
        del f["path"]
        f.create_dataset("path", data=[f"imgs/{n}.jpg" for n in (17, 5, 9, 12)], dtype=h5py.string_dtype())
    assert len(KaggleGazeLoader().units(path)) == 1


@pytest.mark.parametrize(
    ("pixels", "ok"),
    [
        (np.full((35, 55), 200.0, np.float32), True),  # 0..255 stored as float: the uint8 convention
        (np.full((35, 55), 0.8, np.float32), False),  # [0, 1]-scaled
        (np.full((35, 55), -0.5, np.float32), False),  # [-1, 1]-scaled
        (np.full((35, 55), 300, np.uint16), False),
    ],
)
def test_float_and_wide_images_must_hold_0_255_intensities(tmp_path, write_kaggle_h5, pixels, ok):
    path = write_kaggle_h5(tmp_path / "real_gaze.h5", [pixels])
    loader = KaggleRealGazeLoader()
    if ok:
        assert float(loader.read_unit(loader.units(path)[0]).images[0, 0, 0, 0]) == pytest.approx(200 / 127.5 - 1)
    else:
        with pytest.raises(DataError, match=rf"{path}: image/0: .*(0\.\.255|\[0, 1\])"):
            loader.read_unit(loader.units(path)[0])


def test_look_vec_y_convention_is_an_option(tmp_path, write_kaggle_h5):
    path = write_kaggle_h5(tmp_path / "gaze.h5", numbered_images(2), look_vec=numbered_look_vec(2, 3))
    up = KaggleGazeLoader()
    down = KaggleGazeLoader(look_vec_y="down")
    assert float(up.read_unit(up.units(path)[0]).labels["gaze"][0, 1]) < 0  # Unity y up -> OpenCV y down
    assert float(down.read_unit(down.units(path)[0]).labels["gaze"][0, 1]) > 0  # taken as is
    with pytest.raises(ConfigError, match="look_vec_y"):
        KaggleGazeLoader(look_vec_y="sideways")


@pytest.mark.parametrize(
    ("options", "needle"),
    [({"chunk_size": [1]}, "chunk_size must be an integer"), ({"chunk_size": "10"}, "chunk_size must be an integer"),
     ({"chunk_size": True}, "chunk_size must be an integer"), ({"chunk_size": 0}, "chunk_size must be >= 1"),
     ({"rgb": "false"}, "rgb must be true or false, got 'false'"), ({"rgb": 1}, "rgb must be true or false")],
)
def test_options_of_the_wrong_type_are_config_errors(options, needle):
    with pytest.raises(ConfigError, match=needle):
        KaggleRealGazeLoader(**options)
