"""The main job in-process: the learned feature transform path, a global-discriminator run, data from disk."""

from __future__ import annotations

import json

import pytest
import torch

from simgan_toolkit.config import build_config
from simgan_toolkit.data import convert_dataset, read_attrs, read_images_h5, write_images_h5
from simgan_toolkit.errors import ConfigError, DataError
from simgan_toolkit.pipeline import run_pipeline
from simgan_toolkit.plugin import Entry, Registry
from simgan_toolkit.task import LabelledImages


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


# --- data from disk -----------------------------------------------------------------------
GAZE_SHAPE = (1, 35, 55)


def _h5(path, data, **attrs):
    write_images_h5(path, data, {"kind": "real", **attrs})
    return path


def _converted_real(tmp_path, npz, images):
    """``images`` saved as 4 npz units and converted with ``simgan convert``'s machinery."""
    root = tmp_path / "real_npz"
    root.mkdir()
    (root / npz.marker).write_text("")
    for i, chunk in enumerate(images.numpy().reshape(4, -1, *GAZE_SHAPE)):
        npz.unit(root, f"u{i:02d}", chunk)
    convert_dataset(npz.Loader(*GAZE_SHAPE), root, tmp_path / "real.h5", progress=False, say=lambda _: None)
    return tmp_path / "real.h5"


@pytest.mark.slow
def test_run_with_real_test_and_synthetic_from_disk_and_resume(tmp_path, registry, npz):
    task = registry.create("task", "gaze")
    cpu = torch.device("cpu")
    real = _converted_real(tmp_path, npz, task.real(48, 7, cpu))
    test = _h5(tmp_path / "test.h5", task.real_labelled(40, 9, cpu))
    syn = task.synthetic(48, 11, cpu)
    synthetic = _h5(tmp_path / "syn.h5", LabelledImages(syn.images, {"gaze": syn.labels["gaze"]}), kind="synthetic")
    config = _config(registry, f"data.real={str(real)!r}", f"data.test={{path = {str(test)!r}, format = 'toolkit-h5'}}",
                     f"data.synthetic={str(synthetic)!r}")
    out = tmp_path / "run"
    notes: list[str] = []
    summary = run_pipeline(config, out, registry, progress=False, say=notes.append)
    # smoke asks for 64 synthetic, 64 real, 32 test, 64 oracle images: disk has 48, 48, 40; the oracle set is generated.
    assert summary["data_counts"] == {"synthetic": 48, "real": 48, "test": 32, "target_train": 64}
    assert f"data.real: 48 images from {real} (format toolkit-h5), fewer than data.n_real = 64: using all of them" in notes
    assert f"data.test: 32 images from {test} (format toolkit-h5)" in notes
    # The disk synthetic set has no pupil_centre, which the gaze label check reads: skipped, and said.
    assert summary["label_preservation"] == {}
    assert any(n.startswith("label preservation skipped") and "'pupil_centre'" in n for n in notes)
    saved = json.loads((out / "config.json").read_text())["data"]
    assert (saved["real"]["path"], saved["test"]["path"], saved["test"]["format"]) == (str(real), str(test), "toolkit-h5")
    refined = read_images_h5(out / "refined.h5")
    assert refined.images.shape == (48, *GAZE_SHAPE) and set(refined.labels) == {"gaze"}
    again = run_pipeline(config, out, registry, resume=True, progress=False, say=lambda _: None)
    assert again["estimators"] == summary["estimators"] and again["resumed_from"] == ["adversarial", 4]


def test_disk_images_of_the_wrong_shape_fail_before_anything_is_written(tmp_path, registry):
    small = _h5(tmp_path / "small.h5", LabelledImages(torch.zeros(4, 1, 12, 16)))
    config = _config(registry, f"data.real={str(small)!r}")
    with pytest.raises(DataError) as err:
        run_pipeline(config, tmp_path / "run", registry, progress=False, say=lambda _: None)
    message = str(err.value)
    assert f"data.real.path {str(small)!r}" in message and "(1, 12, 16)" in message and "(1, 35, 55)" in message
    assert not (tmp_path / "run").exists()


def test_missing_disk_path_names_the_side(tmp_path, registry):
    config = _config(registry, f"data.test={str(tmp_path / 'nowhere')!r}")
    with pytest.raises(DataError, match=r"data\.test\.path .*nowhere.*does not exist"):
        run_pipeline(config, tmp_path / "run", registry, progress=False, say=lambda _: None)


def _registry_with(registry, name, factory):
    mine = Registry()
    for entry in registry.entries():
        mine.add(entry)
    mine.add(Entry("task", name, factory, "tests"))
    return mine


def test_declared_labels_are_checked_before_training(tmp_path, registry):
    """GazeTask declares ``{"gaze": (3,)}``: a missing or misshapen label fails before training."""
    test = registry.create("task", "gaze").real_labelled(8, 9, torch.device("cpu"))
    no_gaze = _h5(tmp_path / "t1.h5", LabelledImages(test.images, {"pitch_yaw": test.labels["pitch_yaw"]}))
    flat = _h5(tmp_path / "t2.h5", LabelledImages(test.images, {"gaze": test.labels["gaze"][:, :2]}))
    for path, needle in [(no_gaze, "needs label 'gaze' (per-image shape (3,)) on its test images; format 'toolkit-h5' gives pitch_yaw (2,)"),
                         (flat, "label 'gaze' has per-image shape (2,), task 'gaze' needs (3,)")]:
        config = _config(registry, f"data.test={str(path)!r}")
        with pytest.raises(DataError) as err:
            run_pipeline(config, tmp_path / "run", registry, progress=False, say=lambda _: None)
        assert f"data.test.path {str(path)!r}" in str(err.value) and needle in str(err.value)
        assert not (tmp_path / "run" / "estimators").exists()  # nothing was trained


def test_undeclared_missing_label_is_named_when_first_read(tmp_path, registry):
    """A task that declares no estimator_labels: the KeyError in its metrics becomes a DataError."""
    from simgan_gaze.task import GazeTask

    class UndeclaredGaze(GazeTask):
        @property
        def estimator_labels(self):
            return None

    mine = _registry_with(registry, "gaze_undeclared", UndeclaredGaze)
    test = registry.create("task", "gaze").real_labelled(8, 9, torch.device("cpu"))
    no_gaze = _h5(tmp_path / "t.h5", LabelledImages(test.images, {"pitch_yaw": test.labels["pitch_yaw"]}))
    profiles = registry.create("task", "gaze").profiles()
    config = build_config("gaze_undeclared", "smoke", profiles,
                          overrides=[f"data.test={str(no_gaze)!r}", "estimator.train_on=['synthetic']", "estimator.steps=1"])
    with pytest.raises(DataError) as err:
        run_pipeline(config, tmp_path / "run", mine, progress=False, say=lambda _: None)
    assert "reads label 'gaze'" in str(err.value) and f"data.test.path {str(no_gaze)!r}" in str(err.value)
