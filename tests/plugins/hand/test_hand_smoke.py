"""End-to-end smoke run of ``--task hand_depth`` (the smoke profile, in-process)."""

from __future__ import annotations

import pytest

from simgan_toolkit.config import build_config
from simgan_toolkit.pipeline import run_pipeline


@pytest.mark.slow
def test_hand_depth_smoke_run(tmp_path, registry):
    task = registry.create("task", "hand_depth")
    config = build_config("hand_depth", "smoke", task.profiles())
    summary = run_pipeline(config, tmp_path, registry, progress=False, say=lambda _: None)
    assert set(summary["estimators"]) == {"synthetic", "refined", "target"}
    metrics = summary["estimators"]["refined"]
    assert 0.0 <= metrics["pck_5"] <= 100.0 and len([k for k in metrics if k.startswith("curve/")]) == 21
    assert set(summary["label_preservation"]) == {"joint_depth_change_mm", "silhouette_iou", "hand_depth_change_mm"}
    assert summary["figures"] == ["pck_curve.png"] and (tmp_path / "pck_curve.png").exists()
    assert (tmp_path / "refined.h5").exists() and any((tmp_path / "samples").glob("*.png"))
