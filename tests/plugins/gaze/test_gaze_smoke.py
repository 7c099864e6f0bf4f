"""End-to-end smoke runs of ``--task gaze`` (the smoke profile, in-process): the learned feature
transform with a global discriminator, and data from disk that lacks a label the gaze label check reads.

The same paths on the tests' own tiny task are in ``tests/simgan_toolkit/test_pipeline.py``.
"""

from __future__ import annotations

import json

import pytest
import torch

from simgan_toolkit.config import build_config
from simgan_toolkit.data import read_attrs, read_images_h5, write_images_h5
from simgan_toolkit.pipeline import run_pipeline
from simgan_toolkit.task import LabelledImages

GAZE_SHAPE = (1, 35, 55)


def _config(registry, *overrides):
    task = registry.create("task", "gaze")
    return build_config("gaze", "smoke", task.profiles(), overrides=list(overrides))


@pytest.mark.slow
def test_gaze_smoke_run_with_learned_features_and_a_global_discriminator(tmp_path, registry):
    config = _config(registry, "feature.name='learned'", "discriminator.name='global'")
    summary = run_pipeline(config, tmp_path, registry, progress=False, say=lambda _: None)
    assert set(summary["estimators"]) == {"synthetic", "refined", "target"}
    refined = read_images_h5(tmp_path / "refined.h5")
    assert refined.images.shape == (config.data.n_synthetic, *GAZE_SHAPE)
    assert set(refined.labels) == {"gaze", "pitch_yaw", "pupil_centre"}
    attrs = read_attrs(tmp_path / "refined.h5")
    assert attrs["kind"] == "refined" and attrs["task"] == "gaze"
    assert json.loads(attrs["config"])["feature"]["name"] == "learned"


@pytest.mark.slow
def test_gaze_synthetic_from_disk_without_pupil_centre_skips_the_label_check(tmp_path, registry):
    task = registry.create("task", "gaze")
    syn = task.synthetic(48, 11, torch.device("cpu"))
    synthetic = tmp_path / "syn.h5"
    write_images_h5(synthetic, LabelledImages(syn.images, {"gaze": syn.labels["gaze"]}), {"kind": "synthetic"})
    config = _config(registry, f"data.synthetic={str(synthetic)!r}")
    notes: list[str] = []
    summary = run_pipeline(config, tmp_path / "run", registry, progress=False, say=notes.append)
    assert summary["label_preservation"] == {}
    assert any(n.startswith("label preservation skipped") and "'pupil_centre'" in n for n in notes)
    refined = read_images_h5(tmp_path / "run" / "refined.h5")
    assert refined.images.shape == (48, *GAZE_SHAPE) and set(refined.labels) == {"gaze"}
