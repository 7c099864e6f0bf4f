"""SimGAN ablations: one change to the suite's config per row, scored like the sim-to-real rows.

Groups (:data:`GROUPS`): ``history`` (no history buffer), ``discriminator`` (global instead of
local), ``feature`` (every other psi; on one-channel images the channel mean equals the identity
and only one of the two is run), ``lam`` (the suite's lambda sweep), ``k_g`` (the suite's K_g
values). The suite's own config is the reference row ("SimGAN, as configured"),
reused from the sim-to-real table.
"""

from __future__ import annotations

from typing import Any

from benchmarks.context import BenchContext
from benchmarks.refining import RefinerRun, train_refiner
from benchmarks.scoring import aggregate, score_row
from benchmarks.sim2real import REFINED_ROW, add_gap_closed

GROUPS = ("history", "discriminator", "feature", "lam", "k_g")
FEATURES = ("identity", "channel_mean", "gradients", "learned")


def variants(ctx: BenchContext) -> list[tuple[str, str, list[str]]]:
    """``(group, row name, overrides)`` of every ablation the suite asks for."""
    cfg, out = ctx.config, []
    unknown = set(ctx.suite.ablations) - set(GROUPS)
    if unknown:
        raise ValueError(f"unknown ablation groups {sorted(unknown)}; known: {GROUPS}")
    if "history" in ctx.suite.ablations and cfg.train.history:
        out.append(("history", "no history buffer", ["train.history=false"]))
    if "discriminator" in ctx.suite.ablations:
        other = "global" if cfg.discriminator.name == "local" else "local"
        out.append(("discriminator", f"{other} discriminator", [f"discriminator.name='{other}'"]))
    if "feature" in ctx.suite.ablations:
        channels = ctx.task.image_spec.channels
        seen = {_same_feature(cfg.feature.name, channels)}
        for f in FEATURES:
            if (computes := _same_feature(f, channels)) not in seen:
                seen.add(computes)
                out.append(("feature", f"psi = {f}", [f"feature.name='{f}'"]))
    if "lam" in ctx.suite.ablations:
        out += [("lam", f"lambda = {v:g}", [f"train.lam={v}"]) for v in ctx.suite.lam_sweep if v != cfg.train.lam]
    if "k_g" in ctx.suite.ablations:
        out += [("k_g", f"K_g = {v}", [f"train.k_g={v}"]) for v in ctx.suite.k_g_values if v != cfg.train.k_g]
    return out


def _same_feature(name: str, channels: int) -> str:
    """The feature transform ``name`` computes on ``channels``-channel images: on one channel the
    channel mean *is* the identity, so its row would repeat the identity row at full cost."""
    return "identity" if name == "channel_mean" and channels == 1 else name


def run_ablations(ctx: BenchContext, sim2real: dict[str, Any], artefacts: dict[str, Any]) -> tuple[dict[str, Any], list[RefinerRun]]:
    """Score every ablation row; the first row is the suite's own SimGAN (from ``sim2real``,
    re-aggregated over the suite's ``ablation_seeds`` so all rows share their estimator seeds).

    Returns ``(rows, runs)``; ``runs`` are the seed-0 refiner runs of each ablation (for the
    realism part).
    """
    cfg = ctx.config
    reference = f"SimGAN, as configured ({cfg.discriminator.name} D, psi = {cfg.feature.name}, lambda = {cfg.train.lam:g}, K_g = {cfg.train.k_g})"
    seeds = ctx.suite.ablation_seeds or ctx.suite.seeds
    ref_row = sim2real[REFINED_ROW]
    rows: dict[str, dict[str, Any]] = {reference: {**ref_row, **aggregate(ref_row["per_seed"][:seeds]), "per_seed": ref_row["per_seed"][:seeds], "group": "reference"}}
    runs: list[RefinerRun] = []
    ctx.say(f"[{cfg.task}] ablations ({seeds} seeds)")
    for group, name, overrides in variants(ctx):
        # One refiner per estimator seed, as in the sim-to-real table, but none that no
        # estimator seed would train on, and at most Suite.ablation_simgan_seeds (quick: 1).
        group_runs = [
            train_refiner(ctx, name, overrides, k, synthetic_estimator=artefacts["synthetic_models"][0])
            for k in range(min(ctx.suite.ablation_simgan_seeds or ctx.suite.simgan_seeds, seeds))
        ]
        sets = [ctx.base_synthetic().with_images(r.refined) for r in group_runs]
        rows[name] = {**score_row(ctx, sets, seeds=seeds), "n_train": ctx.n_base, "group": group, "overrides": overrides, "refiners": [r.summary() for r in group_runs]}
        runs.append(group_runs[0])
        metric = ctx.task.primary_metric.name
        ctx.say(f"  {name}: {metric} {rows[name]['mean'][metric]:.3f} +- {rows[name]['std'][metric]:.3f}")
    add_gap_closed(ctx, rows, reference=sim2real)
    return rows, runs
