"""The sim-to-real table: the same estimator and budget trained on each kind of data.

Rows: synthetic; synthetic + Gaussian noise (sigma chosen on the validation split); synthetic
+ kornia photometric augmentation; refined (SimGAN); refined + the same kornia augmentation;
k x synthetic vs k x refined for each multiplier; labelled target images (the oracle). Each row
is mean +- std over the suite's seeds (estimator seed k trains on the images of refiner
k mod ``simgan_seeds``), and states the share of the synthetic-to-oracle gap it closes.
"""

from __future__ import annotations

from typing import Any

from benchmarks.baselines import choose_noise_sigma, gaussian_noise, kornia_photometric
from benchmarks.context import BenchContext
from benchmarks.refining import RefinerRun, train_refiner
from benchmarks.scoring import score_row
from simgan_toolkit.report import ROW_LABELS, gap_closed

#: Row names other parts look up (ablations' reference row, realism's synthetic row, the gap).
SYNTHETIC_ROW, REFINED_ROW, ORACLE_ROW = ROW_LABELS["synthetic"], ROW_LABELS["refined"], ROW_LABELS["target"]


def run_sim2real(ctx: BenchContext) -> tuple[dict[str, Any], dict[str, Any]]:
    """Score every row. Returns ``(table, artefacts)``: the table is JSON-ready; artefacts hold
    what later parts reuse (refiner runs, the oracle and synthetic estimators, the sigma)."""
    say, spec = ctx.say, ctx.task.image_spec
    rows: dict[str, dict[str, Any]] = {}
    say(f"[{ctx.config.task}] sim-to-real table ({ctx.suite.seeds} seeds)")

    synthetic = score_row(ctx, ctx.base_synthetic(), keep_models=True)
    synthetic_models = synthetic.pop("models")
    rows[SYNTHETIC_ROW] = {**synthetic, "n_train": ctx.n_base}
    _said(ctx, SYNTHETIC_ROW, rows[SYNTHETIC_ROW])

    noise = choose_noise_sigma(ctx)
    rows["synthetic + Gaussian noise"] = {
        **score_row(ctx, ctx.base_synthetic(), transform=gaussian_noise(noise["sigma"], spec)),
        "n_train": ctx.n_base, "sigma": noise["sigma"], "sigma_validation": noise["validation"],
    }
    _said(ctx, "synthetic + Gaussian noise", rows["synthetic + Gaussian noise"])

    rows["synthetic + kornia photometric"] = {**score_row(ctx, ctx.base_synthetic(), transform=kornia_photometric(spec)), "n_train": ctx.n_base}
    _said(ctx, "synthetic + kornia photometric", rows["synthetic + kornia photometric"])

    multiplier = max((1, *ctx.suite.multipliers))
    runs: list[RefinerRun] = [
        train_refiner(ctx, REFINED_ROW, [], k, n_refine=ctx.n_base * multiplier, synthetic_estimator=synthetic_models[0])
        for k in range(ctx.suite.simgan_seeds)
    ]
    refined_sets = [ctx.base_synthetic().with_images(r.refined[: ctx.n_base]) for r in runs]
    rows[REFINED_ROW] = {**score_row(ctx, refined_sets), "n_train": ctx.n_base, "refiners": [r.summary() for r in runs]}
    _said(ctx, REFINED_ROW, rows[REFINED_ROW])

    # Do refinement and augmentation stack? The same refined images, the same kornia stack as
    # the "synthetic + kornia photometric" row.
    rows["refined + kornia photometric"] = {**score_row(ctx, refined_sets, transform=kornia_photometric(spec)), "n_train": ctx.n_base}
    _said(ctx, "refined + kornia photometric", rows["refined + kornia photometric"])

    for k in ctx.suite.multipliers:
        more = ctx.base_synthetic(k)
        rows[f"synthetic {k}x"] = {**score_row(ctx, more), "n_train": len(more)}
        _said(ctx, f"synthetic {k}x", rows[f"synthetic {k}x"])
        refined_more = [more.with_images(r.refined[: len(more)]) for r in runs]
        rows[f"refined {k}x"] = {**score_row(ctx, refined_more), "n_train": len(more)}
        _said(ctx, f"refined {k}x", rows[f"refined {k}x"])

    oracle = score_row(ctx, ctx.target_train, keep_models=True)
    oracle_models = oracle.pop("models")
    rows[ORACLE_ROW] = {**oracle, "n_train": len(ctx.target_train)}
    _said(ctx, ORACLE_ROW, rows[ORACLE_ROW])

    add_gap_closed(ctx, rows)
    artefacts = {"runs": runs, "synthetic_models": synthetic_models, "oracle_models": oracle_models, "sigma": noise["sigma"]}
    return rows, artefacts


def add_gap_closed(ctx: BenchContext, rows: dict[str, dict[str, Any]], reference: dict[str, dict[str, Any]] | None = None) -> None:
    """Add ``gap_closed`` (fraction of the synthetic-to-oracle gap, primary metric, on means;
    None when the oracle is not better than synthetic) to every row; ``reference`` holds the
    synthetic and oracle rows when ``rows`` lacks them."""
    ref = reference or rows
    metric = ctx.task.primary_metric
    low = ref[SYNTHETIC_ROW]["mean"][metric.name]
    high = ref[ORACLE_ROW]["mean"][metric.name]
    for row in rows.values():
        row["gap_closed"] = gap_closed(low, row["mean"][metric.name], high, metric.lower_is_better)


def _said(ctx: BenchContext, name: str, row: dict[str, Any]) -> None:
    metric = ctx.task.primary_metric.name
    ctx.say(f"  {name}: {metric} {row['mean'][metric]:.3f} +- {row['std'][metric]:.3f}")
