"""Results table and gap-closed arithmetic."""

from __future__ import annotations

import pytest

from simgan_toolkit.report import format_results_table, gap_closed


def test_gap_closed_lower_is_better():
    # synthetic 10 deg, oracle 6 deg, refined 8 deg: (8 - 10) / (6 - 10) = 0.5
    assert gap_closed(10.0, 8.0, 6.0) == pytest.approx(0.5)
    assert gap_closed(10.0, 6.0, 6.0) == pytest.approx(1.0)
    assert gap_closed(10.0, 10.0, 6.0) == pytest.approx(0.0)
    assert gap_closed(10.0, 11.0, 6.0) == pytest.approx(-0.25)  # worse than synthetic


def test_gap_closed_higher_is_better():
    # synthetic 50 %, oracle 80 %, refined 65 %: 15 / 30 = 0.5
    assert gap_closed(50.0, 65.0, 80.0) == pytest.approx(0.5)
    assert gap_closed(50.0, 86.0, 80.0) == pytest.approx(1.2)  # beyond the oracle


def test_gap_closed_no_gap():
    assert gap_closed(3.0, 2.0, 3.0) is None


def _summary(**over):
    s = {
        "task": "gaze",
        "profile": "smoke",
        "device": "cpu",
        "wall_seconds": 12.4,
        "primary_metric": {"name": "err", "lower_is_better": True, "unit": "deg"},
        "estimators": {
            "target": {"err": 6.0, "acc": 90.0},
            "synthetic": {"err": 10.0, "acc": 50.0},
            "refined": {"err": 8.0, "acc": 70.0},
        },
        "label_preservation": {"shift": 0.1234},
    }
    s.update(over)
    return s


def test_table_contains_rows_in_order_with_gap():
    text = format_results_table(_summary())
    lines = text.splitlines()
    assert lines[0] == "Results: task 'gaze', profile 'smoke', cpu, 12 s; scored on the target test set"
    assert lines[1].split("  ")[0].strip() == "trained on"
    assert "gap closed (err)" in lines[1]
    assert set(lines[2]) <= {"-", " "}
    rows = lines[3:6]
    assert rows[0].startswith("synthetic") and rows[1].startswith("refined (SimGAN)") and rows[2].startswith("labelled target (oracle)")
    assert rows[0].split() == ["synthetic", "10.000", "50.000", "0%"]
    assert rows[1].split()[-3:] == ["8.000", "70.000", "50%"]
    assert rows[2].split()[-3:] == ["6.000", "90.000", "100%"]
    assert lines[6] == "label preservation: shift = 0.123"
    # Columns are aligned: every cell of the last column starts under its header.
    col = lines[1].index("gap closed")
    assert [r[col:].split()[0] for r in rows] == ["0%", "50%", "100%"]
    assert all(r[col - 2 : col] == "  " for r in rows)


def test_table_without_oracle_has_no_gap_column_and_extra_rows_last():
    est = {"custom": {"err": 1.0}, "refined": {"err": 2.0}, "synthetic": {"err": 3.0}}
    text = format_results_table(_summary(estimators=est, label_preservation={}))
    assert "gap closed" not in text and "label preservation" not in text
    rows = [l.split()[0] for l in text.splitlines()[3:]]
    assert rows == ["synthetic", "refined", "custom"]


def test_table_no_gap_shows_dash():
    est = {"synthetic": {"err": 5.0}, "refined": {"err": 4.0}, "target": {"err": 5.0}}
    text = format_results_table(_summary(estimators=est))
    assert text.splitlines()[3].split()[-1] == "-"
