"""The command line, end to end.

One real smoke run (``python -m simgan_toolkit.run --profile smoke``, a subprocess) is shared by
the whole module; the resume is the second end-to-end run and happens in-process, through
``simgan_toolkit.cli.main``, like the other cheap error paths (each subprocess pays seconds of
torch/torchvision imports).
"""

from __future__ import annotations

import json
import os
import shutil
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
    files = {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in out.rglob("*") if p.is_file() and p.suffix in (".pt", ".jsonl", ".json", ".h5")
    }
    return {"out": out, "proc": proc, "summary": json.loads((out / "summary.json").read_text()), "files": files}


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


def test_unknown_task_exit_2(cli, tmp_path):
    code, _, err = cli("run", "--task", "gazee", "--profile", "smoke", "--out", str(tmp_path / "x"))
    assert code == 2
    assert err.count("\n") == 1 and "'gazee'" in err and "Did you mean 'gaze'?" in err
    assert not (tmp_path / "x").exists()


def test_unknown_profile_exit_2(cli, tmp_path):
    code, _, err = cli("run", "--task", "gaze", "--profile", "turbo", "--out", str(tmp_path / "x"))
    assert code == 2 and "'turbo'" in err and "smoke" in err


def test_no_task_and_resume_without_out(cli, tmp_path):
    code, _, err = cli("run", "--profile", "smoke")
    assert code == 2 and "no task given" in err
    code, _, err = cli("run", *SMOKE, "--resume")
    assert code == 2 and "--resume needs --out" in err
    code, _, err = cli("run", *SMOKE, "--resume", "--out", str(tmp_path))
    assert code == 2 and "holds no run" in err


def test_refine_command_on_refined_h5(cli, smoke_run, tmp_path):
    out = smoke_run["out"]
    target = tmp_path / "again.h5"
    code, stdout, err = cli(
        "refine", "--checkpoint", str(out / "checkpoints" / "last.pt"), "--input", str(out / "refined.h5"),
        "--output", str(target), "--device", "cpu", "--no-progress",
    )
    assert code == 0, err
    assert stdout.strip() == f"refined 64 images -> {target}"
    src, got = read_images_h5(out / "refined.h5"), read_images_h5(target)
    assert got.images.shape == src.images.shape
    for k in src.labels:
        assert (got.labels[k] == src.labels[k]).all()
    attrs = read_attrs(target)
    assert attrs["kind"] == "refined"
    assert attrs["source_file"] == str((out / "refined.h5").resolve())


def test_refine_command_missing_input(cli, smoke_run, tmp_path):
    code, _, err = cli(
        "refine", "--checkpoint", str(smoke_run["out"] / "checkpoints" / "last.pt"),
        "--input", str(tmp_path / "none.h5"), "--output", str(tmp_path / "o.h5"), "--device", "cpu",
    )
    assert code == 2 and "none.h5" in err and err.count("\n") == 1


def test_rerun_into_same_out_without_resume_fails(cli, smoke_run):
    out = smoke_run["out"]
    code, _, err = cli("run", *SMOKE, "--out", str(out))
    assert code == 2
    assert "already holds a run" in err and "--resume" in err
    assert (out / "summary.json").read_bytes() == smoke_run["files"]["summary.json"]


def test_resume_finished_run_gives_same_results(cli, smoke_run):
    out = smoke_run["out"]
    code, stdout, err = cli("run", *SMOKE, "--out", str(out), "--resume")
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["estimators"] == smoke_run["summary"]["estimators"]
    assert summary["label_preservation"] == pytest.approx(smoke_run["summary"]["label_preservation"])
    assert summary["resumed_from"] == ["adversarial", 4]
    # Nothing was trained again: log, checkpoint and estimators are byte-identical.
    for name in ("metrics.jsonl", "checkpoints/last.pt", "estimators/synthetic.pt", "estimators/refined.pt", "estimators/target.pt"):
        assert (out / name).read_bytes() == smoke_run["files"][name], name
    assert "Results: task 'gaze'" in stdout


def test_rejected_resume_keeps_config_json(cli, smoke_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(smoke_run["out"], copy)
    before = (copy / "config.json").read_text()
    code, _, err = cli("run", *SMOKE, "--out", str(copy), "--resume", "--set", "train.lam=0.7")
    assert code == 2 and "its settings differ from this run's: train.lam: saved 0.5, now 0.7; use the same settings" in err and "config.json" in err
    assert (copy / "config.json").read_text() == before
