"""The fast training step: bf16 autocast, torch.compile, and logging that never waits for the device.

Tolerances for bf16 (8 mantissa bits, relative rounding 2^-9 per op): one step from the same
weights agrees with float32 to 2% relative; after the tiny schedule (2 + 2 + 4 steps of Adam at
lr 1e-2, which amplifies early differences) losses agree to 0.03 absolute (worst of 5 seeds:
0.014), patch accuracies to 0.1 (they move in steps of 1/64), refiner outputs to 0.05 mean /
0.25 max absolute (worst of 5 seeds: 0.024 / 0.09).
"""

from __future__ import annotations

import json
import os
import shutil
import sys

import pytest
import torch

from simgan_toolkit.config import RunConfig
from simgan_toolkit.errors import ConfigError, TrainingDivergedError
from simgan_toolkit.training import load_checkpoint


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _outputs(trainer):
    """The trained refiner on 8 fixed synthetic images (no noise), float32, eval mode."""
    x = trainer.synthetic[:8]
    trainer.refiner.eval()
    with torch.no_grad():
        return trainer.refiner(x, torch.zeros(8, trainer.refiner.noise_channels, *x.shape[-2:]))


def _losses(record):
    return {k: v for k, v in record.items() if k.startswith("loss")}


# ---------------------------------------------------------------------- config
def test_speed_settings_default_off_and_validate(tiny_config):
    cfg = tiny_config().train
    assert (cfg.amp, cfg.compile, cfg.compile_mode) == ("none", False, "default")
    with pytest.raises(ValueError):
        tiny_config(train={"amp": "fp16"})
    with pytest.raises(ValueError):
        tiny_config(train={"compile_mode": "fastest"})


def test_compile_setting_does_not_block_resume_but_amp_does(tmp_path, tiny_config, make_trainer):
    make_trainer(tiny_config(train={"steps": 2}), tmp_path).train()
    outcome = make_trainer(tiny_config(train={"steps": 2, "compile": True, "compile_mode": "max-autotune"}), tmp_path).train(resume=True)
    assert outcome.resumed_from == ("adversarial", 2)  # finished run: nothing compiled or trained
    with pytest.raises(ConfigError, match='train.amp: saved "none", now "bf16"'):
        make_trainer(tiny_config(train={"steps": 2, "amp": "bf16"}), tmp_path).train(resume=True)


def test_checkpoint_of_an_older_version_still_resumes(tmp_path, tiny_config, make_trainer):
    make_trainer(tiny_config(train={"steps": 2}), tmp_path).train()
    path = tmp_path / "checkpoints" / "last.pt"
    state = load_checkpoint(path)
    for key in ("amp", "compile", "compile_mode"):  # settings that did not exist then
        del state["config"]["train"][key]
    torch.save(state, path)
    assert make_trainer(tiny_config(train={"steps": 2}), tmp_path).train(resume=True).resumed_from == ("adversarial", 2)


# ---------------------------------------------------------------------- bf16 autocast
def test_bf16_runs_forward_passes_in_bf16_and_keeps_float32_state(tiny_config, make_trainer):
    trainer = make_trainer(tiny_config(train={"amp": "bf16"}))
    dtypes: dict[str, torch.dtype] = {}
    trainer.refiner.stem.register_forward_hook(lambda m, i, o: dtypes.setdefault("refiner", o.dtype) and None)
    trainer.discriminator.register_forward_hook(lambda m, i, o: dtypes.setdefault("discriminator", o.dtype) and None)
    metrics = {**trainer.refiner_step(adversarial=True), **trainer.discriminator_step()}
    assert dtypes == {"refiner": torch.bfloat16, "discriminator": torch.bfloat16}
    assert all(v.dtype == torch.float32 for v in metrics.values())  # losses in float32
    assert all(p.dtype == torch.float32 for net in (trainer.refiner, trainer.discriminator) for p in net.parameters())
    assert trainer.buffer.sample(1).dtype == torch.float32  # the history buffer keeps the images' dtype


def test_bf16_step_matches_float32_step(tiny_config, make_trainer):
    plain, fast = make_trainer(tiny_config()), make_trainer(tiny_config(train={"amp": "bf16"}))
    a = {**plain.refiner_step(adversarial=True), **plain.discriminator_step()}
    b = {**fast.refiner_step(adversarial=True), **fast.discriminator_step()}
    for k in ("loss_r", "loss_r_adv", "loss_r_reg", "loss_d"):
        assert b[k].item() == pytest.approx(a[k].item(), rel=2e-2), k


def test_bf16_run_stays_close_to_float32_run(tmp_path, tiny_config, make_trainer):
    plain = make_trainer(tiny_config(), tmp_path / "plain")
    fast = make_trainer(tiny_config(train={"amp": "bf16"}), tmp_path / "fast")
    plain.train()
    fast.train()
    ra, rb = _records(tmp_path / "plain" / "metrics.jsonl"), _records(tmp_path / "fast" / "metrics.jsonl")
    assert [(r["phase"], r["step"]) for r in ra] == [(r["phase"], r["step"]) for r in rb]
    for a, b in zip(ra, rb):
        assert set(a) == set(b)
        for k in set(a) - {"phase", "step"}:
            assert b[k] == pytest.approx(a[k], abs=0.03 if k.startswith("loss") else 0.1), (a["phase"], a["step"], k)
    diff = (_outputs(plain) - _outputs(fast)).abs()
    assert diff.mean() < 0.05 and diff.max() < 0.25


# ---------------------------------------------------------------------- torch.compile
def _compile_with(monkeypatch, backend):
    """Route the trainer's torch.compile calls to ``backend`` (aot_eager: traced and run through
    AOTAutograd like inductor, but without generating C++, so it takes seconds on a CPU)."""
    real = torch.compile
    calls = []

    def compile_(model, **kwargs):
        calls.append(kwargs)
        return real(model, backend=backend, **kwargs) if backend != "inductor" else real(model, **kwargs)

    monkeypatch.setattr(torch, "compile", compile_)
    return calls


@pytest.fixture
def fresh_dynamo():
    """Compiled graphs are cached on the networks' code objects: drop them after the test."""
    yield
    torch._dynamo.reset()


def _check_compiled_run(tmp_path, tiny_config, make_trainer, rel):
    plain = make_trainer(tiny_config(train={"steps": 3}), tmp_path / "plain")
    fast = make_trainer(tiny_config(train={"steps": 3, "compile": True}), tmp_path / "fast")
    assert fast.forwards.refiner_train is not fast.refiner and fast.forwards.disc_train is not fast.discriminator
    plain.train()
    fast.train()
    for a, b in zip(_records(tmp_path / "plain" / "metrics.jsonl"), _records(tmp_path / "fast" / "metrics.jsonl")):
        assert _losses(b) == pytest.approx(_losses(a), rel=rel, abs=1e-5)
    torch.testing.assert_close(_outputs(fast), _outputs(plain), rtol=rel, atol=1e-5)
    # Checkpoints hold the plain modules' weights: no "_orig_mod." prefixes, loadable as is.
    state = load_checkpoint(tmp_path / "fast" / "checkpoints" / "last.pt")
    assert state["refiner"].keys() == plain.refiner.state_dict().keys()
    assert state["discriminator"].keys() == plain.discriminator.state_dict().keys()


def test_compiled_run_matches_plain_run(tmp_path, tiny_config, make_trainer, monkeypatch, fresh_dynamo):
    calls = _compile_with(monkeypatch, "aot_eager")
    _check_compiled_run(tmp_path, tiny_config, make_trainer, rel=1e-4)
    assert calls == [{"mode": "default"}, {"mode": "default"}]  # R and D, the configured mode


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("SIMGAN_TEST_INDUCTOR") != "1",
                    reason="inductor compiles C++ for ~15 s on a cold 2-core CPU; set SIMGAN_TEST_INDUCTOR=1 to run")
@pytest.mark.skipif(shutil.which(os.environ.get("CXX", "g++")) is None and shutil.which("c++") is None,
                    reason="torch.compile (inductor) needs a C++ compiler on the CPU, and none is installed")
def test_inductor_compiled_run_matches_plain_run(tmp_path, tiny_config, make_trainer, fresh_dynamo):
    _check_compiled_run(tmp_path, tiny_config, make_trainer, rel=1e-4)


# ---------------------------------------------------------------------- asynchronous logging
def _sync_and_async(tmp_path, config, make_trainer):
    logs = {}
    for mode in (False, True):
        trainer = make_trainer(config, tmp_path / str(mode))
        trainer.logger.async_logging = mode
        seen: list[tuple[dict, int]] = []
        outcome = trainer.train(on_log=lambda r, t=trainer, s=seen: s.append((r, t.step)))
        logs[mode] = ((tmp_path / str(mode) / "metrics.jsonl").read_text(), seen, outcome)
    return logs


@pytest.mark.parametrize("schedule", [
    {"log_every": 1, "checkpoint_every": 2, "steps": 5},
    {"log_every": 3, "checkpoint_every": 4, "sample_every": 5, "steps": 11, "refiner_pretrain_steps": 7},
])
def test_async_log_writes_the_same_records_as_sync(tmp_path, tiny_config, make_trainer, schedule):
    logs = _sync_and_async(tmp_path, tiny_config(train=schedule), make_trainer)
    (sync_text, sync_seen, sync_out), (async_text, async_seen, async_out) = logs[False], logs[True]
    assert async_text == sync_text and async_text
    assert [r for r, _ in async_seen] == [r for r, _ in sync_seen]
    assert async_out.last_metrics == sync_out.last_metrics
    # Synchronous: each record arrives at its own step. Asynchronous: at a later log step,
    # except where a checkpoint (or a phase end) waits for the device anyway.
    assert all(r["step"] == step for r, step in sync_seen)
    late = [(r, step) for r, step in async_seen if step != r["step"]]
    assert late and all(step > r["step"] for r, step in late)
    for r, step in async_seen:
        if step == r["step"]:
            assert r["step"] % schedule["checkpoint_every"] == 0 or r["step"] in (2, schedule["steps"], schedule.get("refiner_pretrain_steps", 2))
    assert sorted(p.name for p in (tmp_path / "True" / "samples").iterdir()) == sorted(
        p.name for p in (tmp_path / "False" / "samples").iterdir())


def test_step_path_never_turns_tensors_into_python_numbers(tiny_config, make_trainer, monkeypatch):
    # float()/item()/bool() of a device tensor is what makes the host wait for a GPU. Counted
    # when called from the toolkit's own code (torch's optimisers read CPU step counters).
    trainer = make_trainer(tiny_config(train={"crop_size": 8}))
    calls = []
    for name in ("item", "__float__", "__bool__", "__int__", "tolist"):
        real = getattr(torch.Tensor, name)

        def spy(self, *args, _name=name, _real=real):
            caller = sys._getframe(1).f_code.co_filename
            if f"{os.sep}simgan_toolkit{os.sep}" in caller:
                calls.append((_name, caller, sys._getframe(1).f_lineno))
            return _real(self, *args)

        monkeypatch.setattr(torch.Tensor, name, spy)
    for _ in range(3):
        trainer.refiner_step(adversarial=False)
        trainer.discriminator_step()
        trainer.adversarial_iteration()
    monkeypatch.undo()
    assert calls == []


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_steps_and_logging_never_sync(tmp_path, tiny_config, tiny_spec, tiny_images):
    """On a GPU, torch's sync debug mode turns any host sync inside the loop into an error."""
    from simgan_toolkit.features import Identity
    from simgan_toolkit.losses import SimGANLoss
    from simgan_toolkit.networks import LocalDiscriminator, ResNetRefiner
    from simgan_toolkit.training import SimGANNetworks, SimGANTrainer

    cuda = torch.device("cuda")
    config = tiny_config(device="cuda", train={"crop_size": 8, "amp": "bf16", "log_every": 2, "steps": 6,
                                               "checkpoint_every": 100, "sample_every": 100})
    networks = SimGANNetworks(
        ResNetRefiner(1, **config.refiner.factory_options()).to(cuda),
        LocalDiscriminator(1, **config.discriminator.factory_options()).to(cuda), Identity().to(cuda), SimGANLoss(), {},
    )
    trainer = SimGANTrainer(config, tiny_spec, networks, tiny_images(16, 1).to(cuda), tiny_images(16, 2).to(cuda), cuda,
                            progress=False)
    for _ in range(2):  # warm-up: pinned-memory cache, cuDNN plans
        trainer.adversarial_iteration()
    torch.cuda.synchronize()
    pending = trainer.logger.start_record("adversarial", 0, trainer.adversarial_iteration())
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            trainer.refiner_step(adversarial=False)
            trainer.discriminator_step()
            metrics = trainer.adversarial_iteration()
            trainer.logger.start_record("adversarial", 1, metrics)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert set(trainer.logger.finish_record(pending)) == set(metrics)


def test_nan_is_caught_at_the_next_log_with_its_own_step(tmp_path, tiny_config, make_trainer):
    # Real images with a NaN pixel: loss_d is NaN from discriminator_pretrain step 1, which is
    # logged but not checkpointed; the run stops when that record is written (step 2).
    real = torch.rand(16, 1, 12, 16) * 2 - 1
    real[:, :, 3, 4] = float("nan")
    trainer = make_trainer(tiny_config(train={"checkpoint_every": 100, "discriminator_pretrain_steps": 3}), tmp_path, real=real)
    with pytest.raises(TrainingDivergedError) as info:
        trainer.train()
    msg = str(info.value)
    assert "loss_d" in msg and "nan" in msg and "discriminator_pretrain step 1;" in msg
    assert info.value.exit_code == 3
    assert (trainer.phase, trainer.step) == ("discriminator_pretrain", 2)  # one step later
    assert [(r["phase"], r["step"]) for r in _records(tmp_path / "metrics.jsonl")] == [("refiner_pretrain", 1), ("refiner_pretrain", 2)]
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["phase"] == "refiner_pretrain"


def test_nan_mid_run_never_reaches_a_checkpoint(tmp_path, tiny_config, make_trainer):
    # A NaN loss at adversarial step 5 poisons the weights; steps 6 and 8 are logged, step 8
    # is also a checkpoint: the step-6 record stops the run before that checkpoint is written.
    config = tiny_config(train={"steps": 8, "log_every": 2, "checkpoint_every": 4, "sample_every": 100})
    trainer = make_trainer(config, tmp_path)
    original = trainer.loss.refiner_loss_from_images

    def poisoned(*args, **kwargs):
        parts = original(*args, **kwargs)
        if trainer.phase == "adversarial" and trainer.step == 4:  # computing step 5
            parts.total = parts.total * float("nan")
        return parts

    trainer.loss.refiner_loss_from_images = poisoned
    with pytest.raises(TrainingDivergedError, match=r"became nan at adversarial step 6;"):
        trainer.train()
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert (state["phase"], state["step"]) == ("adversarial", 4)
    assert all(torch.isfinite(t).all() for t in state["refiner"].values())
    assert _records(tmp_path / "metrics.jsonl")[-1]["step"] == 4


def test_sync_logging_option_stops_at_once(tmp_path, tiny_config, make_trainer):
    real = torch.rand(16, 1, 12, 16) * 2 - 1
    real[:, :, 3, 4] = float("nan")
    trainer = make_trainer(tiny_config(train={"checkpoint_every": 100, "discriminator_pretrain_steps": 3}), tmp_path, real=real)
    trainer.logger.async_logging = False
    with pytest.raises(TrainingDivergedError, match="discriminator_pretrain step 1;"):
        trainer.train()
    assert trainer.step == 1


def test_trainer_accepts_keyword_only_speed_options(tiny_config, tiny_spec, tiny_images):
    from simgan_toolkit.features import Identity
    from simgan_toolkit.losses import SimGANLoss
    from simgan_toolkit.networks import LocalDiscriminator, ResNetRefiner
    from simgan_toolkit.training import SimGANNetworks, SimGANTrainer

    config: RunConfig = tiny_config()
    networks = SimGANNetworks(
        ResNetRefiner(1, **config.refiner.factory_options()), LocalDiscriminator(1, **config.discriminator.factory_options()),
        Identity(), SimGANLoss(), {},
    )
    trainer = SimGANTrainer(config, tiny_spec, networks, tiny_images(16, 1), tiny_images(16, 2), torch.device("cpu"), None,
                            progress=False, distributed=False, async_logging=False)
    assert not trainer.distributed and trainer.is_main and not trainer.logger.async_logging
