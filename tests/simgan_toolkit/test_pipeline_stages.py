"""The pipeline's stages called one by one (as a benchmark does), where each runs under DDP,
the one resume check, and the trainer built from a config; on the tests' own tiny task."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from simgan_toolkit.config import RunConfig, build_config, check_resume_compatible
from simgan_toolkit.environment import resolve_device, to_device
from simgan_toolkit.errors import ConfigError
from simgan_toolkit.pipeline import EstimatorResults, Run, StageClock, make_data, stage, train_estimators, train_simgan, write_summary
from simgan_toolkit.pipeline.data import SEED_OFFSETS
from simgan_toolkit.pipeline.refined import refine_and_export
from simgan_toolkit.pipeline.summary import save_figures
from simgan_toolkit.training import SimGANTrainer, refiner_spec


@pytest.fixture
def spot_run(spot, tmp_path):
    """``(run, said)``: a Run of the tiny spot task into ``tmp_path/run``; ``said`` collects its messages."""
    registry = spot.registry()
    task = registry.create("task", "tiny_spot")
    config = build_config("tiny_spot", "smoke", task.profiles(), overrides=["device='cpu'", "estimator.seeds=1"])
    said: list[str] = []
    return Run(config, registry, task, tmp_path / "run", torch.device("cpu"), progress=False, say=said.append), said


def test_stages_called_one_by_one_make_a_run(spot_run):
    run, said = spot_run
    data = make_data(run)
    assert data.counts() == {"synthetic": 16, "target": 16, "test": 8, "target_train": 16}
    # Each side from the task's generator with the run's seed plus that side's fixed offset.
    assert torch.equal(data.synthetic.images, run.task.synthetic(16, run.config.seed + SEED_OFFSETS["synthetic"], run.device).images)
    assert torch.equal(data.test.images, run.task.target_labelled(8, run.config.seed + 303, run.device).images)
    trainer, outcome = train_simgan(run, data)
    refined, preservation = refine_and_export(run, data, trainer)
    assert refined.images.shape == data.synthetic.images.shape and set(preservation) == {"mean_abs_pixel_change"}
    results = EstimatorResults()
    train_estimators(run, data, refined, results)
    assert list(results.first_seed) == ["synthetic", "refined", "target"]
    summary = write_summary(run, data, results, outcome, preservation, save_figures(run, results), trainer.loss_name)
    assert json.loads((run.out / "summary.json").read_text())["estimators"] == summary["estimators"] == results.metrics()
    assert (run.out / "refined.h5").is_file() and (run.out / "checkpoints" / "last.pt").is_file()
    assert list(summary["stage_seconds"]) == [
        "simulate", "simgan", "refine", "export", "label_preservation", "estimator:synthetic", "estimator:refined",
        "estimator:target", "figures",
    ]
    assert said[:2] == ["[simulate]", "[simgan]"]


def test_a_rank_0_stage_is_skipped_on_other_ranks(spot_run):
    run, said = spot_run
    calls: list[int] = []

    @stage("mine", ranks="main")
    def mine(run: Run, x: int) -> int:
        calls.append(x)
        return x + 1

    assert mine(run, 1) == 2 and calls == [1] and said == ["[mine]"]
    other = Run(run.config, run.registry, run.task, run.out, run.device, SimpleNamespace(is_main=False), say=said.append)
    assert mine(other, 5) is None and calls == [1]
    assert said == ["[mine]"] and not other.progress  # ranks other than 0 are silent
    assert mine.ranks == "main"  # type: ignore[attr-defined]


def test_stage_clock_times_each_stage_once():
    said: list[str] = []
    clock = StageClock(said.append)
    assert clock.run("a", lambda: 3) == 3
    assert said == ["[a]"] and list(clock.seconds) == ["a"] and clock.seconds["a"] >= 0


def _config(**settings) -> RunConfig:
    return RunConfig.model_validate({"task": "t", "profile": "smoke", "estimator": {"name": "e"},
                                 "discriminator": {"layers": ["conv3s2-8", "conv1-2"]}, **settings})


def test_the_resume_check_ignores_the_device_and_execution_only_settings():
    saved = _config(device="cuda", train={"compile": True}).model_dump(mode="json")
    check_resume_compatible(saved, _config(device="cpu"), "run/config.json")


@pytest.mark.parametrize(("current", "difference"), [
    (_config(train={"steps": 9}), "train.steps: saved 400, now 9"),
    # The data settings too: the trainer's check used to compare network and train keys only.
    (_config(data={"n_test": 7}), "data.n_test: saved 1000, now 7"),
])
def test_the_resume_check_names_each_differing_setting(current, difference):
    saved = _config().model_dump(mode="json")
    default = RunConfig.model_validate(saved)
    expected = difference.replace("400", str(default.train.steps)).replace("1000", str(default.data.n_test))
    with pytest.raises(ConfigError) as err:
        check_resume_compatible(saved, current, "run/checkpoints/last.pt")
    assert str(err.value) == (
        f"cannot resume from 'run/checkpoints/last.pt': its settings differ from this run's: {expected}; "
        "use the same settings or a new --out directory"
    )


def test_from_config_builds_the_runs_networks_with_their_spec(spot_run):
    run, _ = spot_run
    data = make_data(run)
    trainer = SimGANTrainer.from_config(run.config, run.registry, run.task, data.synthetic.images, data.target, None, run.device,
                                        progress=False)
    assert trainer.refiner_spec == refiner_spec(run.config, run.task.image_spec)
    assert trainer.refiner_spec["name"] == run.config.refiner.name and trainer.refiner_spec["options"]["in_channels"] == 1
    assert trainer.loss_name == "reference" and trainer.config is run.config
    torch.manual_seed(run.config.seed)  # the same initial weights as a rebuild from the spec
    rebuilt = run.registry.create("refiner", trainer.refiner_spec["name"], **trainer.refiner_spec["options"])
    assert all(torch.equal(a, b) for a, b in zip(rebuilt.state_dict().values(), trainer.refiner.state_dict().values()))


def test_device_names_are_checked():
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="device: 'gpu0' is not a device name"):
        resolve_device("gpu0")
    conv = to_device(torch.nn.Conv2d(1, 2, 3), torch.device("cpu"), channels_last=True)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
