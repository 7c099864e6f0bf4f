"""The gaze formats are registered, detect only their own layout, and honour the loader contract."""

from __future__ import annotations

import numpy as np
import pytest

from simgan_toolkit.data.loader import DatasetLoader
from simgan_toolkit.plugin.lazy import resolve

FORMATS = ("unityeyes", "mpiigaze", "kaggle_gaze", "kaggle_real_gaze")


@pytest.fixture
def roots(tmp_path, write_unityeyes, write_mpiigaze_day, write_kaggle_h5) -> dict[str, object]:
    """One fabricated dataset of each format, each in its own folder."""
    write_unityeyes(tmp_path / "unity" / "imgs", 1)
    write_mpiigaze_day(tmp_path / "mpii", 0, 1, n=2)
    (tmp_path / "kaggle").mkdir()
    images = np.zeros((3, 35, 55), np.uint8)
    write_kaggle_h5(tmp_path / "kaggle" / "gaze.h5", images, look_vec=np.tile([0.0, 0.0, -1.0], (3, 1)))
    write_kaggle_h5(tmp_path / "kaggle" / "real_gaze.h5", images)
    return {
        "unityeyes": tmp_path / "unity",
        "mpiigaze": tmp_path / "mpii",
        "kaggle_gaze": tmp_path / "kaggle" / "gaze.h5",
        "kaggle_real_gaze": tmp_path / "kaggle" / "real_gaze.h5",
    }


def test_formats_are_registered(registry):
    assert set(FORMATS) <= set(registry.names("dataset"))
    for name in FORMATS:
        entry = registry.get("dataset", name)
        assert entry.plugin and entry.description
        assert issubclass(resolve(entry.factory), DatasetLoader) and entry.factory.name == name


@pytest.mark.parametrize("name", FORMATS)
def test_detect_recognises_only_its_own_format(registry, roots, name):
    detected = [other for other in FORMATS if registry.get("dataset", other).factory.detect(roots[name])]
    assert detected == [name]


@pytest.mark.parametrize("name", FORMATS)
def test_units_then_read_unit_matches_declared_shapes(registry, roots, name):
    loader = registry.create("dataset", name)
    for unit in loader.units(roots[name]):
        out = loader.read_unit(unit)
        assert tuple(out.images.shape[1:]) == loader.image_shape
        assert float(out.images.min()) >= -1 and float(out.images.max()) <= 1
        assert {k: tuple(v.shape[1:]) for k, v in out.labels.items()} == loader.label_shapes
