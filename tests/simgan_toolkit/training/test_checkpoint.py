"""Atomic checkpoints, clear errors for files that are not checkpoints, and trainer checkpoints
written before the checkpointer moved out of the trainer still resuming."""

from __future__ import annotations

import errno
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from simgan_toolkit.errors import DataError
from simgan_toolkit.training import load_checkpoint, save_checkpoint
from simgan_toolkit.training.checkpoint import CHECKPOINT_FORMAT


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


class _FullDisk:
    """A binary file on a disk that fills up after ``room`` bytes (writes fail with errno 28)."""

    def __init__(self, path, room):
        self._file, self._room = open(path, "wb"), room

    def write(self, data):
        if len(data) > self._room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self._room -= len(data)
        return self._file.write(data)

    def flush(self):
        self._file.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._file.close()


@pytest.mark.parametrize("room", [0, 100, 50_000])
def test_full_disk_says_no_space_and_keeps_previous_checkpoint(tmp_path, monkeypatch, room):
    """torch.save reported a full disk as 'unexpected pos N vs M'."""
    from simgan_toolkit import io

    path = tmp_path / "last.pt"
    save_checkpoint({"format": "x", "step": 1}, path)
    monkeypatch.setattr(io, "open", lambda p, mode: _FullDisk(p, room), raising=False)
    with pytest.raises(DataError, match=r"cannot write '.*last\.pt': no space left on device"):
        save_checkpoint({"format": "x", "step": 2, "w": torch.randn(100_000)}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
    save_checkpoint({"format": "x", "step": 2}, path)  # space freed: the next save goes through
    assert load_checkpoint(path)["step"] == 2


def test_training_stopped_by_full_disk_resumes_once_space_is_freed(tmp_path, monkeypatch, tiny_config, make_trainer):
    from simgan_toolkit import io

    config = tiny_config(refiner={"noise_channels": 0}, train={"steps": 4, "checkpoint_every": 2})
    full = make_trainer(config, tmp_path / "full")
    full.train()

    saves = []

    def open_until_full(path, mode):
        saves.append(path)
        return _FullDisk(path, room=10**9 if len(saves) < 3 else 0)  # the third checkpoint finds the disk full

    monkeypatch.setattr(io, "open", open_until_full, raising=False)
    run = tmp_path / "run"
    with pytest.raises(DataError, match=r"cannot write '.*last\.pt': no space left on device"):
        make_trainer(config, run).train()
    monkeypatch.undo()
    kept = load_checkpoint(run / "checkpoints" / "last.pt")
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["last.pt"]

    resumed = make_trainer(config, run, init_seed=7)
    outcome = resumed.train(resume=True)
    assert outcome.resumed_from == (kept["phase"], kept["step"])
    for name, value in full.refiner.state_dict().items():
        assert torch.equal(resumed.refiner.state_dict()[name], value), name


#: A tiny trainer's checkpoint at adversarial step 2 (of 5), written by the trainer before its
#: checkpointing moved into TrainerCheckpointer (train settings _OLD_CHECKPOINT_TRAIN over tiny_config).
OLD_CHECKPOINT = Path(__file__).parent / "data" / "trainer-1_tiny_adversarial_2.pt"
_OLD_CHECKPOINT_TRAIN = {"steps": 5, "history_size": 4, "checkpoint_every": 2}


def test_checkpoint_keys_are_those_of_format_trainer_1(tmp_path, tiny_config, make_trainer):
    old = load_checkpoint(OLD_CHECKPOINT)
    state = make_trainer(tiny_config(train=_OLD_CHECKPOINT_TRAIN), tmp_path).checkpoints.state_dict()
    assert old["format"] == state["format"] == CHECKPOINT_FORMAT
    assert list(state) == list(old)
    assert list(state["image_spec"]) == ["channels", "height", "width", "value_range"]


def test_checkpoint_written_before_the_checkpointer_still_resumes(tmp_path, tiny_config, make_trainer):
    config = tiny_config(train=_OLD_CHECKPOINT_TRAIN)
    full = make_trainer(config, tmp_path / "full")
    full.train()
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(OLD_CHECKPOINT, run / "checkpoints" / "last.pt")

    resumed = make_trainer(config, run, init_seed=12345)  # different initial weights
    outcome = resumed.train(resume=True)
    assert outcome.resumed_from == ("adversarial", 2)
    for net in ("refiner", "discriminator"):
        expected, got = getattr(full, net).state_dict(), getattr(resumed, net).state_dict()
        assert all(torch.equal(got[k], v) for k, v in expected.items()), net
    assert torch.equal(full.buffer.state_dict()["images"], resumed.buffer.state_dict()["images"])
    assert torch.equal(full.noise_gen.get_state(), resumed.noise_gen.get_state())
