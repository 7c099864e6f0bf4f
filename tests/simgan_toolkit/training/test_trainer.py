"""SimGAN trainer on tiny tensors: schedule, buffer use, exact resume, divergence guard."""

from __future__ import annotations

import json

import pytest
import torch

from simgan_toolkit.errors import ConfigError, TrainingDivergedError
from simgan_toolkit.training import PHASES, load_checkpoint
from simgan_toolkit.training.metrics_log import MetricsLog


def _records(out_dir):
    return [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]


def test_phases_run_configured_steps(tmp_path, tiny_config, make_trainer):
    trainer = make_trainer(tiny_config(train={"steps": 3, "sample_every": 2, "checkpoint_every": 2}), tmp_path)
    outcome = trainer.train()
    recs = _records(tmp_path)
    assert [(r["phase"], r["step"]) for r in recs] == [
        ("refiner_pretrain", 1), ("refiner_pretrain", 2),
        ("discriminator_pretrain", 1), ("discriminator_pretrain", 2),
        ("adversarial", 1), ("adversarial", 2), ("adversarial", 3),
    ]
    assert set(recs[0]) == {"phase", "step", "loss_r_reg"}
    assert set(recs[2]) == {"phase", "step", "loss_d", "d_acc"}
    assert set(recs[-1]) == {"phase", "step", "loss_r", "loss_r_adv", "loss_r_reg", "d_fooled", "loss_d", "d_acc"}
    lam = trainer.config.train.lam
    for r in recs[4:]:
        assert r["loss_r"] == pytest.approx(r["loss_r_adv"] + lam * r["loss_r_reg"], abs=3e-6)
        assert 0.0 <= r["d_acc"] <= 1.0 and 0.0 <= r["d_fooled"] <= 1.0
    assert (trainer.phase, trainer.step) == ("adversarial", 3)
    assert outcome.resumed_from is None and outcome.wall_seconds > 0
    assert set(outcome.last_metrics) == set(recs[-1]) - {"phase", "step"}
    samples = sorted(p.name for p in (tmp_path / "samples").iterdir())
    assert samples == ["pretrained_refiner.png", "step_000002.png", "step_000003.png"]
    assert (tmp_path / "checkpoints" / "last.pt").is_file()


def test_log_every_logs_multiples_and_phase_ends(tmp_path, tiny_config, make_trainer):
    make_trainer(tiny_config(train={"log_every": 3, "steps": 7}), tmp_path).train()
    assert [(r["phase"], r["step"]) for r in _records(tmp_path)] == [
        ("refiner_pretrain", 2), ("discriminator_pretrain", 2),
        ("adversarial", 3), ("adversarial", 6), ("adversarial", 7),
    ]


def test_adversarial_iteration_runs_k_g_then_k_d(tiny_config, make_trainer, monkeypatch):
    trainer = make_trainer(tiny_config(train={"steps": 2, "k_g": 2, "k_d": 3}))
    calls: list[str] = []
    orig_r, orig_d = trainer.refiner_step, trainer.discriminator_step

    def refiner_step(adversarial):
        calls.append("G" if adversarial else "g")
        return orig_r(adversarial)

    def discriminator_step():
        calls.append("D")
        return orig_d()

    monkeypatch.setattr(trainer, "refiner_step", refiner_step)
    monkeypatch.setattr(trainer, "discriminator_step", discriminator_step)
    trainer.train()
    assert "".join(calls) == "gg" + "DD" + "GGDDD" * 2


def test_pretraining_changes_only_the_right_network(tiny_config, make_trainer):
    trainer = make_trainer(tiny_config())
    r0 = [p.clone() for p in trainer.refiner.parameters()]
    d0 = [p.clone() for p in trainer.discriminator.parameters()]
    trainer.refiner_step(adversarial=False)
    assert any(not torch.equal(a, b) for a, b in zip(r0, trainer.refiner.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(d0, trainer.discriminator.parameters()))
    r1 = [p.clone() for p in trainer.refiner.parameters()]
    trainer.discriminator_step()
    assert all(torch.equal(a, b) for a, b in zip(r1, trainer.refiner.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d0, trainer.discriminator.parameters()))
    # The refiner step must not leave the discriminator frozen.
    assert all(p.requires_grad for p in trainer.discriminator.parameters())


def test_history_buffer_is_used_by_trainer(tiny_config, make_trainer, tiny_images):
    # A residual refiner starts as the identity, so every refined image is a synthetic image:
    # the buffer must hold exactly the first half of each discriminator batch of refined images.
    config = tiny_config(refiner={"output": "residual"}, train={"history_size": 64})
    synthetic = tiny_images(16, seed=1)
    trainer = make_trainer(config, synthetic=synthetic)
    seen: list[torch.Tensor] = []
    trainer.discriminator.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].detach().clone()))
    half = config.train.batch_size // 2
    for _ in range(3):
        trainer.discriminator_step()
    assert trainer.buffer is not None and len(trainer.buffer) == 3 * half
    stored = trainer.buffer.state_dict()["images"]
    refined_batches = [batch[: config.train.batch_size] for batch in seen]  # refined first, then real
    assert torch.equal(stored, torch.cat([b[:half] for b in refined_batches]))
    # Those are refiner outputs (= synthetic images here), not real ones.
    for img in stored:
        assert any(torch.equal(img, s) for s in synthetic)
    # From the second step on, the second half of the refined batch comes from the buffer.
    for step, batch in enumerate(refined_batches[1:], start=1):
        earlier = torch.cat([b[:half] for b in refined_batches[:step]])
        for img in batch[half:]:
            assert any(torch.equal(img, e) for e in earlier)


def test_no_history_buffer_when_disabled(tiny_config, make_trainer):
    trainer = make_trainer(tiny_config(train={"history": False}))
    trainer.discriminator_step()
    assert trainer.buffer is None
    assert trainer.checkpoints.state_dict()["buffer"] is None


def _train_interrupted(trainer, at):
    def stop(record):
        if (record["phase"], record["step"]) == at:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        trainer.train(on_log=stop)


@pytest.mark.parametrize("interrupt_at", [("adversarial", 3), ("discriminator_pretrain", 1)])
def test_resume_reproduces_uninterrupted_run_exactly(tmp_path, tiny_config, make_trainer, interrupt_at):
    config = tiny_config(train={"steps": 5, "history_size": 4, "checkpoint_every": 2})
    a, b = tmp_path / "a", tmp_path / "b"
    full = make_trainer(config, a)
    full_outcome = full.train()

    _train_interrupted(make_trainer(config, b), interrupt_at)
    ckpt = load_checkpoint(b / "checkpoints" / "last.pt")
    # Interrupted one step after a checkpoint; the log already holds the lost step.
    assert (ckpt["phase"], ckpt["step"]) == {("adversarial", 3): ("adversarial", 2),
                                              ("discriminator_pretrain", 1): ("refiner_pretrain", 2)}[interrupt_at]
    assert (b / "metrics.jsonl").read_text() != (a / "metrics.jsonl").read_text()

    resumed = make_trainer(config, b, init_seed=12345)  # different initial weights
    assert not all(torch.equal(p, q) for p, q in zip(resumed.refiner.parameters(), full.refiner.parameters()))
    outcome = resumed.train(resume=True)
    assert outcome.resumed_from == (ckpt["phase"], ckpt["step"])
    for net in ("refiner", "discriminator"):
        sa, sb = getattr(full, net).state_dict(), getattr(resumed, net).state_dict()
        assert sa.keys() == sb.keys()
        for k in sa:
            assert torch.equal(sa[k], sb[k]), f"{net}.{k} differs after resume"
    assert torch.equal(full.buffer.state_dict()["images"], resumed.buffer.state_dict()["images"])
    assert torch.equal(full.index_gen.get_state(), resumed.index_gen.get_state())
    assert (b / "metrics.jsonl").read_text() == (a / "metrics.jsonl").read_text()
    assert outcome.last_metrics == full_outcome.last_metrics


def test_resume_without_checkpoint_starts_fresh(tmp_path, tiny_config, make_trainer):
    with pytest.warns(UserWarning, match="no checkpoint in .*: SimGAN training restarts from step 0"):
        outcome = make_trainer(tiny_config(train={"steps": 1}), tmp_path).train(resume=True)
    assert outcome.resumed_from is None
    assert len(_records(tmp_path)) == 2 + 2 + 1


def test_resume_after_the_checkpoint_was_deleted_restarts_the_log(tmp_path, tiny_config, make_trainer):
    config = tiny_config(train={"steps": 2})
    make_trainer(config, tmp_path).train()
    log = (tmp_path / "metrics.jsonl").read_text()
    (tmp_path / "checkpoints" / "last.pt").unlink()
    with pytest.warns(UserWarning, match=f"no checkpoint in {str(tmp_path / 'checkpoints')!r}"):
        outcome = make_trainer(config, tmp_path).train(resume=True)
    assert outcome.resumed_from is None
    # Trained again from step 0: the same records, once each (not appended to the old ones).
    assert (tmp_path / "metrics.jsonl").read_text() == log


def test_resume_finished_run_does_nothing(tmp_path, tiny_config, make_trainer):
    config = tiny_config(train={"steps": 2})
    make_trainer(config, tmp_path).train()
    log = (tmp_path / "metrics.jsonl").read_text()
    ckpt = (tmp_path / "checkpoints" / "last.pt").read_bytes()
    again = make_trainer(config, tmp_path, init_seed=7)
    outcome = again.train(resume=True)
    assert outcome.resumed_from == ("adversarial", 2)
    assert (tmp_path / "metrics.jsonl").read_text() == log
    assert (tmp_path / "checkpoints" / "last.pt").read_bytes() == ckpt


def test_resume_with_different_config_is_config_error(tmp_path, tiny_config, make_trainer):
    make_trainer(tiny_config(train={"steps": 2}), tmp_path).train()
    with pytest.raises(ConfigError, match=r"its settings differ from this run's: train.steps: saved 2, now 4; use"):
        make_trainer(tiny_config(train={"steps": 4}), tmp_path).train(resume=True)
    with pytest.raises(ConfigError, match=r"refiner.width: saved 4, now 5"):
        make_trainer(tiny_config(train={"steps": 2}, refiner={"width": 5}), tmp_path).train(resume=True)


def test_checkpoint_contents(tmp_path, tiny_config, make_trainer):
    trainer = make_trainer(tiny_config(train={"steps": 2}), tmp_path)
    trainer.train()
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert isinstance(state, dict) and state["format"] == "simgan-toolkit/trainer-1"
    assert (state["phase"], state["step"]) == ("adversarial", 2)
    assert state["image_spec"] == {"channels": 1, "height": 12, "width": 16, "value_range": [-1.0, 1.0]}
    assert state["refiner_spec"]["name"] == "resnet"
    assert state["config"]["train"]["steps"] == 2
    for k, v in trainer.refiner.state_dict().items():
        assert torch.equal(state["refiner"][k], v)
    assert state["buffer"]["capacity"] == 6
    assert PHASES == ("refiner_pretrain", "discriminator_pretrain", "adversarial")


def test_no_pretraining_still_writes_a_checkpoint(tmp_path, tiny_config, make_trainer):
    config = tiny_config(train={"refiner_pretrain_steps": 0, "discriminator_pretrain_steps": 0, "steps": 1})
    make_trainer(config, tmp_path).train()
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["step"] == 1


def test_no_out_dir_writes_nothing(tmp_path, tiny_config, make_trainer, monkeypatch):
    monkeypatch.chdir(tmp_path)
    trainer = make_trainer(tiny_config(train={"steps": 1}), None)
    trainer.train()
    trainer.checkpoints.save()
    assert list(tmp_path.iterdir()) == []
    assert trainer.checkpoints.path is None


def _all_finite(state):
    return all(torch.isfinite(t).all() for net in ("refiner", "discriminator") for t in state[net].values() if t.is_floating_point())


def test_nan_real_images_stop_training(tmp_path, tiny_config, make_trainer, tiny_images):
    real = tiny_images(16, seed=2)
    real[:, :, 3, 4] = float("nan")
    trainer = make_trainer(tiny_config(train={"checkpoint_every": 1}), tmp_path, real=real)
    with pytest.raises(TrainingDivergedError) as info:
        trainer.train()
    msg = str(info.value)
    assert "loss_d" in msg and "nan" in msg and "discriminator_pretrain step 1" in msg
    assert info.value.exit_code == 3
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert (state["phase"], state["step"]) == ("refiner_pretrain", 2)  # the last good one
    assert _all_finite(state)


def test_huge_learning_rate_stops_training_without_bad_checkpoint(tmp_path, tiny_config, make_trainer):
    config = tiny_config(train={"checkpoint_every": 1, "discriminator_optimizer": {"name": "sgd", "lr": 1e30}})
    trainer = make_trainer(config, tmp_path)
    with pytest.raises(TrainingDivergedError) as info:
        trainer.train()
    # One SGD step at lr 1e30 leaves finite but huge weights; the next loss overflows.
    assert "loss_d became nan at discriminator_pretrain step 2" in str(info.value)
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert (state["phase"], state["step"]) == ("discriminator_pretrain", 1)
    assert _all_finite(state)


def test_save_refuses_non_finite_weights(tmp_path, tiny_config, make_trainer):
    trainer = make_trainer(tiny_config(), tmp_path)
    trainer.checkpoints.save()
    good = (tmp_path / "checkpoints" / "last.pt").read_bytes()
    with torch.no_grad():
        next(trainer.discriminator.parameters())[0].fill_(float("inf"))
    with pytest.raises(TrainingDivergedError, match="discriminator weights are not finite"):
        trainer.checkpoints.save()
    assert (tmp_path / "checkpoints" / "last.pt").read_bytes() == good
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["last.pt"]


def test_trainer_rejects_images_of_wrong_shape(tiny_config, make_trainer):
    from simgan_toolkit.errors import DataError

    with pytest.raises(DataError, match="real images"):
        make_trainer(tiny_config(), real=torch.zeros(4, 1, 12, 15))
    with pytest.raises(DataError, match="synthetic images"):
        make_trainer(tiny_config(), synthetic=torch.zeros(4, 12, 16))


def test_metrics_log_truncate_and_cut_line(tmp_path):
    log = MetricsLog(tmp_path / "sub" / "metrics.jsonl")
    for phase, step in [("refiner_pretrain", 1), ("refiner_pretrain", 2), ("adversarial", 1), ("adversarial", 2)]:
        log.write({"phase": phase, "step": step})
    log.truncate_after(list(PHASES), "adversarial", 1)
    assert [(r["phase"], r["step"]) for r in log.read()] == [("refiner_pretrain", 1), ("refiner_pretrain", 2), ("adversarial", 1)]
    with log.path.open("a") as f:
        f.write('{"phase": "adv')  # a line cut by a crash
    assert len(log.read()) == 3
    log.truncate_after(list(PHASES), "refiner_pretrain", 2)
    assert log.path.read_text().count("\n") == 2


def test_odd_batch_size_trains(tiny_config, make_trainer):
    trainer = make_trainer(tiny_config(train={"batch_size": 5, "history_size": 8}))
    for _ in range(3):
        trainer.discriminator_step()


def test_random_crops_are_windows_of_the_images():
    from simgan_toolkit.training.batches import random_crops

    images = torch.arange(2 * 1 * 6 * 7, dtype=torch.float32).reshape(2, 1, 6, 7)
    crops = random_crops(images, 3, torch.Generator().manual_seed(0))
    assert crops.shape == (2, 1, 3, 3)
    for i in range(2):
        # row-major arange: every crop is a contiguous window, so steps are +1 across, +7 down
        top_left = int(crops[i, 0, 0, 0]) - i * 42
        oy, ox = divmod(top_left, 7)
        assert torch.equal(crops[i, 0], images[i, 0, oy : oy + 3, ox : ox + 3])
    with pytest.raises(ValueError, match="crop_size"):
        random_crops(images, 8, torch.Generator())


def test_trainer_on_crops_refines_whole_images(tiny_config, make_trainer, tmp_path):
    config = tiny_config(train={"crop_size": 8})
    trainer = make_trainer(config, tmp_path)
    trainer.train()
    assert trainer.buffer is not None and len(trainer.buffer) > 0
    assert trainer.buffer.sample(1).shape[-2:] == (8, 8)
    full = trainer.synthetic[:2]
    assert trainer.refiner(full).shape == full.shape


def test_refiner_ema_follows_the_recursion_and_serves_inference(tiny_config, make_trainer):
    decay = 0.5
    trainer = make_trainer(tiny_config(train={"refiner_ema": decay}))
    assert trainer.inference_refiner is not trainer.refiner
    # Hand-computed EMA over three refiner steps: a <- w1; a <- d a + (1 - d) w_k (torch's
    # AveragedModel copies the weights at the first update).
    expected = None
    for _ in range(3):
        trainer.refiner_step(adversarial=False)
        w = [p.detach().clone() for p in trainer.refiner.parameters()]
        expected = w if expected is None else [decay * e + (1 - decay) * x for e, x in zip(expected, w)]
    for got, want in zip(trainer.inference_refiner.parameters(), expected):
        torch.testing.assert_close(got, want)
    # The average differs from the live weights after several different steps.
    assert not all(torch.equal(a, b) for a, b in zip(trainer.inference_refiner.parameters(), trainer.refiner.parameters()))


def test_without_ema_the_live_refiner_serves_inference(tiny_config, make_trainer):
    trainer = make_trainer(tiny_config())
    assert trainer.inference_refiner is trainer.refiner


def test_refiner_ema_is_checkpointed_resumed_and_loaded_by_refine(tmp_path, tiny_config, make_trainer):
    from simgan_toolkit.plugin import get_registry
    from simgan_toolkit.refine import load_refiner

    config = tiny_config(train={"steps": 4, "refiner_ema": 0.9, "checkpoint_every": 2})
    full = make_trainer(config, tmp_path / "a")
    full.train()
    state = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt")
    for k, v in full.inference_refiner.state_dict().items():
        assert torch.equal(state["refiner_ema"][k], v)
    # `refine` applies the average, not the live refiner.
    loaded, _ = load_refiner(tmp_path / "a" / "checkpoints" / "last.pt", get_registry())
    for a, b in zip(loaded.parameters(), full.inference_refiner.parameters()):
        assert torch.equal(a, b)
    # An interrupted run resumes its average exactly.
    _train_interrupted(make_trainer(config, tmp_path / "b"), ("adversarial", 3))
    resumed = make_trainer(config, tmp_path / "b", init_seed=5)
    resumed.train(resume=True)
    for a, b in zip(resumed.inference_refiner.parameters(), full.inference_refiner.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("norm, refiner_step_batch", [("none", 4), ("batch", 8)])
def test_refiner_step_shows_a_batch_norm_discriminator_real_images_too(tiny_config, make_trainer, norm, refiner_step_batch):
    trainer = make_trainer(tiny_config(discriminator={"norm": norm}))
    seen = []
    trainer.discriminator.register_forward_hook(lambda module, args, out: seen.append(args[0].shape[0]))
    metrics = trainer.refiner_step(adversarial=True)
    # Batch norm must see the refiner step's refined images among real ones, as in D's own step.
    assert seen == [refiner_step_batch]
    assert 0.0 <= float(metrics["d_fooled"]) <= 1.0
    seen.clear()
    trainer.discriminator_step()
    assert seen == [8]
