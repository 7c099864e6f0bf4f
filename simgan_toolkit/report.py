"""Plain-text results tables (what the CLI prints at the end of a run), and the verdict on
whether refinement helped beyond the run's noise."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

_ORDER = ("synthetic", "refined", "target")
#: How a training set is named in results tables (the run's and the benchmark suite's rows).
ROW_LABELS = {"synthetic": "synthetic", "refined": "refined (SimGAN)", "target": "labelled target (oracle)"}


def gap_closed(synthetic: float, method: float, oracle: float, lower_is_better: bool | None = None) -> float | None:
    """Share of the synthetic-to-oracle gap that ``method`` closes (1 = reaches the oracle).

    Works for lower- and higher-is-better metrics alike; None when there is no gap, and, given
    the metric's direction, also when the oracle is not better than synthetic (a share of a
    gap that points the wrong way would read as a large gain or loss).
    """
    gap = oracle - synthetic
    if abs(gap) < 1e-12 or (lower_is_better is not None and (gap > 0) == lower_is_better):
        return None
    return (method - synthetic) / gap


#: How the verdict's noise is estimated, in the words the verdict line and docs use.
NOISE_DEFINITION = (
    "the larger of the estimator seeds' spread (max - min over seeds, the wider of the two rows) and the "
    "test set's 95 % half-width (1.96 standard errors of the mean refined-minus-synthetic difference over "
    "the same test images)"
)
#: The same, for a task that gives no per-image metric (Task.primary_metric_per_image).
SEED_NOISE_DEFINITION = "the larger max-min spread over estimator seeds of the two rows"


def paired_test_noise(synthetic: Sequence[Tensor], refined: Sequence[Tensor]) -> float:
    """95 % half-width of the refined-minus-synthetic difference of the mean primary metric, from
    test-set sampling alone: 1.96 * std(d) / sqrt(N) with d (N,) each test image's mean over
    seeds of refined minus its mean over seeds of synthetic.

    Paired (the rows are scored on the same images, so an image that is hard for both cancels
    out); the normal approximation equals a paired bootstrap's for a mean. ``synthetic`` and
    ``refined`` hold one (N,) tensor per estimator seed.
    """
    d = torch.stack(list(refined)).double().mean(0) - torch.stack(list(synthetic)).double().mean(0)
    if len(d) < 2:
        return 0.0
    return float(1.96 * d.std() / len(d) ** 0.5)


def refinement_verdict(
    synthetic: Sequence[float], refined: Sequence[float], lower_is_better: bool,
    per_image: tuple[Sequence[Tensor], Sequence[Tensor]] | None = None,
) -> dict[str, Any]:
    """Did the refined row beat the synthetic row by more than the run's noise?

    ``synthetic`` and ``refined`` hold the primary metric of each estimator seed;
    ``per_image`` (optional) the same rows' (N,) per-test-image values, one tensor per seed.
    The noise is the larger of ``seed_noise`` (the wider row's max - min over seeds) and
    ``test_noise`` (:func:`paired_test_noise`, when ``per_image`` is given); ``improvement`` is
    the refined mean's advantage over the synthetic mean (positive = better, whatever the
    metric's direction). Verdict: ``"helped"`` if improvement > noise, ``"worse"`` if
    improvement < -noise, else ``"not beyond noise"``; ``"one seed"`` when a row has fewer than
    2 seeds (no estimate of the seeds' noise, no call made).
    """
    definition = NOISE_DEFINITION if per_image is not None else SEED_NOISE_DEFINITION
    out: dict[str, Any] = {"synthetic": list(synthetic), "refined": list(refined), "noise_definition": definition}
    if min(len(synthetic), len(refined)) < 2:
        return {**out, "verdict": "one seed"}
    syn_mean, ref_mean = sum(synthetic) / len(synthetic), sum(refined) / len(refined)
    improvement = syn_mean - ref_mean if lower_is_better else ref_mean - syn_mean
    seed_noise = max(max(synthetic) - min(synthetic), max(refined) - min(refined))
    test_noise = paired_test_noise(*per_image) if per_image is not None else None
    noise = max(seed_noise, test_noise or 0.0)
    verdict = "helped" if improvement > noise else "worse" if improvement < -noise else "not beyond noise"
    return {**out, "verdict": verdict, "synthetic_mean": syn_mean, "refined_mean": ref_mean, "improvement": improvement,
            "noise": noise, "seed_noise": seed_noise, "test_noise": test_noise}


_VERDICT_WORDS = {
    "helped": "refinement helped beyond the noise",
    "not beyond noise": "refinement did not help beyond the noise",
    "worse": "refinement made the estimator worse beyond the noise",
}


def verdict_line(summary: dict[str, Any]) -> str:
    """The one line after the table: the verdict, how the noise was estimated, what to look at."""
    look = [p for p in [summary.get("sample_grid"), *summary.get("figures", [])] if p]
    see = f" Look at {', '.join(look)} in the run folder." if look else ""
    v = summary.get("refinement_verdict")
    if v is None:
        return f"Verdict: not measured (needs 'synthetic' and 'refined' in estimator.train_on).{see}"
    if v["verdict"] == "one seed":
        return ("Verdict: not measured (estimator.seeds = 1: one estimator seed per row gives no estimate of the noise; "
                f"set estimator.seeds = 2 or more).{see}")
    metric = summary["primary_metric"]
    direction = "lower" if metric["lower_is_better"] else "higher"
    seeds = summary.get("estimator_seeds", [])
    if v.get("test_noise") is None:  # the task gives no per-image metric (or the summary predates test_noise)
        noise = f"noise = {SEED_NOISE_DEFINITION} = {v['noise']:.3f}"
    else:
        noise = (f"noise = {v['noise']:.3f}, the larger of the estimator seeds' spread ({v['seed_noise']:.3f}) "
                 f"and the test set's 95 % half-width ({v['test_noise']:.3f})")
    return (f"Verdict: {_VERDICT_WORDS[v['verdict']]}: {metric['name']} refined {v['refined_mean']:.3f} vs synthetic "
            f"{v['synthetic_mean']:.3f} ({direction} is better; means over estimator seeds {seeds}); {noise}.{see}")


def full_effect_line(summary: dict[str, Any]) -> str | None:
    """After a ``default``-profile run of a task that names a profile showing the full effect
    of refinement (``Task.full_effect_profile``), one line saying which; else None."""
    profile = summary.get("full_effect_profile")
    if summary["profile"] != "default" or not profile or profile == "default":
        return None
    return (f"Profile 'default' is sized for a quick run; task {summary['task']!r} shows the full effect of refinement "
            f"with --profile {profile}.")


def _row_means(summary: dict[str, Any]) -> tuple[dict[str, dict[str, float]], dict[str, int]]:
    """Each row's metrics averaged over its estimator seeds (``estimators_per_seed``; a summary
    without it has one seed per row, ``estimators``), and each row's seed count."""
    per_seed: dict[str, list[dict[str, float]]] = summary.get("estimators_per_seed") or {
        k: [v] for k, v in summary["estimators"].items()
    }
    means = {row: {m: sum(r[m] for r in runs) / len(runs) for m in runs[0]} for row, runs in per_seed.items() if runs}
    return means, {row: len(runs) for row, runs in per_seed.items() if runs}


def format_results_table(summary: dict[str, Any]) -> str:
    """A fixed-width table of estimator metrics per training set (means over the row's estimator
    seeds, their count in the last column), label preservation, the :func:`verdict_line` and,
    after a default run, :func:`full_effect_line`."""
    estimators, seed_counts = _row_means(summary)
    primary = summary["primary_metric"]["name"]
    rows = [k for k in _ORDER if k in estimators] + [k for k in estimators if k not in _ORDER]
    # Names with a "/" are series (e.g. a curve's points): in summary.json and plots, not here.
    metric_names = [m for m in next(iter(estimators.values())) if "/" not in m] if estimators else []
    header = ["trained on", *metric_names]
    has_gap = "synthetic" in estimators and "target" in estimators
    if has_gap:
        header.append(f"gap closed ({primary})")
    header.append("seeds")
    lines = [header]
    for row in rows:
        cells = [ROW_LABELS.get(row, row), *(f"{estimators[row][m]:.3f}" for m in metric_names)]
        if has_gap:
            g = gap_closed(estimators["synthetic"][primary], estimators[row][primary], estimators["target"][primary],
                           summary["primary_metric"]["lower_is_better"])
            cells.append("-" if g is None else f"{100 * g:.0f}%".replace("-0%", "0%"))
        cells.append(str(seed_counts[row]))
        lines.append(cells)
    widths = [max(len(r[i]) for r in lines) for i in range(len(header))]
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths))  # noqa: E731
    out = [f"Results: task {summary['task']!r}, profile {summary['profile']!r}, {summary['device']}, "
           f"{summary['wall_seconds']:.0f} s; scored on the target test set", fmt(header), "  ".join("-" * w for w in widths)]
    out += [fmt(r) for r in lines[1:]]
    if summary.get("label_preservation"):
        out.append("label preservation: " + ", ".join(f"{k} = {v:.3f}" for k, v in summary["label_preservation"].items()))
    out.append(verdict_line(summary))
    if (line := full_effect_line(summary)) is not None:
        out.append(line)
    return "\n".join(out)
