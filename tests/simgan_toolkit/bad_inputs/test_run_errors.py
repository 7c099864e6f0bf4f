"""Bad inputs to ``simgan run``: each ends in one ``simgan: error:`` line before the simulate stage.

``CASES`` feeds the table in docs/bad-inputs.md. Outcomes that are not an error (a Ctrl-C hint,
temporary files of a killed run removed by the resume, an empty folder accepted) have their own
tests below.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
import torch

from simgan_toolkit.testing import (
    BadInput, check_bad_input, check_cli_error, read_only_folder, run_cli, temp_leftovers, unmount_under,
)

SMOKE = ("--task", "gaze", "--profile", "smoke", "--device", "cpu", "--no-progress")
RUN = "{root}/run"
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")


def _saved_config(*overrides: str) -> dict:
    """The config.json a ``--profile smoke --device cpu`` run of gaze writes, with ``overrides``."""
    from simgan_toolkit.config import build_config
    from simgan_toolkit.plugin import get_registry

    profiles = get_registry().create("task", "gaze").profiles()
    return build_config("gaze", "smoke", profiles, overrides=["device='cpu'", *overrides]).model_dump(mode="json")


def _saved_run(root: Path, text: str | None = None) -> Mapping[str, str]:
    """``root/run`` holding a run's config.json (``text`` replaces its content)."""
    (root / "run").mkdir()
    (root / "run" / "config.json").write_text(text if text is not None else json.dumps(_saved_config()))
    return {}


def _saved_run_of_other_data(root: Path) -> Mapping[str, str]:
    """A saved run whose task.json records another data version than the task's (gaze has none)."""
    _saved_run(root)
    (root / "run" / "task.json").write_text(json.dumps({"task": "gaze", "data_version": "old scene"}))
    return {}


def _truncated_config(root: Path) -> Mapping[str, str]:
    return _saved_run(root, json.dumps(_saved_config())[:100])


def _file(root: Path) -> Mapping[str, str]:
    (root / "notes").write_text("mine")
    return {}


def _folder_with_a_file(root: Path) -> Mapping[str, str]:
    (root / "run").mkdir()
    (root / "run" / "summary.json").write_text("my own notes")
    return {}


def _empty_folder(root: Path) -> Mapping[str, str]:
    (root / "run").mkdir()
    return {}


def _read_only_folder(root: Path) -> Mapping[str, str]:
    read_only_folder(root / "ro")  # a read-only mount for root, who writes through mode bits
    return {}


def _bad_toml(root: Path) -> Mapping[str, str]:
    (root / "bad.toml").write_text("[train\nsteps = ")
    return {}


def case(id: str, what: str, argv: tuple[str, ...], expect: str, **kw) -> BadInput:
    return BadInput(id=id, command="run", what=what, argv=argv, expect=expect, **kw)


CASES: list[BadInput] = [
    case("no-task", "no `--task` (and none in `--config`)", ("--profile", "smoke"), "no task given"),
    case("unknown-task", "`--task` names no registered task", ("--task", "gazee", "--out", RUN), "'gazee'"),
    case("unknown-profile", "`--profile` the task does not define",
         ("--task", "gaze", "--profile", "turbo", "--out", RUN), "'turbo'"),
    case("set-no-equals", "`--set` without `=`", (*SMOKE, "--set", "train.k_g", "--out", RUN), "expected KEY=VALUE"),
    case("set-bad-value", "`--set` with an invalid value", (*SMOKE, "--set", "train.k_g=0", "--out", RUN), "train.k_g"),
    case("unknown-refiner-option", "`refiner.options` holds a setting the refiner does not take (refused before any training)",
         (*SMOKE, "--set", "refiner.options.residual_clmap='straight_through'", "--out", RUN),
         "[refiner] 'resnet' rejected its settings"),
    case("bad-refiner-option", "`refiner.options.residual_clamp` is neither `hard` nor `straight_through`",
         (*SMOKE, "--set", "refiner.options.residual_clamp='soft'", "--out", RUN), "residual_clamp must be 'hard' or 'straight_through'"),
    case("unknown-discriminator-option", "`discriminator.options` holds a setting the discriminator does not take",
         (*SMOKE, "--set", "discriminator.options.norm_frist=true", "--out", RUN), "[discriminator] 'local' rejected its settings"),
    case("unknown-estimator", "`estimator.name` names no registered estimator (refused before any training)",
         (*SMOKE, "--set", "estimator.name='gaze_cnnx'", "--out", RUN), "unknown estimator 'gaze_cnnx'"),
    case("set-unknown-key", "`--set` of an unknown setting", (*SMOKE, "--set", "train.kg=2", "--out", RUN), "train.kg"),
    case("set-old-and-new-name", "one setting under its name before v1 and its new one (`data.n_real`, `data.n_target`)",
         (*SMOKE, "--set", "data.n_real=8", "--set", "data.n_target=8", "--out", RUN),
         "data.n_real and data.n_target are both given"),
    case("no-discriminator-layers", "`discriminator.layers` empty for a built-in discriminator",
         (*SMOKE, "--set", "discriminator.layers=[]", "--out", RUN), "discriminator.layers is not set"),
    case("zero-steps", "`train.steps = 0` (pretraining only)", (*SMOKE, "--set", "train.steps=0", "--out", RUN),
         "train.steps: Input should be greater than or equal to 1"),
    case("config-missing", "`--config` file does not exist", (*SMOKE, "--config", "{root}/none.toml", "--out", RUN),
         "none.toml"),
    case("config-bad-toml", "`--config` file is not valid TOML", (*SMOKE, "--config", "{root}/bad.toml", "--out", RUN),
         "bad.toml", setup=_bad_toml),
    case("device-unknown", "`--device` is not a device name",
         ("--task", "gaze", "--profile", "smoke", "--device", "banana", "--out", RUN), "'banana'"),
    case("device-no-cuda", "`--device cuda` on a machine without CUDA",
         ("--task", "gaze", "--profile", "smoke", "--device", "cuda", "--out", RUN), "CUDA is not available",
         marks=(NO_CUDA,)),
    case("out-holds-run", "`--out` already holds a run, no `--resume`", (*SMOKE, "--out", RUN),
         "already holds a run", setup=_saved_run),
    case("out-holds-other-files", "`--out` is a folder holding other files",
         (*SMOKE, "--out", RUN), "holds other files ('summary.json')", setup=_folder_with_a_file),
    case("out-is-file", "`--out` names a file", (*SMOKE, "--out", "{root}/notes"), "notes' is a file, not a folder",
         setup=_file, gets="`simgan: error: output directory '…/notes' is a file, not a folder; …`, exit 2"),
    case("out-under-file", "`--out` lies under a file", (*SMOKE, "--out", "{root}/notes/run"),
         "run' cannot be created: '", setup=_file,
         gets="`simgan: error: output directory '…/notes/run' cannot be created: '…/notes' is a file, not a folder; …`, exit 2"),
    case("out-read-only", "`--out` under a folder without write permission", (*SMOKE, "--out", "{root}/ro/run"),
         "is not writable", setup=_read_only_folder),
    case("resume-no-out", "`--resume` without `--out`", (*SMOKE, "--resume"), "--resume needs --out"),
    case("resume-missing-folder", "`--resume` of a folder that does not exist", (*SMOKE, "--resume", "--out", RUN),
         "holds no run"),
    case("resume-not-a-run", "`--resume` of a folder without a run", (*SMOKE, "--resume", "--out", RUN),
         "holds no run", setup=_empty_folder),
    case("resume-truncated-config", "`--resume` of a run whose config.json is truncated",
         (*SMOKE, "--resume", "--out", RUN), "config.json' is not valid JSON", setup=_truncated_config),
    case("resume-other-data-version", "`--resume` of a run made with another version of the task's data (`Task.data_version`)",
         (*SMOKE, "--resume", "--out", RUN), "made with version 'old scene' of the data of task 'gaze', and this toolkit draws no version",
         setup=_saved_run_of_other_data),
    case("resume-other-settings", "`--resume` with other settings than the run's",
         (*SMOKE, "--resume", "--out", RUN, "--set", "train.steps=8", "--set", "train.lam=0.25"),
         "train.lam: saved 0.5, now 0.25; train.steps: saved 4, now 8", setup=_saved_run),
]


@pytest.fixture(autouse=True)
def _unmount_after(tmp_path: Path):
    """Unmount the read-only folder a case mounted, so that pytest can remove it."""
    yield
    unmount_under(tmp_path)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_bad_input(case: BadInput, tmp_path: Path) -> None:
    result = check_bad_input(case, tmp_path)
    assert "[simulate]" not in result.stdout, "the error came after the simulate stage"


def test_unwritable_folder_is_refused_before_the_data_is_made(tmp_path, monkeypatch):
    """The write probe, failing as it does for a user without permission (root cannot chmod its way there)."""
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    result = check_cli_error(["run", *SMOKE, "--out", str(tmp_path / "a" / "run")], tmp_path,
                             expect=f"output directory '{tmp_path}/a/run' is not writable: Permission denied")
    assert "[simulate]" not in result.stdout
    assert not (tmp_path / "a").exists()  # the folders it created for the probe are gone again


def test_new_or_empty_folder_is_accepted(tmp_path):
    from simgan_toolkit.config import RunConfig
    from simgan_toolkit.pipeline import check_run_folder, create_run_folder

    config = RunConfig.model_validate(_saved_config())
    (tmp_path / "empty").mkdir()
    stale = tmp_path / "empty" / ".config.json.abcd1234.tmp"  # a killed run's: not the user's
    stale.write_text("{")
    check_run_folder(tmp_path / "empty", config, resume=False)
    assert create_run_folder(tmp_path / "empty") == []
    new = tmp_path / "a" / "b"
    check_run_folder(new, config, resume=False)
    assert create_run_folder(new) == [new, tmp_path / "a"]
    assert new.is_dir() and list(new.iterdir()) == []  # the write probe is gone


def _interrupt_simulate(monkeypatch) -> None:
    from simgan_toolkit import pipeline

    run = pipeline.StageClock.run

    def interrupted(self, name, fn):
        if name == "simulate":
            raise KeyboardInterrupt
        return run(self, name, fn)

    monkeypatch.setattr(pipeline.StageClock, "run", interrupted)


def test_ctrl_c_while_simulating_a_new_run_gives_no_resume_hint(tmp_path, monkeypatch):
    _interrupt_simulate(monkeypatch)
    result = run_cli(["run", *SMOKE, "--out", str(tmp_path / "run")])
    assert result.exit_code == 130
    assert result.stderr == "simgan: interrupted\n"
    assert not (tmp_path / "run").exists()  # nothing to resume: no folder left behind


def test_ctrl_c_while_simulating_a_resumed_run_names_its_folder(tmp_path, monkeypatch):
    _saved_run(tmp_path)
    _interrupt_simulate(monkeypatch)
    result = run_cli(["run", *SMOKE, "--resume", "--out", str(tmp_path / "run")])
    assert result.exit_code == 130
    assert result.stderr == f"simgan: interrupted (continue with --resume --out {tmp_path / 'run'})\n"


#: ``python -c`` script: ``simgan ARGV`` killed with SIGKILL in the middle of its first checkpoint write.
KILLED_AT_FIRST_CHECKPOINT = """
import os, signal, sys
import simgan_toolkit.training.checkpoint as checkpoint
from simgan_toolkit.io import atomic_path

def save_and_die(state, path):
    with atomic_path(path) as tmp:
        tmp.write_bytes(b"half a checkpoint")
        os.kill(os.getpid(), signal.SIGKILL)

checkpoint.save_checkpoint = save_and_die
from simgan_toolkit.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _steps(out: Path) -> list[tuple[str, int]]:
    return [(r["phase"], r["step"]) for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())]


def test_resume_after_sigkill_removes_temp_files_and_restarts_the_log(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", KILLED_AT_FIRST_CHECKPOINT, "run", *SMOKE, "--out", str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    leftovers = temp_leftovers(out)
    assert len(leftovers) == 1 and re.fullmatch(r"checkpoints/\.last\.pt\.\w{8}\.tmp", leftovers[0]), leftovers
    assert _steps(out) == [("refiner_pretrain", 1), ("refiner_pretrain", 2)]  # logged before the kill
    (out / "samples").mkdir(exist_ok=True)
    mine = out / "samples" / "notes.tmp"  # not the toolkit's pattern: stays
    mine.write_text("mine")

    with pytest.warns(UserWarning, match=r"no checkpoint in '.*checkpoints': SimGAN training restarts from step 0"):
        result = run_cli(["run", *SMOKE, "--resume", "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    assert temp_leftovers(out) == ["samples/notes.tmp"]
    assert f"removed 1 temporary file(s) left by an interrupted run: {leftovers[0]}" in result.stdout
    steps = _steps(out)
    assert len(steps) == len(set(steps)), f"duplicate records in metrics.jsonl: {steps}"
    assert steps == ([("refiner_pretrain", i) for i in (1, 2, 3)] + [("discriminator_pretrain", i) for i in (1, 2)]
                     + [("adversarial", i) for i in (1, 2, 3, 4)])
    assert json.loads((out / "summary.json").read_text())["resumed_from"] is None
