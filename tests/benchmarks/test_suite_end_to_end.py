"""The whole benchmark suite, end to end, on the CPU: the test that keeps benchmarks/ from rotting.

``tiny`` runs every part for gaze (~15 s on a shared 2-core CPU with one torch thread); hand
runs without the realism part (its Turing test on 224x224 depth maps costs ~15 s a row) and with
one ablation. The numbers mean nothing; the structure, bookkeeping and files are checked.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from benchmarks.runner import run_suite
from benchmarks.suites import SUITES
from simgan_toolkit.errors import ConfigError

pytestmark = pytest.mark.slow

CPU = torch.device("cpu")
TINY = SUITES["tiny"]
SIM2REAL_ROWS = ["synthetic", "synthetic + Gaussian noise", "synthetic + kornia photometric", "refined (SimGAN)",
                 "refined + kornia photometric", "synthetic 2x", "refined 2x", "labelled target (oracle)"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run(registry, out: Path, suite, tasks, parts):
    said: list[str] = []
    results = run_suite(suite, tasks, registry, CPU, out, parts=parts, command="pytest e2e", say=said.append)
    return {"out": out, "results": results, "said": said, "suite": suite}


@pytest.fixture(scope="module")
def gaze(registry, tmp_path_factory):
    return _run(registry, tmp_path_factory.mktemp("bench_gaze") / "out", TINY, ["gaze"], ("sim2real", "ablations", "realism", "speed"))


@pytest.fixture(scope="module")
def hand(registry, tmp_path_factory):
    suite = dataclasses.replace(TINY, ablations=("lam",))
    return _run(registry, tmp_path_factory.mktemp("bench_hand") / "out", suite, ["hand_depth"], ("sim2real", "ablations", "speed"))


def _check_rows(rows: dict, seeds: int) -> None:
    """Every row: per-seed metrics, and mean / sample std that agree with them."""
    for name, row in rows.items():
        assert len(row["per_seed"]) == seeds, name
        for metric, mean in row["mean"].items():
            values = [s[metric] for s in row["per_seed"]]
            mu = sum(values) / len(values)
            assert mean == pytest.approx(mu, abs=1e-9), (name, metric)
            std = math.sqrt(sum((v - mu) ** 2 for v in values) / (len(values) - 1))
            assert row["std"][metric] == pytest.approx(std, abs=1e-9), (name, metric)
            assert math.isfinite(mean)


def _check_gap(rows: dict, reference: dict, metric: str) -> None:
    low, high = reference["synthetic"]["mean"][metric], reference["labelled target (oracle)"]["mean"][metric]
    for name, row in rows.items():
        if abs(high - low) < 1e-12:
            assert row["gap_closed"] is None, name
        else:
            assert row["gap_closed"] == pytest.approx((row["mean"][metric] - low) / (high - low)), name


def _check_folder(out: Path, figures: list[str]) -> None:
    names = {p.name for p in out.iterdir()}
    assert {"results.json", "results.md", *figures} <= names
    assert "results.partial.json" not in names
    assert not [n for n in names if n.endswith(".tmp")]
    for figure in figures:
        assert (out / figure).read_bytes()[:8] == PNG_MAGIC


# ---------------------------------------------------------------- gaze: every part


def test_gaze_results_json_is_what_run_suite_returned(gaze):
    on_disk = json.loads((gaze["out"] / "results.json").read_text())
    assert on_disk == json.loads(json.dumps(gaze["results"], default=str))
    assert on_disk["suite"] == "tiny" and on_disk["command"] == "pytest e2e"
    assert on_disk["parts"] == ["sim2real", "ablations", "realism", "speed"]
    assert on_disk["environment"]["device"] == "cpu" and "commit" in on_disk["environment"]
    assert list(on_disk["tasks"]) == ["gaze"]
    assert on_disk["wall_seconds"] > 0


def test_gaze_sim2real_table(gaze):
    r = gaze["results"]["tasks"]["gaze"]
    assert (r["primary_metric"], r["lower_is_better"], r["seeds"]) == ("angular_error_deg", True, [0, 1])
    assert r["config"]["profile"] == "smoke" and r["overrides"] == []
    rows = r["sim2real"]
    assert list(rows) == SIM2REAL_ROWS
    _check_rows(rows, TINY.seeds)
    n = r["config"]["data"]["n_synthetic"]
    assert [rows[k]["n_train"] for k in SIM2REAL_ROWS] == [n, n, n, n, n, 2 * n, 2 * n, r["config"]["data"]["n_target_train"]]
    # the sigma is a candidate, chosen on validation (lower is better here)
    noise = rows["synthetic + Gaussian noise"]
    assert noise["sigma"] in TINY.noise_sigmas
    assert set(noise["sigma_validation"]) == {str(s) for s in TINY.noise_sigmas}
    assert noise["sigma_validation"][str(noise["sigma"])] == min(noise["sigma_validation"].values())
    refiners = rows["refined (SimGAN)"]["refiners"]
    assert [x["seed"] for x in refiners] == list(range(TINY.simgan_seeds))
    assert refiners[0]["label_preservation"] and "d_acc" in refiners[0]["simgan_final"]
    # gap closed: synthetic 0, oracle 1 (this gaze run has a gap), the rest on the same scale
    assert rows["labelled target (oracle)"]["mean"]["angular_error_deg"] != rows["synthetic"]["mean"]["angular_error_deg"]
    assert rows["synthetic"]["gap_closed"] == 0
    assert rows["labelled target (oracle)"]["gap_closed"] == pytest.approx(1.0)
    _check_gap(rows, rows, "angular_error_deg")


def test_gaze_ablations(gaze):
    r = gaze["results"]["tasks"]["gaze"]
    rows = r["ablations"]
    names = list(rows)
    assert names[0].startswith("SimGAN, as configured") and rows[names[0]]["group"] == "reference"
    assert rows[names[0]]["mean"] == r["sim2real"]["refined (SimGAN)"]["mean"]
    # gaze is grayscale: psi = channel_mean would repeat the identity row
    assert names[1:] == ["no history buffer", "global discriminator", "psi = gradients", "psi = learned", "lambda = 2"]
    assert [rows[n]["group"] for n in names[1:]] == ["history", "discriminator", "feature", "feature", "lam"]
    _check_rows(rows, TINY.seeds)
    _check_gap(rows, r["sim2real"], "angular_error_deg")
    # one SimGAN output folder per refiner trained: one per estimator seed for the suite's own
    # config and for each ablation
    runs = sorted(p.name for p in (gaze["out"] / "simgan" / "gaze").iterdir())
    assert TINY.simgan_seeds == TINY.seeds == 2
    assert len(runs) == 2 * len(names)
    assert {"refined__SimGAN_seed0", "refined__SimGAN_seed1", "no_history_buffer_seed0", "no_history_buffer_seed1"} <= set(runs)
    assert [x["seed"] for x in rows["no history buffer"]["refiners"]] == [0, 1]


def test_gaze_realism(gaze):
    r = gaze["results"]["tasks"]["gaze"]
    rows = r["realism"]
    sigma = r["sim2real"]["synthetic + Gaussian noise"]["sigma"]
    ablation_names = list(r["ablations"])[1:]
    assert list(rows) == ["labelled-target sample (calibration)", "constant images (self-check)", "synthetic",
                          f"synthetic + Gaussian noise (sigma {sigma})", "synthetic + kornia photometric", "refined (SimGAN)",
                          *(f"refined, {n}" for n in ablation_names)]
    for name, row in rows.items():
        assert math.isfinite(row["kid"]) and row["kid_std"] >= 0, name
        # the median of the suite's classifiers, each one kept
        assert len(row["turing_accuracies"]) == TINY.turing_classifiers, name
        assert row["turing_accuracy"] == sorted(row["turing_accuracies"])[TINY.turing_classifiers // 2], name
        assert all(0 <= a <= 100 for a in row["turing_accuracies"]), name
    check = r["turing_self_check"]
    assert check["constant"] == {k: rows["constant images (self-check)"][k] for k in ("turing_accuracy", "turing_accuracies")}
    assert check["second_target"]["turing_accuracy"] == rows["labelled-target sample (calibration)"]["turing_accuracy"]
    assert isinstance(check["passed"], bool)
    assert rows["refined (SimGAN)"]["label_preservation"] and rows["synthetic"]["label_preservation"] == {}
    # the refined row is scored on every refiner of the sim-to-real table, the first being the row's own
    by_refiner = rows["refined (SimGAN)"]["turing_by_refiner"]
    assert len(by_refiner) == TINY.simgan_seeds and by_refiner[0] == rows["refined (SimGAN)"]["turing_accuracy"]
    assert all(0 <= a <= 100 for a in by_refiner)
    assert all("turing_by_refiner" not in row for name, row in rows.items() if name != "refined (SimGAN)")
    assert "gaze_cnn" in r["kid_extractor"]


def test_gaze_speed(gaze):
    speed = gaze["results"]["speed"]
    assert [(s["task"], s["profile"], s["iterations_timed"]) for s in speed] == [("gaze", "smoke", TINY.speed_iterations)]
    assert all(speed[0][k] > 0 for k in ("train_images_per_s", "simulator_images_per_s", "refine_images_per_s"))


def test_gaze_markdown_figures_and_folder(gaze):
    r = gaze["results"]
    assert r["tasks"]["gaze"]["figures"] == ["gaze_rows.png"]  # gaze has no curve metrics
    _check_folder(gaze["out"], ["gaze_rows.png"])
    text = (gaze["out"] / "results.md").read_text(encoding="utf-8")
    for needle in ("# Benchmark results: suite `tiny`", "## gaze", "### Sim-to-real", "### Ablations",
                   "### Realism and label preservation", "## Speed",
                   "| trained on | angular_error_deg | within_7deg_pct | gap closed | n train |",
                   "| images | KID", "| task | profile | device |", "| synthetic | ", "| labelled target (oracle) |",
                   "| refined + kornia photometric | ", "Turing self-check **",
                   f"Commit `{r['environment']['commit']}`", "device cpu", "![gaze_rows](gaze_rows.png)"):
        assert needle in text, needle
    assert text.count("| trained on |") == 2


def test_gaze_progress_goes_to_say(gaze):
    said = gaze["said"]
    assert said[0].startswith("[gaze] data:")
    assert "[gaze] sim-to-real table (2 seeds)" in said and "[gaze] ablations (2 seeds)" in said and "[speed]" in said
    assert said[-1].startswith("wrote ")


def test_second_run_into_the_same_folder_is_refused(gaze, registry):
    before = (gaze["out"] / "results.json").read_bytes()
    with pytest.raises(ConfigError, match="already holds benchmark results"):
        run_suite(TINY, ["gaze"], registry, CPU, gaze["out"], say=lambda _: None)
    assert (gaze["out"] / "results.json").read_bytes() == before


def test_two_tasks_in_two_processes_match_the_in_process_run(gaze, registry, tmp_path):
    """--jobs 2: each task in its own spawned process; the same seeds give the same numbers."""
    suite = dataclasses.replace(TINY, ablations=())
    said: list[str] = []
    results = run_suite(suite, ["gaze_rgb", "gaze"], registry, CPU, tmp_path / "out", parts=("sim2real",), say=said.append, jobs=2)
    assert list(results["tasks"]) == ["gaze_rgb", "gaze"] and results["jobs"] == 2
    assert said[0] == "running 2 tasks in 2 processes, 1 torch thread(s) each"
    for row, expected in gaze["results"]["tasks"]["gaze"]["sim2real"].items():
        got = results["tasks"]["gaze"]["sim2real"][row]
        for seed_got, seed_expected in zip(got["per_seed"], expected["per_seed"], strict=True):
            assert seed_got == pytest.approx(seed_expected, rel=1e-4), row
    assert results["tasks"]["gaze_rgb"]["sim2real"]["synthetic"]["per_seed"] != results["tasks"]["gaze"]["sim2real"]["synthetic"]["per_seed"]
    assert json.loads((tmp_path / "out" / "results.json").read_text())["tasks"].keys() == {"gaze", "gaze_rgb"}
    assert not (tmp_path / "out" / "results.partial.json").exists()


# ---------------------------------------------------------------- hand_depth: no realism, one ablation


def test_hand_depth_without_realism(hand):
    out, results = hand["out"], hand["results"]
    r = results["tasks"]["hand_depth"]
    assert (r["primary_metric"], r["lower_is_better"]) == ("pck_5", False)
    assert list(r["sim2real"]) == SIM2REAL_ROWS
    _check_rows(r["sim2real"], TINY.seeds)
    _check_gap(r["sim2real"], r["sim2real"], "pck_5")
    assert "realism" not in r and "kid_extractor" not in r
    assert list(r["ablations"])[1:] == ["lambda = 2"]
    _check_rows(r["ablations"], TINY.seeds)
    assert any(k.startswith("curve/pck_") for k in r["sim2real"]["synthetic"]["mean"])
    assert r["figures"] == ["hand_depth_rows.png", "hand_depth_curves.png"]
    _check_folder(out, r["figures"])
    assert [(s["task"], s["profile"]) for s in results["speed"]] == [("hand_depth", "smoke")]
    text = (out / "results.md").read_text(encoding="utf-8")
    assert "## hand_depth" in text and "| trained on | pck_5 | mean_px_error |" in text
    assert "### Realism" not in text and "curve/" not in text


def test_speed_only_runs_no_task_tables(registry, tmp_path):
    results = run_suite(TINY, ["gaze"], registry, CPU, tmp_path / "out", parts=("speed",), say=lambda _: None)
    assert results["tasks"] == {} and [s["task"] for s in results["speed"]] == ["gaze"]
    text = (tmp_path / "out" / "results.md").read_text(encoding="utf-8")
    assert "## Speed" in text and "## gaze" not in text
    _check_folder(tmp_path / "out", [])


def test_a_suite_without_speed_profiles_multipliers_or_ablations_skips_those_parts(registry, tmp_path):
    """The shape of the `long` suite: sim-to-real rows only, even when every part is asked for."""
    suite = dataclasses.replace(TINY, speed_profiles=(), multipliers=(), ablations=())
    said: list[str] = []
    results = run_suite(suite, ["gaze"], registry, CPU, tmp_path / "out", parts=("sim2real", "ablations", "speed"),
                        say=said.append)
    assert "speed" not in results and "[speed] skipped: suite 'tiny' measures no profile" in said and "ablations" not in results["tasks"]["gaze"]
    expected = [r for r in SIM2REAL_ROWS if "2x" not in r]
    assert list(results["tasks"]["gaze"]["sim2real"]) == expected
    text = (tmp_path / "out" / "results.md").read_text(encoding="utf-8")
    assert "## gaze" in text and "## Speed" not in text


def test_unknown_part_is_refused_before_any_work(registry, tmp_path):
    with pytest.raises(ConfigError, match="unknown benchmark parts") as info:
        run_suite(TINY, ["gaze"], registry, CPU, tmp_path / "out", parts=("sim2real", "plots"), say=lambda _: None)
    assert "plots" in str(info.value)
    assert not (tmp_path / "out").exists()
