"""Applying a trained refiner: determinism, batch-size independence, HDF5 in/out with labels."""

from __future__ import annotations

import pytest
import torch

from simgan_toolkit.data import read_attrs, read_images_h5, write_images_h5
from simgan_toolkit.errors import DataError
from simgan_toolkit.networks import ResNetRefiner
from simgan_toolkit.refine import load_refiner, refine_h5, refine_images
from simgan_toolkit.task import LabelledImages
from simgan_toolkit.training import save_checkpoint


@pytest.fixture
def registry(spot):
    """The tests' own registry (the spot task, its estimator and the built-ins; no entry-point
    plugins): core needs no domain plugin."""
    return spot.registry()


def _refiner(noise_channels=0):
    torch.manual_seed(0)
    r = ResNetRefiner(1, width=4, blocks=1, noise_channels=noise_channels)
    r.train()
    return r


def test_refine_images_deterministic_and_eval_mode():
    r = _refiner()
    x = torch.randn(9, 1, 12, 16)
    a = refine_images(r, x)
    assert not r.training
    assert torch.equal(a, refine_images(r, x))
    with torch.no_grad():
        assert torch.equal(a, r(x))
    assert not a.requires_grad


def test_refine_images_batch_size_independent_without_noise():
    r = _refiner()
    x = torch.randn(9, 1, 12, 16)
    whole = refine_images(r, x, batch_size=100)
    for bs in (1, 2, 4):
        torch.testing.assert_close(refine_images(r, x, batch_size=bs), whole, rtol=1e-6, atol=1e-6)


def test_refine_images_with_noise_reproducible_by_seed():
    r = _refiner(noise_channels=1)
    x = torch.randn(5, 1, 12, 16)
    a = refine_images(r, x, seed=1)
    assert torch.equal(a, refine_images(r, x, seed=1))
    assert not torch.allclose(a, refine_images(r, x, seed=2))


def test_refine_images_empty():
    out = refine_images(_refiner(), torch.zeros(0, 1, 4, 4))
    assert out.shape == (0, 1, 4, 4)


@pytest.fixture
def checkpoint(tmp_path, tiny_config, make_trainer):
    """A trainer checkpoint of a refiner without noise, after a short training run."""
    config = tiny_config(refiner={"noise_channels": 0}, train={"steps": 1})
    trainer = make_trainer(config, tmp_path / "run")
    trainer.train()
    return trainer, tmp_path / "run" / "checkpoints" / "last.pt"


def _input(path, n=7, shape=(1, 12, 16)):
    g = torch.Generator().manual_seed(4)
    data = LabelledImages(torch.rand(n, *shape, generator=g) * 2 - 1, {"y": torch.randn(n, 2, generator=g)})
    write_images_h5(path, data, {"kind": "synthetic", "task": "tiny", "value_range": [-1.0, 1.0]})
    return data


def test_load_refiner_restores_weights(checkpoint, registry):
    trainer, path = checkpoint
    refiner, spec = load_refiner(path, registry)
    assert spec == {"channels": 1, "height": 12, "width": 16, "value_range": [-1.0, 1.0]}
    for k, v in trainer.refiner.state_dict().items():
        assert torch.equal(refiner.state_dict()[k], v)


def test_refine_h5_carries_labels_and_sets_attrs(tmp_path, checkpoint, registry):
    trainer, ckpt = checkpoint
    data = _input(tmp_path / "syn.h5")
    out = tmp_path / "refined.h5"
    n = refine_h5(ckpt, tmp_path / "syn.h5", out, registry, batch_size=3, progress=False)
    assert n == 7
    back = read_images_h5(out)
    assert torch.equal(back.labels["y"], data.labels["y"])
    torch.testing.assert_close(back.images, refine_images(trainer.refiner, data.images), rtol=1e-6, atol=1e-6)
    assert not torch.allclose(back.images, data.images)  # the trained refiner changed something
    attrs = read_attrs(out)
    assert attrs["kind"] == "refined"
    assert attrs["task"] == "tiny" and attrs["value_range"] == [-1.0, 1.0]
    assert attrs["refiner_checkpoint"] == str(ckpt.resolve())
    assert attrs["source_file"] == str((tmp_path / "syn.h5").resolve())
    assert attrs["refine_seed"] == 0 and attrs["count"] == 7


def test_refine_h5_shape_mismatch(tmp_path, checkpoint, registry):
    _, ckpt = checkpoint
    _input(tmp_path / "big.h5", shape=(1, 35, 55))
    with pytest.raises(DataError, match=r"big\.h5.*\(1, 35, 55\).*\(1, 12, 16\)"):
        refine_h5(ckpt, tmp_path / "big.h5", tmp_path / "out.h5", registry, progress=False)
    assert not (tmp_path / "out.h5").exists()


def test_refine_h5_bad_checkpoint(tmp_path, registry):
    _input(tmp_path / "syn.h5")
    no_spec = tmp_path / "nospec.pt"
    save_checkpoint({"format": "simgan-toolkit/trainer-1", "refiner": {}}, no_spec)
    with pytest.raises(DataError, match="no refiner_spec"):
        refine_h5(no_spec, tmp_path / "syn.h5", tmp_path / "out.h5", registry, progress=False)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"junk")
    with pytest.raises(DataError, match=r"junk\.pt"):
        refine_h5(junk, tmp_path / "syn.h5", tmp_path / "out.h5", registry, progress=False)


def test_refine_h5_empty_input(tmp_path, checkpoint, registry):
    _, ckpt = checkpoint
    write_images_h5(tmp_path / "empty.h5", LabelledImages(torch.zeros(0, 1, 12, 16)), {"kind": "synthetic"})
    try:
        n = refine_h5(ckpt, tmp_path / "empty.h5", tmp_path / "out.h5", registry, progress=False)
    except DataError as exc:
        assert "empty.h5" in str(exc)
    else:
        assert n == 0


def test_refine_h5_replaces_an_existing_output_only_with_overwrite(tmp_path, checkpoint, registry):
    _, ckpt = checkpoint
    _input(tmp_path / "syn.h5")
    out = tmp_path / "refined.h5"
    write_images_h5(out, LabelledImages(torch.zeros(2, 1, 12, 16)), {"kind": "old"})
    with pytest.raises(DataError, match=r"refined\.h5' already exists; pass --overwrite"):
        refine_h5(ckpt, tmp_path / "syn.h5", out, registry, progress=False)
    assert read_attrs(out)["kind"] == "old"
    assert refine_h5(ckpt, tmp_path / "syn.h5", out, registry, progress=False, overwrite=True) == 7
    assert read_attrs(out)["kind"] == "refined"
    with pytest.raises(DataError, match="is the input file"):
        refine_h5(ckpt, tmp_path / "syn.h5", tmp_path / "syn.h5", registry, progress=False, overwrite=True)
