"""The closing stages (rank 0): the task's figures, then ``summary.json`` with every score, the
refinement verdict and the machine it ran on."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from simgan_toolkit.environment import environment_info
from simgan_toolkit.io import atomic_write_json
from simgan_toolkit.pipeline.data import RunData
from simgan_toolkit.pipeline.estimators import VERDICT_SETS, EstimatorResults
from simgan_toolkit.pipeline.run import Run, stage
from simgan_toolkit.report import refinement_verdict
from simgan_toolkit.training import TrainingOutcome

SUMMARY_FILE = "summary.json"


@stage("figures", ranks="main")
def save_figures(run: Run, results: EstimatorResults) -> list[str]:
    """The task's result plots of the estimators' metrics, as paths relative to the run folder when inside it."""
    figures = run.task.save_figures(results.metrics(), run.out)
    return [str(Path(f).relative_to(run.out)) if Path(f).is_relative_to(run.out) else str(f) for f in figures]


def verdict(run: Run, results: EstimatorResults) -> dict[str, Any] | None:
    """Whether refinement helped (see :func:`simgan_toolkit.report.refinement_verdict`); None
    unless both verdict rows were trained."""
    if not set(VERDICT_SETS) <= set(results.per_seed):
        return None
    primary = run.task.primary_metric
    per_image = None
    if set(VERDICT_SETS) <= set(results.per_image):
        per_image = tuple(results.per_image[s] for s in VERDICT_SETS)
    return refinement_verdict(*([m[primary.name] for m in results.per_seed[s]] for s in VERDICT_SETS),
                              primary.lower_is_better, per_image)


def last_sample_grid(out: Path) -> str | None:
    """The last sample grid, relative to ``out``: names carry the zero-padded step
    (samples/step_000400.png), so the largest name is the last grid."""
    return max((p.relative_to(out).as_posix() for p in (out / "samples").glob("step_*.png")), default=None)


@stage(None, ranks="main")
def write_summary(
    run: Run, data: RunData, results: EstimatorResults, outcome: TrainingOutcome, preservation: dict[str, float],
    figures: list[str], loss_name: str,
) -> dict[str, Any]:
    """Write (and return) ``summary.json``."""
    config, primary = run.config, run.task.primary_metric
    summary = {
        "task": config.task,
        "profile": config.profile,
        "device": str(run.device),
        "wall_seconds": round(time.perf_counter() - run.started, 2),
        "stage_seconds": run.clock.seconds,
        "loss_implementation": loss_name,
        "primary_metric": {"name": primary.name, "lower_is_better": primary.lower_is_better, "unit": primary.unit},
        "estimators": results.metrics(),
        "estimator_seeds": [config.seed + k for k in range(config.estimator.seeds)],
        "estimators_per_seed": results.per_seed,
        "refinement_verdict": verdict(run, results),
        "sample_grid": last_sample_grid(run.out),
        "full_effect_profile": run.task.full_effect_profile,
        "label_preservation": preservation,
        "figures": figures,
        "simgan_final": outcome.last_metrics,
        "resumed_from": list(outcome.resumed_from) if outcome.resumed_from else None,
        "data": config.data.model_dump(),
        "data_counts": data.counts(),
        "environment": environment_info(run.device),
    }
    atomic_write_json(run.out / SUMMARY_FILE, summary)
    return summary
