"""End to end: ``python -m simgan_toolkit.run --task <task> --profile smoke`` for every task that
uses another target camera (gaze: NIR tracker, low-light webcam; hand: ToF, active stereo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

TASKS = ["gaze_nir", "gaze_nir_rgb", "gaze_webcam", "gaze_webcam_rgb", "hand_depth_tof", "hand_depth_stereo"]


@pytest.mark.parametrize("task", TASKS)
def test_smoke_run(task, tmp_path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("SIMGAN_PLUGINS", None)
    env.pop("SIMGAN_DISABLE_PLUGINS", None)
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "simgan_toolkit.run", "--task", task, "--profile", "smoke", "--device", "cpu",
         "--no-progress", "--out", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["task"] == task
    assert set(summary["estimators"]) == {"synthetic", "refined", "target"}
    assert (out / "refined.h5").is_file()
