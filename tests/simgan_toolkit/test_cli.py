"""The command line, end to end, in-process through ``simgan_toolkit.cli.main`` on the tests' own
tiny task (``spot``): core must work for any domain.

One smoke run is shared by the whole module; the resume is the second end-to-end run. The
command line as a subprocess, on the built-in gaze task and the installed plugins, is tested in
``tests/plugins/test_cli_builtin_tasks.py``.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import sys
import warnings

import pytest

from simgan_toolkit import plugin as plugin_module
from simgan_toolkit.config import RunConfig
from simgan_toolkit.data import read_attrs, read_images_h5

pytestmark = pytest.mark.slow

SMOKE = ["--task", "tiny_spot", "--profile", "smoke", "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def spot_cli_registry():
    """The spot task's registry, which every ``simgan`` call of this module sees."""
    from simgan_toolkit.plugin import PluginManager

    from .conftest import SpotPlugin

    registry = PluginManager(load_entry_points=False, plugins=[("tiny_spot", SpotPlugin())]).registry
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plugin_module, "get_registry", lambda: registry)
        yield registry


@pytest.fixture
def cli(cli, spot_cli_registry):
    """The ``cli`` fixture, seeing only the spot task."""
    return cli


@pytest.fixture(scope="module")
def smoke_run(spot_cli_registry, tmp_path_factory):
    from simgan_toolkit.cli import main

    out = tmp_path_factory.mktemp("cli") / "run"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["run", *SMOKE, "--out", str(out)])
    assert code == 0, stderr.getvalue()[-3000:]
    files = {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in out.rglob("*") if p.is_file() and p.suffix in (".pt", ".jsonl", ".json", ".h5")
    }
    summary = json.loads((out / "summary.json").read_text())
    return {"out": out, "stdout": stdout.getvalue(), "stderr": stderr.getvalue(), "summary": summary, "files": files}


def test_smoke_run_writes_everything(smoke_run):
    out = smoke_run["out"]
    for name in ("config.json", "summary.json", "refined.h5", "metrics.jsonl", "checkpoints/last.pt"):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in (out / "samples").glob("*.png")) == ["pretrained_refiner.png", "step_000002.png"]
    config = RunConfig.model_validate(json.loads((out / "config.json").read_text()))
    assert (config.task, config.profile, config.device, config.train.steps) == ("tiny_spot", "smoke", "cpu", 2)
    s = smoke_run["summary"]
    assert {"task", "profile", "device", "wall_seconds", "estimators", "label_preservation"} <= set(s)
    assert (s["task"], s["profile"], s["device"]) == ("tiny_spot", "smoke", "cpu")
    assert s["wall_seconds"] > 0
    assert set(s["estimators"]) == {"synthetic", "refined", "target"}
    for metrics in s["estimators"].values():
        assert set(metrics) == {"error_px"}
    assert set(s["label_preservation"]) == {"mean_abs_pixel_change"}
    assert s["resumed_from"] is None
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(r["phase"], r["step"]) for r in records] == (
        [("refiner_pretrain", i) for i in (1, 2)] + [("discriminator_pretrain", i) for i in (1, 2)]
        + [("adversarial", i) for i in (1, 2)]
    )
    refined = read_images_h5(out / "refined.h5")
    assert refined.images.shape == (16, 1, 12, 16)
    assert set(refined.labels) == {"y"}
    attrs = read_attrs(out / "refined.h5")
    assert attrs["kind"] == "refined" and attrs["task"] == "tiny_spot"
    assert "Results: task 'tiny_spot'" in smoke_run["stdout"]
    assert "Traceback" not in smoke_run["stderr"]


def test_invalid_override_is_one_line_exit_2(cli, tmp_path):
    code, _, err = cli("run", *SMOKE, "--set", "train.k_g=0", "--out", str(tmp_path / "x"))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("simgan: error: ") and "train.k_g" in lines[0]
    assert "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_unknown_task_exit_2(cli, tmp_path):
    code, _, err = cli("run", "--task", "tiny_spott", "--profile", "smoke", "--out", str(tmp_path / "x"))
    assert code == 2
    assert err.count("\n") == 1 and "'tiny_spott'" in err and "Did you mean 'tiny_spot'?" in err
    assert not (tmp_path / "x").exists()


def test_unknown_profile_exit_2(cli, tmp_path):
    code, _, err = cli("run", "--task", "tiny_spot", "--profile", "turbo", "--out", str(tmp_path / "x"))
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
    assert stdout.strip() == f"refined 16 images -> {target}"
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
    assert summary["resumed_from"] == ["adversarial", 2]
    # Nothing was trained again: log, checkpoint and estimators are byte-identical.
    for name in ("metrics.jsonl", "checkpoints/last.pt", "estimators/synthetic.pt", "estimators/refined.pt", "estimators/target.pt"):
        assert (out / name).read_bytes() == smoke_run["files"][name], name
    assert "Results: task 'tiny_spot'" in stdout


def test_rejected_resume_keeps_config_json(cli, smoke_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(smoke_run["out"], copy)
    before = (copy / "config.json").read_text()
    code, _, err = cli("run", *SMOKE, "--out", str(copy), "--resume", "--set", "train.lam=0.7")
    assert code == 2 and "its settings differ from this run's: train.lam: saved 0.5, now 0.7; use the same settings" in err and "config.json" in err
    assert (copy / "config.json").read_text() == before


@contextlib.contextmanager
def _plain_python_warnings():
    """Warnings as a plain ``python`` process has them (no pytest): DeprecationWarning ignored
    outside ``__main__``, the others printed to stderr."""
    with warnings.catch_warnings():
        warnings.resetwarnings()
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: sys.stderr.write(
            warnings.formatwarning(message, category, filename, lineno, line))
        yield


def test_a_setting_by_its_name_before_v1_works_and_says_so(cli, tmp_path):
    """``--set data.n_real=8`` runs as ``data.n_target=8``, and the user sees why on stderr:
    ``simgan`` shows the toolkit's deprecation warnings, which Python would hide."""
    with _plain_python_warnings():
        code, _, err = cli("run", *SMOKE, "--set", "data.n_real=8", "--out", str(tmp_path / "run"))
    assert code == 0, err
    assert ("warning: data.n_real is deprecated (--set data.n_real=8): it is now data.n_target "
            "(renamed in v1; the old name goes in v2)\n") in err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["data"]["n_target"] == 8 and summary["data_counts"]["target"] == 8
