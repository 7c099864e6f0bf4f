"""docs/examples/hand_gap_decomposition.py: runs end to end and computes the content share right."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "examples" / "hand_gap_decomposition.py"


def _load():
    spec = importlib.util.spec_from_file_location("hand_gap_decomposition", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_content_share_hand_computed():
    content_share = _load().content_share
    results = {
        "synthetic": [{"pck_5": 10.0}, {"pck_5": 12.0}],  # mean 11
        "ideal sensor": [{"pck_5": 14.0}],  # 3 of the gap of 8
        "target": [{"pck_5": 19.0}],
    }
    assert content_share(results, "pck_5") == pytest.approx(3 / 8)
    results["target"] = [{"pck_5": 11.0}]
    assert math.isnan(content_share(results, "pck_5"))  # no gap: no share


@pytest.mark.slow
def test_script_runs_on_the_smoke_profile(tmp_path, capsys):
    out = tmp_path / "gap.json"
    _load().main(["--profile", "smoke", "--tasks", "hand_depth", "--seeds", "1", "--json", str(out)])
    results = json.loads(out.read_text())["hand_depth"]
    assert list(results) == ["synthetic", "ideal sensor", "target"]
    assert all(len(rows) == 1 and "pck_5" in rows[0] for rows in results.values())
    assert "content share of the gap" in capsys.readouterr().out
