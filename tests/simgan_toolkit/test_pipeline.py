"""The main job in-process: the learned feature transform path, a global-discriminator run, data from disk.

On the tests' own tiny task (``spot``): core must work for any domain. The built-in tasks' own
end-to-end runs are under ``tests/plugins/``.
"""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from simgan_toolkit.config import build_config
from simgan_toolkit.data import convert_dataset, read_attrs, read_images_h5, write_images_h5
from simgan_toolkit.errors import ConfigError, DataError, SimganDeprecationWarning
from simgan_toolkit.pipeline import run_pipeline
from simgan_toolkit.plugin import Entry, Registry
from simgan_toolkit.task import LabelledImages

SPOT = "tiny_spot"
SPOT_SHAPE = (1, 12, 16)


@pytest.fixture
def spot_registry(spot) -> Registry:
    return spot.registry()


def _config(registry, *overrides, task: str = SPOT):
    profiles = registry.create("task", SPOT).profiles()
    return build_config(task, "smoke", profiles, overrides=["device='cpu'", *overrides])


def test_learned_features_from_the_synthetic_estimator(tmp_path, spot_registry):
    config = _config(spot_registry, "feature.name='learned'", "discriminator.name='global'")
    summary = run_pipeline(config, tmp_path, spot_registry, progress=False, say=lambda _: None)
    assert set(summary["estimators"]) == {"synthetic", "refined", "target"}
    refined = read_images_h5(tmp_path / "refined.h5")
    assert refined.images.shape == (config.data.n_synthetic, *SPOT_SHAPE)
    assert set(refined.labels) == {"y"}
    attrs = read_attrs(tmp_path / "refined.h5")
    assert attrs["kind"] == "refined" and attrs["task"] == SPOT
    assert json.loads(attrs["config"])["feature"]["name"] == "learned"


def test_learned_features_need_a_synthetic_estimator(tmp_path, spot_registry):
    config = _config(spot_registry, "feature.name='learned'", "estimator.train_on=['refined']")
    with pytest.raises(ConfigError, match="synthetic"):
        run_pipeline(config, tmp_path, spot_registry, progress=False, say=lambda _: None)


# --- data from disk -----------------------------------------------------------------------


def _h5(path, data, **attrs):
    write_images_h5(path, data, {"kind": "real", **attrs})
    return path


def _converted_real(tmp_path, npz, images):
    """``images`` saved as 4 npz units and converted with ``simgan convert``'s machinery."""
    root = tmp_path / "real_npz"
    root.mkdir()
    (root / npz.marker).write_text("")
    for i, chunk in enumerate(images.numpy().reshape(4, -1, *SPOT_SHAPE)):
        npz.unit(root, f"u{i:02d}", chunk)
    convert_dataset(npz.Loader(*SPOT_SHAPE), root, tmp_path / "real.h5", progress=False, say=lambda _: None)
    return tmp_path / "real.h5"


def _as_before_v1(out):
    """Rewrite the run folder ``out`` as a version before v1 wrote it: ``data.n_real`` and
    ``data.real`` instead of ``data.n_target`` and ``data.target``, in config.json and in the
    trainer checkpoint."""
    from simgan_toolkit.training.checkpoint import load_checkpoint, save_checkpoint

    def old_names(config):
        data = config["data"]
        data["n_real"], data["real"] = data.pop("n_target"), data.pop("target")
        return config

    (out / "config.json").write_text(json.dumps(old_names(json.loads((out / "config.json").read_text()))))
    state = load_checkpoint(out / "checkpoints" / "last.pt")
    state["config"] = old_names(state["config"])
    save_checkpoint(state, out / "checkpoints" / "last.pt")


def _registry_with(registry, name, factory):
    mine = Registry()
    for entry in registry.entries():
        mine.add(entry)
    mine.add(Entry("task", name, factory, "tests"))
    return mine


@pytest.fixture
def centred_spot(spot):
    """The spot task whose synthetic images also carry a ``centre`` label, which its label check reads."""

    class CentredSpot(spot.Task):
        def synthetic(self, n, seed, device):
            made = super().synthetic(n, seed, device)
            return LabelledImages(made.images, {**made.labels, "centre": made.labels["y"]})

        def label_preservation(self, synthetic, refined):
            return {"centre_mean": float(synthetic.labels["centre"].mean())}

    return CentredSpot


@pytest.mark.slow
def test_run_with_real_test_and_synthetic_from_disk_and_resume(tmp_path, spot_registry, centred_spot, npz):
    registry = _registry_with(spot_registry, "spot_centred", centred_spot)
    task = centred_spot()
    cpu = torch.device("cpu")
    real = _converted_real(tmp_path, npz, task.target(12, 7, cpu))
    test = _h5(tmp_path / "test.h5", task.target_labelled(10, 9, cpu))
    syn = task.synthetic(12, 11, cpu)
    synthetic = _h5(tmp_path / "syn.h5", LabelledImages(syn.images, {"y": syn.labels["y"]}), kind="synthetic")
    config = _config(registry, f"data.target={str(real)!r}", f"data.test={{path = {str(test)!r}, format = 'toolkit-h5'}}",
                     f"data.synthetic={str(synthetic)!r}", task="spot_centred")
    out = tmp_path / "run"
    notes: list[str] = []
    summary = run_pipeline(config, out, registry, progress=False, say=notes.append)
    # smoke asks for 16 synthetic, 16 real, 8 test, 16 oracle images: disk has 12, 12, 10; the oracle set is generated.
    assert summary["data_counts"] == {"synthetic": 12, "target": 12, "test": 8, "target_train": 16}
    assert f"data.target: 12 images from {real} (format toolkit-h5), fewer than data.n_target = 16: using all of them" in notes
    assert f"data.test: 8 images from {test} (format toolkit-h5)" in notes
    # The disk synthetic set has no centre, which the task's label check reads: skipped, and said.
    assert summary["label_preservation"] == {}
    assert any(n.startswith("label preservation skipped") and "'centre'" in n for n in notes)
    saved = json.loads((out / "config.json").read_text())["data"]
    assert (saved["target"]["path"], saved["test"]["path"], saved["test"]["format"]) == (str(real), str(test), "toolkit-h5")
    refined = read_images_h5(out / "refined.h5")
    assert refined.images.shape == (12, *SPOT_SHAPE) and set(refined.labels) == {"y"}
    # A run folder written before v1 (data.n_real, data.real) resumes as well, without a warning.
    _as_before_v1(out)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SimganDeprecationWarning)
        again = run_pipeline(config, out, registry, resume=True, progress=False, say=lambda _: None)
    assert again["estimators"] == summary["estimators"] and again["resumed_from"] == ["adversarial", config.train.steps]
    assert "target" in json.loads((out / "config.json").read_text())["data"]  # written again with the new names


def test_disk_images_of_the_wrong_shape_fail_before_anything_is_written(tmp_path, spot_registry):
    small = _h5(tmp_path / "small.h5", LabelledImages(torch.zeros(4, 1, 6, 8)))
    config = _config(spot_registry, f"data.target={str(small)!r}")
    with pytest.raises(DataError) as err:
        run_pipeline(config, tmp_path / "run", spot_registry, progress=False, say=lambda _: None)
    message = str(err.value)
    assert f"data.target.path {str(small)!r}" in message and "(1, 6, 8)" in message and "(1, 12, 16)" in message
    assert not (tmp_path / "run").exists()


def test_missing_disk_path_names_the_side(tmp_path, spot_registry):
    config = _config(spot_registry, f"data.test={str(tmp_path / 'nowhere')!r}")
    with pytest.raises(DataError, match=r"data\.test\.path .*nowhere.*does not exist"):
        run_pipeline(config, tmp_path / "run", spot_registry, progress=False, say=lambda _: None)


def test_declared_labels_are_checked_before_training(tmp_path, spot_registry):
    """The spot task declares ``{"y": (2,)}``: a missing or misshapen label fails before training."""
    test = spot_registry.create("task", SPOT).target_labelled(8, 9, torch.device("cpu"))
    no_y = _h5(tmp_path / "t1.h5", LabelledImages(test.images, {"xy": test.labels["y"]}))
    flat = _h5(tmp_path / "t2.h5", LabelledImages(test.images, {"y": test.labels["y"][:, :1]}))
    for path, needle in [(no_y, "needs label 'y' (per-image shape (2,)) on its test images; format 'toolkit-h5' gives xy (2,)"),
                         (flat, f"label 'y' has per-image shape (1,), task {SPOT!r} needs (2,)")]:
        config = _config(spot_registry, f"data.test={str(path)!r}")
        with pytest.raises(DataError) as err:
            run_pipeline(config, tmp_path / "run", spot_registry, progress=False, say=lambda _: None)
        assert f"data.test.path {str(path)!r}" in str(err.value) and needle in str(err.value)
        assert not (tmp_path / "run" / "estimators").exists()  # nothing was trained


def test_undeclared_missing_label_is_named_when_first_read(tmp_path, spot, spot_registry):
    """A task that declares no estimator_labels: the KeyError in its metrics becomes a DataError."""

    class UndeclaredSpot(spot.Task):
        @property
        def estimator_labels(self):
            return None

    mine = _registry_with(spot_registry, "spot_undeclared", UndeclaredSpot)
    test = spot_registry.create("task", SPOT).target_labelled(8, 9, torch.device("cpu"))
    no_y = _h5(tmp_path / "t.h5", LabelledImages(test.images, {"xy": test.labels["y"]}))
    config = _config(mine, f"data.test={str(no_y)!r}", "estimator.train_on=['synthetic']", "estimator.steps=1",
                     task="spot_undeclared")
    with pytest.raises(DataError) as err:
        run_pipeline(config, tmp_path / "run", mine, progress=False, say=lambda _: None)
    assert "reads label 'y'" in str(err.value) and f"data.test.path {str(no_y)!r}" in str(err.value)
