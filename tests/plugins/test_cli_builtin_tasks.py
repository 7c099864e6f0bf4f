"""The command line as a process, end to end, on the built-in gaze task and the installed plugins.

One real smoke run (``python -m simgan_toolkit.run --task gaze --profile smoke``, a subprocess)
checks everything a built-in task's run writes; ``simgan plugins`` lists the installed plugins.
The CLI's own paths (errors, refine, resume) run in-process on the tests' tiny task in
``tests/simgan_toolkit/test_cli.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from simgan_toolkit.config import RunConfig
from simgan_toolkit.data import read_attrs, read_images_h5

pytestmark = pytest.mark.slow

SMOKE = ["--task", "gaze", "--profile", "smoke", "--device", "cpu", "--no-progress"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"  # tiny networks; avoids thread thrashing on a shared 2-core box
    env.pop("SIMGAN_PLUGINS", None)
    env.pop("SIMGAN_DISABLE_PLUGINS", None)
    return env


def _run_module(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "simgan_toolkit.run", *args], cwd=cwd, env=_env(),
        capture_output=True, text=True, timeout=timeout, check=False,
    )


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("cli")
    out = base / "run"
    proc = _run_module(*SMOKE, "--out", str(out), cwd=base)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"out": out, "proc": proc, "summary": json.loads((out / "summary.json").read_text())}


def test_smoke_run_writes_everything(smoke_run):
    out = smoke_run["out"]
    for name in ("config.json", "summary.json", "refined.h5", "metrics.jsonl", "checkpoints/last.pt"):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in (out / "samples").glob("*.png")) == ["pretrained_refiner.png", "step_000002.png", "step_000004.png"]
    config = RunConfig.model_validate(json.loads((out / "config.json").read_text()))
    assert (config.task, config.profile, config.device, config.train.steps) == ("gaze", "smoke", "cpu", 4)
    s = smoke_run["summary"]
    assert {"task", "profile", "device", "wall_seconds", "estimators", "label_preservation"} <= set(s)
    assert (s["task"], s["profile"], s["device"]) == ("gaze", "smoke", "cpu")
    assert s["wall_seconds"] > 0
    assert set(s["estimators"]) == {"synthetic", "refined", "target"}
    for metrics in s["estimators"].values():
        assert set(metrics) == {"angular_error_deg", "within_7deg_pct"}
    assert set(s["label_preservation"]) == {"pupil_shift_px_mean", "pupil_shift_px_std", "mean_abs_pixel_change"}
    assert s["resumed_from"] is None
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(r["phase"], r["step"]) for r in records] == (
        [("refiner_pretrain", i) for i in (1, 2, 3)] + [("discriminator_pretrain", i) for i in (1, 2)]
        + [("adversarial", i) for i in (1, 2, 3, 4)]
    )
    refined = read_images_h5(out / "refined.h5")
    assert refined.images.shape == (64, 1, 35, 55)
    assert {"gaze", "pupil_centre"} <= set(refined.labels)
    attrs = read_attrs(out / "refined.h5")
    assert attrs["kind"] == "refined" and attrs["task"] == "gaze"
    assert "Results: task 'gaze'" in smoke_run["proc"].stdout
    assert "Traceback" not in smoke_run["proc"].stderr


def test_invalid_override_is_one_line_exit_2(tmp_path):
    proc = _run_module("--task", "gaze", "--profile", "smoke", "--set", "train.k_g=0", "--out", str(tmp_path / "x"), cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("simgan: error: ") and "train.k_g" in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "x").exists()


def test_plugins_command_lists_plugins(tmp_path):
    proc = _run_module("plugins", cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split()[:3] for line in proc.stdout.splitlines()]
    assert rows[0] == ["kind", "name", "plugin"]
    assert ["task", "gaze", "gaze"] in rows
    assert ["estimator", "gaze_cnn", "estimators"] in rows
    assert ["refiner", "resnet", "simgan_toolkit.builtins"] in rows
    loaded = next(line for line in proc.stdout.splitlines() if line.startswith("plugins loaded:"))
    assert {"gaze", "estimators", "simgan_toolkit.builtins"} <= {x.strip() for x in loaded.split(":", 1)[1].split(",")}
    assert "FAILED" not in proc.stdout
