"""The minimal plugin of docs/writing-a-plugin.md registers and trains, and the page shows it verbatim."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from simgan_toolkit.config import build_config
from simgan_toolkit.pipeline import run_pipeline
from simgan_toolkit.plugin import PluginManager

DOCS = Path(__file__).resolve().parents[2] / "docs"
EXAMPLE = DOCS / "examples" / "minimal_plugin.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("minimal_plugin", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_page_contains_the_example_verbatim():
    assert EXAMPLE.read_text() in (DOCS / "writing-a-plugin.md").read_text()


def test_minimal_plugin_registers_through_the_public_api():
    manager = PluginManager(load_entry_points=False, plugins=[("spots", _load_example())])
    entries = {(e.kind, e.name): e.plugin for e in manager.registry.entries()}
    assert entries[("task", "spots")] == "spots"
    assert entries[("estimator", "spot_cnn")] == "spots"


@pytest.mark.slow
def test_minimal_plugin_trains_end_to_end(tmp_path):
    manager = PluginManager(load_entry_points=False, plugins=[("spots", _load_example())])
    task = manager.registry.create("task", "spots")
    config = build_config("spots", "smoke", task.profiles())
    summary = run_pipeline(config, tmp_path, manager.registry, progress=False, say=lambda _: None)
    assert set(summary["estimators"]) == {"synthetic", "refined", "target"}
    assert "peak_shift_px" in summary["label_preservation"]
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if r["phase"] == "adversarial"] == [5, 10]
    assert (tmp_path / "refined.h5").exists()
