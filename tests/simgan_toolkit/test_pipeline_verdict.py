"""The run's verdict on refinement: estimator seeds, per-seed scores, the printed line, and a
task's ``full_effect_profile``; on a tiny task built from the minimal plugin of the docs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simgan_toolkit.config import build_config
from simgan_toolkit.errors import PluginError
from simgan_toolkit.pipeline import run_pipeline
from simgan_toolkit.plugin import Entry, PluginManager, Registry
from simgan_toolkit.report import verdict_line
from simgan_toolkit.testing import load_module

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "minimal_plugin.py"


@pytest.fixture(scope="module")
def spots_registry() -> Registry:
    """The minimal plugin's registry plus ``spots_full``: its task, naming "smoke" as the
    profile that shows the full effect (both of its profiles are tiny)."""
    module = load_module(EXAMPLE, "minimal_plugin_verdict")
    registry = PluginManager(load_entry_points=False, plugins=[("spots", module)]).registry
    base = type(registry.create("task", "spots"))

    class SpotsFull(base):
        name = "spots_full"
        full_effect_profile = "smoke"

    registry.add(Entry("task", "spots_full", SpotsFull, "tests"))
    return registry


def _run(registry: Registry, out: Path, task: str, profile: str, *overrides: str, resume: bool = False):
    config = build_config(task, profile, registry.create("task", task).profiles(), overrides=list(overrides))
    said: list[str] = []
    summary = run_pipeline(config, out, registry, resume=resume, progress=False, say=said.append)
    return summary, said[-1].splitlines()


def test_two_estimator_seeds_give_a_verdict_and_a_default_run_names_the_full_profile(spots_registry, tmp_path):
    out = tmp_path / "run"
    summary, table = _run(spots_registry, out, "spots_full", "default")
    assert summary["estimator_seeds"] == [0, 1]
    per_seed = summary["estimators_per_seed"]
    assert {k: len(v) for k, v in per_seed.items()} == {"synthetic": 2, "refined": 2, "target": 1}
    for train_set, metrics in summary["estimators"].items():
        assert per_seed[train_set][0] == metrics  # the table's row is the first seed's
    assert per_seed["synthetic"][1] != per_seed["synthetic"][0]  # another seed, another estimator
    names = sorted(p.name for p in (out / "estimators").iterdir())
    assert names == sorted(f"{s}.{e}" for s in ("synthetic", "synthetic_seed1", "refined", "refined_seed1", "target") for e in ("pt", "json"))
    assert json.loads((out / "estimators" / "refined_seed1.json").read_text())["seed"] == 1

    verdict = summary["refinement_verdict"]
    assert verdict["synthetic"] == [m["error_px"] for m in per_seed["synthetic"]]
    assert verdict["refined"] == [m["error_px"] for m in per_seed["refined"]]
    assert verdict["verdict"] in {"helped", "not beyond noise", "worse"}
    # the plugin gives its metric per image: the noise counts the test set's share as well
    assert verdict["test_noise"] > 0 and verdict["noise"] == max(verdict["seed_noise"], verdict["test_noise"])
    assert summary["sample_grid"] == "samples/step_000010.png" and (out / summary["sample_grid"]).exists()
    assert summary["full_effect_profile"] == "smoke"
    # printed: the table, then the verdict line, then (a default run) the full-effect line
    assert table[-2] == verdict_line(summary) and "Look at samples/step_000010.png in the run folder." in table[-2]
    assert table[-1] == "Profile 'default' is sized for a quick run; task 'spots_full' shows the full effect of refinement with --profile smoke."
    assert json.loads((out / "summary.json").read_text())["refinement_verdict"] == verdict

    again, _ = _run(spots_registry, out, "spots_full", "default", resume=True)
    assert again["estimators_per_seed"] == per_seed  # every seed's estimator reloaded, not retrained
    assert again["refinement_verdict"] == verdict  # per-image scores recomputed from the reloaded models


def test_one_estimator_seed_says_the_verdict_is_off(spots_registry, tmp_path):
    out = tmp_path / "run"
    summary, table = _run(spots_registry, out, "spots_full", "smoke", "estimator.seeds=1", "estimator.train_on=['synthetic', 'refined']")
    assert summary["estimator_seeds"] == [0]
    assert {k: len(v) for k, v in summary["estimators_per_seed"].items()} == {"synthetic": 1, "refined": 1}
    assert summary["refinement_verdict"]["verdict"] == "one seed"
    assert not list((out / "estimators").glob("*_seed*"))
    # not a default run: the last line is the verdict's
    assert table[-1].startswith("Verdict: not measured (estimator.seeds = 1")


def test_no_verdict_without_both_rows_and_no_full_effect_line_for_a_task_that_names_none(spots_registry, tmp_path):
    summary, table = _run(spots_registry, tmp_path / "run", "spots", "default", "estimator.train_on=['refined']")
    assert summary["refinement_verdict"] is None and summary["full_effect_profile"] is None
    assert set(summary["estimators_per_seed"]) == {"refined"} and len(summary["estimators_per_seed"]["refined"]) == 2
    assert table[-1] == "Verdict: not measured (needs 'synthetic' and 'refined' in estimator.train_on). Look at samples/step_000010.png in the run folder."


def _error_px(self, prediction, labels):
    return {"error_px": float((prediction - labels["centre"]).norm(dim=1).mean())}


def _spots_with_per_image(registry: Registry, name: str, per_image) -> None:
    """Register ``name``: the spots task whose primary_metric_per_image is ``per_image`` (its
    metrics computed without it)."""
    base = type(registry.create("task", "spots"))
    members = {"name": name, "primary_metric_per_image": per_image, "estimator_metrics": _error_px}
    registry.add(Entry("task", name, type(name, (base,), members), "tests"))


def test_a_task_without_per_image_metrics_gets_the_seed_noise_alone(spots_registry, tmp_path):
    _spots_with_per_image(spots_registry, "spots_no_per_image", lambda self, prediction, labels: None)
    summary, table = _run(spots_registry, tmp_path / "run", "spots_no_per_image", "default")
    verdict = summary["refinement_verdict"]
    assert verdict["test_noise"] is None and verdict["noise"] == verdict["seed_noise"]
    assert "noise = the larger max-min spread over estimator seeds of the two rows = " in table[-1]


def test_per_image_metrics_that_do_not_average_to_the_primary_metric_stop_the_run(spots_registry, tmp_path):
    _spots_with_per_image(spots_registry, "spots_bad_per_image",
                          lambda self, prediction, labels: (prediction - labels["centre"]).norm(dim=1) + 1.0)
    with pytest.raises(PluginError, match=r"task 'spots_bad_per_image': primary_metric_per_image must return one value "
                                          r"per test image \(\d+,\) whose mean is the primary metric 'error_px'"):
        _run(spots_registry, tmp_path / "run", "spots_bad_per_image", "default")
