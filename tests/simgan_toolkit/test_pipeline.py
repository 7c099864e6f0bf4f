"""The main job in-process: the learned feature transform path and a global-discriminator run."""

from __future__ import annotations

import json

import pytest

from simgan_toolkit.config import build_config
from simgan_toolkit.data import read_attrs, read_images_h5
from simgan_toolkit.errors import ConfigError
from simgan_toolkit.pipeline import run_pipeline


def _config(registry, *overrides):
    task = registry.create("task", "gaze")
    return build_config("gaze", "smoke", task.profiles(), overrides=list(overrides))


@pytest.mark.slow
def test_learned_features_from_the_synthetic_estimator(tmp_path, registry):
    config = _config(registry, "feature.name='learned'", "discriminator.name='global'")
    summary = run_pipeline(config, tmp_path, registry, progress=False, say=lambda _: None)
    assert set(summary["estimators"]) == {"synthetic", "refined", "target"}
    refined = read_images_h5(tmp_path / "refined.h5")
    assert refined.images.shape == (config.data.n_synthetic, 1, 35, 55)
    assert set(refined.labels) == {"gaze", "pitch_yaw", "pupil_centre"}
    attrs = read_attrs(tmp_path / "refined.h5")
    assert attrs["kind"] == "refined" and attrs["task"] == "gaze"
    assert json.loads(attrs["config"])["feature"]["name"] == "learned"


def test_learned_features_need_a_synthetic_estimator(tmp_path, registry):
    config = _config(registry, "feature.name='learned'", "estimator.train_on=['refined']")
    with pytest.raises(ConfigError, match="synthetic"):
        run_pipeline(config, tmp_path, registry, progress=False, say=lambda _: None)
