"""docs/examples/hand_gap_decomposition.py: runs end to end and computes the content share right."""

from __future__ import annotations

import json
import math

import pytest

EXAMPLE = "hand_gap_decomposition"


def test_content_share_hand_computed(example):
    content_share = example.content_share
    results = {
        "synthetic": [{"pck_5": 10.0}, {"pck_5": 12.0}],  # mean 11
        "ideal sensor": [{"pck_5": 14.0}],  # 3 of the gap of 8
        "target": [{"pck_5": 19.0}],
    }
    assert content_share(results, "pck_5") == pytest.approx(3 / 8)
    results["target"] = [{"pck_5": 11.0}]
    assert math.isnan(content_share(results, "pck_5"))  # no gap: no share


@pytest.mark.slow
def test_script_runs_on_the_smoke_profile(tmp_path, capsys, example):
    out = tmp_path / "gap.json"
    example.main(["--profile", "smoke", "--tasks", "hand_depth", "--seeds", "1", "--json", str(out)])
    results = json.loads(out.read_text())["hand_depth"]
    assert list(results) == ["synthetic", "ideal sensor", "target"]
    assert all(len(rows) == 1 and "pck_5" in rows[0] for rows in results.values())
    assert "content share of the gap" in capsys.readouterr().out
