"""Plain-text results tables (what the CLI prints at the end of a run)."""

from __future__ import annotations

from typing import Any

_ORDER = ("synthetic", "refined", "target")
_LABELS = {"synthetic": "synthetic", "refined": "refined (SimGAN)", "target": "labelled target (oracle)"}


def gap_closed(synthetic: float, method: float, oracle: float) -> float | None:
    """Share of the synthetic-to-oracle gap that ``method`` closes (1 = reaches the oracle).

    Works for lower- and higher-is-better metrics alike; None when there is no gap.
    """
    gap = oracle - synthetic
    if abs(gap) < 1e-12:
        return None
    return (method - synthetic) / gap


def format_results_table(summary: dict[str, Any]) -> str:
    """A fixed-width table of estimator metrics per training set, plus label preservation."""
    estimators: dict[str, dict[str, float]] = summary["estimators"]
    primary = summary["primary_metric"]["name"]
    rows = [k for k in _ORDER if k in estimators] + [k for k in estimators if k not in _ORDER]
    # Names with a "/" are series (e.g. a curve's points): in summary.json and plots, not here.
    metric_names = [m for m in next(iter(estimators.values())) if "/" not in m] if estimators else []
    header = ["trained on", *metric_names]
    has_gap = "synthetic" in estimators and "target" in estimators
    if has_gap:
        header.append(f"gap closed ({primary})")
    lines = [header]
    for row in rows:
        cells = [_LABELS.get(row, row), *(f"{estimators[row][m]:.3f}" for m in metric_names)]
        if has_gap:
            g = gap_closed(estimators["synthetic"][primary], estimators[row][primary], estimators["target"][primary])
            cells.append("-" if g is None else f"{100 * g:.0f}%".replace("-0%", "0%"))
        lines.append(cells)
    widths = [max(len(r[i]) for r in lines) for i in range(len(header))]
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths))  # noqa: E731
    out = [f"Results: task {summary['task']!r}, profile {summary['profile']!r}, {summary['device']}, "
           f"{summary['wall_seconds']:.0f} s; scored on the target test set", fmt(header), "  ".join("-" * w for w in widths)]
    out += [fmt(r) for r in lines[1:]]
    if summary.get("label_preservation"):
        out.append("label preservation: " + ", ".join(f"{k} = {v:.3f}" for k, v in summary["label_preservation"].items()))
    return "\n".join(out)
