"""Atomic checkpoints and clear errors for files that are not checkpoints."""

from __future__ import annotations

import pickle

import pytest
import torch

from simgan_toolkit.errors import DataError
from simgan_toolkit.training import load_checkpoint, save_checkpoint


def test_round_trip(tmp_path):
    path = tmp_path / "deep" / "dir" / "last.pt"
    state = {"format": "simgan-toolkit/trainer-1", "step": 3, "w": torch.arange(4.0)}
    save_checkpoint(state, path)
    got = load_checkpoint(path)
    assert got["format"] == state["format"] and got["step"] == 3
    assert torch.equal(got["w"], state["w"])
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"absent\.pt.*does not exist"):
        load_checkpoint(tmp_path / "absent.pt")


@pytest.mark.parametrize("content", [b"garbage, not a checkpoint", b"", b"PK\x03\x04broken zip"])
def test_garbage_file_is_data_error(tmp_path, content):
    path = tmp_path / "junk.pt"
    path.write_bytes(content)
    with pytest.raises(DataError, match=r"junk\.pt.*cannot be read"):
        load_checkpoint(path)


def test_truncated_checkpoint_is_data_error(tmp_path):
    path = tmp_path / "cut.pt"
    save_checkpoint({"format": "x", "w": torch.randn(1000)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut\.pt"):
        load_checkpoint(path)


@pytest.mark.parametrize("payload", [[1, 2, 3], {"step": 1}, torch.zeros(2)])
def test_foreign_pickle_is_data_error(tmp_path, payload):
    path = tmp_path / "foreign.pt"
    torch.save(payload, path)
    with pytest.raises(DataError, match="no 'format' key"):
        load_checkpoint(path)


def test_failed_save_keeps_previous_checkpoint(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint({"format": "x", "step": 1}, path)
    with pytest.raises((pickle.PicklingError, AttributeError)):
        save_checkpoint({"format": "x", "step": 2, "bad": lambda: None}, path)  # lambdas cannot be pickled
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
