"""benchmarks.report: Markdown tables, results.md, JSON and the PNG plots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.report import (
    plot_curves,
    plot_rows,
    realism_markdown,
    speed_markdown,
    table_markdown,
    write_json,
    write_markdown,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _row(err, err_std, acc, acc_std, gap="absent", n_train=64, **extra):
    row = {"mean": {"acc": acc, "err": err, "curve/pck_10": 1.0, "curve/pck_2": 0.5},
           "std": {"acc": acc_std, "err": err_std, "curve/pck_10": 0.0, "curve/pck_2": 0.0}, **extra}
    if gap != "absent":
        row["gap_closed"] = gap
    if n_train is not None:
        row["n_train"] = n_train
    return row


ROWS = {
    "synthetic": _row(10.0, 0.5, 3.125, 4.4194, gap=0.0),
    "noise": _row(10.004, 0.0, 50.0, 1.0, gap=-0.004, n_train=128),   # rounds to -0 %: must print 0 %
    "kornia": _row(12.0, 1.0, 2.0, 0.0, gap=-0.25),
    "refined": _row(7.5, 0.25, 25.0, 2.5, gap=1 / 3),
    "weird": _row(1.0, 0.0, 0.0, 0.0, gap=None, n_train=None),
    "oracle": _row(2.0, 0.125, 99.999, 0.0, gap=1.0),
}


def test_table_markdown_by_hand():
    assert table_markdown(ROWS, "err") == [
        "| trained on | err | acc | gap closed | n train |",
        "|---|---|---|---|---|",
        "| synthetic | 10.00 ± 0.50 | 3.12 ± 4.42 | 0 % | 64 |",
        "| noise | 10.00 ± 0.00 | 50.00 ± 1.00 | 0 % | 128 |",
        "| kornia | 12.00 ± 1.00 | 2.00 ± 0.00 | -25 % | 64 |",
        "| refined | 7.50 ± 0.25 | 25.00 ± 2.50 | 33 % | 64 |",
        "| weird | 1.00 ± 0.00 | 0.00 ± 0.00 | n/a |  |",
        "| oracle | 2.00 ± 0.12 | 100.00 ± 0.00 | 100 % | 64 |",
    ]


def test_table_markdown_primary_first_curves_left_out_and_extra_columns():
    rows = {"a": _row(1.0, 0.0, 2.0, 0.0, gap="absent", group="lam")}
    lines = table_markdown(rows, "acc", extra=("group", "missing"))
    assert lines[0] == "| trained on | acc | err | gap closed | n train | group | missing |"
    assert lines[1] == "|" + "---|" * 7
    assert lines[2] == "| a | 2.00 ± 0.00 | 1.00 ± 0.00 | n/a | 64 | lam |  |"
    assert not any("curve" in line for line in lines)


@pytest.mark.parametrize(("gap", "text"), [(-0.0049, "0 %"), (-0.0, "0 %"), (0.0049, "0 %"), (-0.006, "-1 %"), (2.426, "243 %"), (None, "n/a")])
def test_gap_closed_formatting(gap, text):
    line = table_markdown({"r": _row(1.0, 0.0, 1.0, 0.0, gap=gap)}, "err")[2]
    assert line.split(" | ")[3] == text
    assert "-0 %" not in line


def test_realism_markdown_one_line_per_row():
    rows = {
        "synthetic": {"kid": 12.345, "kid_std": 0.5, "turing_accuracy": 87.5, "label_preservation": {}},
        "refined (SimGAN)": {"kid": -0.004, "kid_std": 0.0, "turing_accuracy": 50.0,
                             "label_preservation": {"iou": 0.987654, "depth_mm": 12.0}},
    }
    lines = realism_markdown(rows)
    assert len(lines) == 2 + len(rows)
    assert lines[0].startswith("| images | KID") and lines[1] == "|---|---|---|---|"
    assert lines[2] == "| synthetic | 12.35 ± 0.50 | 87.5 % | – |"
    assert lines[3] == "| refined (SimGAN) | -0.00 ± 0.00 | 50.0 % | iou 0.988, depth_mm 12 |"


def _check(passed, constant=100.0, second=49.5):
    return {"bounds": {"constant": [90.0, 100.0], "second_target": [40.0, 60.0]}, "passed": passed,
            "constant": {"turing_accuracy": constant, "turing_accuracies": [constant]},
            "second_target": {"turing_accuracy": second, "turing_accuracies": [second]}}


def test_realism_markdown_shows_each_classifier_and_the_self_check():
    rows = {"synthetic": {"kid": 1.0, "kid_std": 0.1, "turing_accuracy": 93.0, "turing_accuracies": [95.0, 93.0, 91.5],
                          "label_preservation": {}}}
    lines = realism_markdown(rows, _check(True))
    assert "(median; each classifier)" in lines[0]
    assert lines[2] == "| synthetic | 1.00 ± 0.10 | 93.0 % (95.0, 93.0, 91.5) | – |"
    assert lines[3:] == ["", "Turing self-check **passed**: target vs constant images 100.0 % (expected 90-100 %), "
                             "target vs a second target sample 49.5 % (expected 40-60 %)."]
    failed = realism_markdown(rows, _check(False, constant=50.0))[-1]
    assert failed.startswith("Turing self-check **FAILED**: target vs constant images 50.0 %")
    assert failed.endswith("Do not read the Turing column of this task.")


def test_realism_markdown_shows_the_refined_rows_score_on_every_refiner():
    rows = {"refined (SimGAN)": {"kid": 1.0, "kid_std": 0.1, "turing_accuracy": 80.0, "turing_accuracies": [80.0, 79.0, 85.0],
                                 "turing_by_refiner": [80.0, 70.0, 75.0], "label_preservation": {}}}
    # mean 75.0, sample std sqrt(((5^2) + 5^2 + 0) / 2) = 5.0
    assert realism_markdown(rows)[2] == ("| refined (SimGAN) | 1.00 ± 0.10 | 80.0 % (80.0, 79.0, 85.0); "
                                         "by refiner 80.0, 70.0, 75.0: mean 75.0 ± 5.0 % | – |")


def _speed(task="gaze", profile="smoke"):
    return {"task": task, "profile": profile, "device": "cpu", "batch_size": 8, "train_images_per_s": 123.456,
            "train_seconds_per_iteration": 0.0648, "simulator_images_per_s": 1500.4, "target_images_per_s": 99.5,
            "refine_images_per_s": 2000.04, "train_peak_memory_mb": 512.4, "refine_peak_memory_mb": 600.6,
            "memory_kind": "process peak RSS so far"}


def test_speed_markdown_one_line_per_row():
    lines = speed_markdown([_speed(), _speed("hand_depth", "default")])
    assert len(lines) == 4
    assert lines[0].count("|") == lines[1].count("|") == lines[2].count("|") == 11
    assert lines[2] == ("| gaze | smoke | cpu | 8 | 123.5 | 0.065 | 1500 | 100 | 2000.0 | "
                        "train 512, refine 601 (process peak RSS so far) |")
    assert lines[3].startswith("| hand_depth | default | cpu |")
    assert speed_markdown([]) == lines[:2]


def _results(with_speed=True, **task_extra):
    task = {"primary_metric": "err", "config": {"profile": "smoke"}, "overrides": ["estimator.steps=2"], "seeds": [0, 1],
            "sim2real": ROWS, **task_extra}
    out = {"suite": "tiny", "command": "python -m benchmarks --suite tiny", "wall_seconds": 12.4,
           "environment": {"commit": "abc1234", "simgan_toolkit": "0.1.0", "torch": "2.x", "python": "3.11",
                           "device": "cpu", "platform": "Linux", "cpu_threads": 2},
           "tasks": {"gaze": task}}
    if with_speed:
        out["speed"] = [_speed()]
    return out


def test_write_markdown_sections_and_provenance(tmp_path):
    realism = {"synthetic": {"kid": 1.0, "kid_std": 0.1, "turing_accuracy": 90.0, "label_preservation": {}}}
    results = _results(ablations={"no history buffer": ROWS["refined"]}, realism=realism, figures=["gaze_rows.png"],
                       kid_extractor="gaze_cnn on target")
    path = tmp_path / "results.md"
    write_markdown(results, path)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Benchmark results: suite `tiny`\n")
    assert "Command: `python -m benchmarks --suite tiny`" in text
    assert "Commit `abc1234`, simgan-toolkit 0.1.0, torch 2.x, Python 3.11, device cpu (Linux, 2 CPU threads); total 12 s." in text
    for heading in ("## gaze", "### Sim-to-real", "### Ablations", "### Realism and label preservation", "## Speed"):
        assert f"\n{heading}\n" in text
    assert "suite overrides `['estimator.steps=2']`; seeds [0, 1]; extractor for KID: gaze_cnn on target." in text
    assert "\n".join(table_markdown(ROWS, "err")) in text
    assert "| no history buffer | 7.50 ± 0.25 |" in text
    assert "Estimator seeds" not in text  # the ablation rows used all the seeds
    assert "![gaze_rows](gaze_rows.png)" in text
    assert text.endswith("\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.md"]  # no temporary file left


def test_write_markdown_names_the_ablation_seeds_when_fewer(tmp_path):
    results = _results(with_speed=False, ablations={"no history buffer": ROWS["refined"]}, ablation_seeds=[0])
    write_markdown(results, tmp_path / "results.md")
    text = (tmp_path / "results.md").read_text(encoding="utf-8")
    assert "### Ablations\n\nEstimator seeds [0] in every row (the reference row re-aggregated over them).\n\n| trained on" in text


def test_write_markdown_leaves_out_missing_parts_and_overwrites(tmp_path):
    path = tmp_path / "results.md"
    path.write_text("old", encoding="utf-8")
    results = _results(with_speed=False)
    results["environment"]["gpu"] = "H200"
    write_markdown(results, path)
    text = path.read_text(encoding="utf-8")
    assert "old" not in text
    assert "device cpu (H200, 2 CPU threads)" in text
    assert "extractor for KID: –." in text
    for heading in ("### Ablations", "### Realism", "## Speed", "!["):
        assert heading not in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.md"]


def test_write_json_round_trips_and_stringifies(tmp_path):
    path = tmp_path / "sub" / "results.json"
    write_json({"a": 1.5, "p": Path("x/y"), "t": (1, 2)}, path)
    assert json.loads(path.read_text()) == {"a": 1.5, "p": "x/y", "t": [1, 2]}
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]


def test_plot_rows_writes_a_png_atomically(tmp_path):
    path = tmp_path / "gaze_rows.png"
    out = plot_rows("gaze", {"sim2real": ROWS, "ablations": {"no history buffer": ROWS["refined"]}}, "err", True, path)
    assert out == path
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert [p.name for p in tmp_path.iterdir()] == ["gaze_rows.png"]


def test_plot_rows_labels_a_bar_for_every_row_of_every_table(tmp_path, monkeypatch):
    from matplotlib.axes import Axes

    seen = []
    original = Axes.set_yticks
    monkeypatch.setattr(Axes, "set_yticks", lambda self, ticks, labels=None, **kw: (seen.append(list(labels)), original(self, ticks, labels, **kw))[1])
    plot_rows("gaze", {"sim2real": ROWS, "ablations": {"no history buffer": ROWS["refined"]}}, "err", True, tmp_path / "r.png")
    assert seen == [[*ROWS, "no history buffer"]]


@pytest.mark.parametrize(("tables", "title"), [
    ({"sim2real": ROWS, "ablations": {"no history buffer": ROWS["refined"]}}, "gaze: sim-to-real (blue) and ablations (orange)"),
    ({"sim2real": ROWS}, "gaze: sim-to-real"),  # the long suite has no ablations: the title must not promise them
])
def test_plot_rows_title_names_only_the_tables_plotted(tmp_path, monkeypatch, tables, title):
    from matplotlib.axes import Axes

    seen = []
    original = Axes.set_title
    monkeypatch.setattr(Axes, "set_title", lambda self, label, *a, **kw: (seen.append(label), original(self, label, *a, **kw))[1])
    plot_rows("gaze", tables, "err", True, tmp_path / "r.png")
    assert seen == [title]


def test_plot_curves_writes_a_png_of_curve_metrics(tmp_path):
    path = tmp_path / "hand_curves.png"
    assert plot_curves("hand", ROWS, path) == path
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert [p.name for p in tmp_path.iterdir()] == ["hand_curves.png"]


def test_plot_curves_without_curve_metrics_returns_none_and_writes_nothing(tmp_path):
    rows = {"a": {"mean": {"err": 1.0}, "std": {"err": 0.0}}}
    assert plot_curves("gaze", rows, tmp_path / "c.png") is None
    assert list(tmp_path.iterdir()) == []
