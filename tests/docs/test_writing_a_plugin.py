"""The two example plugins of docs/writing-a-plugin.md (a new domain; the built-in hand task
against another camera) register and train, and the page shows them verbatim."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simgan_toolkit.config import build_config
from simgan_toolkit.pipeline import run_pipeline
from simgan_toolkit.plugin import PluginManager
from simgan_toolkit.testing import load_module

DOCS = Path(__file__).resolve().parents[2] / "docs"
EXAMPLE = DOCS / "examples" / "minimal_plugin.py"


def test_page_contains_the_example_verbatim():
    assert EXAMPLE.read_text() in (DOCS / "writing-a-plugin.md").read_text()


def test_minimal_plugin_registers_through_the_public_api():
    manager = PluginManager(load_entry_points=False, plugins=[("spots", load_module(EXAMPLE))])
    entries = {(e.kind, e.name): e.plugin for e in manager.registry.entries()}
    assert entries[("task", "spots")] == "spots"
    assert entries[("estimator", "spot_cnn")] == "spots"


@pytest.mark.slow
def test_minimal_plugin_trains_end_to_end(tmp_path):
    manager = PluginManager(load_entry_points=False, plugins=[("spots", load_module(EXAMPLE))])
    task = manager.registry.create("task", "spots")
    config = build_config("spots", "smoke", task.profiles())
    summary = run_pipeline(config, tmp_path, manager.registry, progress=False, say=lambda _: None)
    assert set(summary["estimators"]) == {"synthetic", "refined", "target"}
    assert "peak_shift_px" in summary["label_preservation"]
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if r["phase"] == "adversarial"] == [5, 10]
    assert (tmp_path / "refined.h5").exists()


GRAINY = DOCS / "examples" / "grainy_hand_plugin.py"


def test_page_contains_the_second_example_verbatim():
    assert GRAINY.read_text() in (DOCS / "writing-a-plugin.md").read_text()


def test_grainy_camera_plugin_changes_only_the_target():
    """Installed next to the built-in plugins, it is hand_depth with another target camera."""
    import torch

    registry = PluginManager(plugins=[("grainy", load_module(GRAINY))]).registry
    assert registry.get("task", "hand_depth_grainy").plugin == "grainy"
    task, base = registry.create("task", "hand_depth_grainy"), registry.create("task", "hand_depth")
    cpu = torch.device("cpu")
    assert task.name == "hand_depth_grainy" and task.profiles() == base.profiles()
    assert (task.image_spec, task.primary_metric, task.full_effect_profile) == (base.image_spec, base.primary_metric, "long")
    assert torch.equal(task.synthetic(2, 5, cpu).images, base.synthetic(2, 5, cpu).images)
    grainy, kinect = task.target_labelled(2, 5, cpu), base.target_labelled(2, 5, cpu)
    # The same hands (the pose is drawn first) through another sensor.
    assert torch.equal(grainy.labels["joints_uvd"], kinect.labels["joints_uvd"])
    assert not torch.equal(grainy.images, kinect.images)
    assert torch.equal(task.target(2, 5, cpu), grainy.images)
    # Holes (no reading) take the far value, 1.
    assert grainy.images.shape == (2, 1, 224, 224) and float(grainy.images.max()) == 1.0


@pytest.mark.slow
def test_grainy_camera_plugin_trains_end_to_end(tmp_path):
    manager = PluginManager(plugins=[("grainy", load_module(GRAINY))])
    task = manager.registry.create("task", "hand_depth_grainy")
    config = build_config("hand_depth_grainy", "smoke", task.profiles(), overrides=["device='cpu'"])
    summary = run_pipeline(config, tmp_path, manager.registry, progress=False, say=lambda _: None)
    assert set(summary["estimators"]) == {"synthetic", "refined", "target"}
    assert "silhouette_iou" in summary["label_preservation"]
    assert (tmp_path / "pck_curve.png").exists()
