"""Writing benchmark results: ``results.json``, ``results.md`` and PNG plots, all atomically."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from simgan_toolkit.io import atomic_path, atomic_write_json


def _metric_names(rows: dict[str, Any]) -> list[str]:
    first = next(iter(rows.values()))
    return [k for k in first["mean"] if "/" not in k]


def _pm(row: dict[str, Any], key: str) -> str:
    return f"{row['mean'][key]:.2f} ± {row['std'][key]:.2f}"


def _gap(value: float | None) -> str:
    if value is None or value != value:  # no gap, or a NaN metric
        return "n/a"
    return f"{round(100 * value) + 0:.0f} %"  # + 0 turns -0 into 0


def table_markdown(rows: dict[str, Any], primary: str, extra: tuple[str, ...] = ()) -> list[str]:
    """A Markdown table: one line per row, metrics as mean ± std, gap closed, training size."""
    metrics = _metric_names(rows)
    metrics = [primary] + [m for m in metrics if m != primary]
    header = ["trained on", *metrics, "gap closed", "n train", *extra]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in rows.items():
        cells = [name, *(_pm(row, m) for m in metrics), _gap(row.get("gap_closed")), str(row.get("n_train", ""))]
        cells += [str(row.get(e, "")) for e in extra]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def realism_markdown(rows: dict[str, Any], self_check: dict[str, Any] | None = None) -> list[str]:
    """The realism table (the Turing column: the median, then each classifier's accuracy) and,
    with ``self_check``, one line saying whether the Turing test passed it."""
    lines = ["| images | KID ×1000 (± std over subsets) | visual Turing test: held-out accuracy real vs these (median; each classifier) | label preservation |",
             "|---|---|---|---|"]
    for name, row in rows.items():
        pres = ", ".join(f"{k} {v:.3g}" for k, v in row.get("label_preservation", {}).items()) or "–"
        lines.append(f"| {name} | {row['kid']:.2f} ± {row['kid_std']:.2f} | {_turing(row)} | {pres} |")
    if self_check:
        (c_low, c_high), (s_low, s_high) = self_check["bounds"]["constant"], self_check["bounds"]["second_target"]
        lines += ["", f"Turing self-check **{'passed' if self_check['passed'] else 'FAILED'}**: target vs constant images "
                  f"{self_check['constant']['turing_accuracy']:.1f} % (expected {c_low:g}-{c_high:g} %), target vs a second "
                  f"target sample {self_check['second_target']['turing_accuracy']:.1f} % (expected {s_low:g}-{s_high:g} %)."
                  + ("" if self_check["passed"] else " Do not read the Turing column of this task.")]
    return lines


def _turing(row: dict[str, Any]) -> str:
    """``93.0 % (91.5, 93.0, 95.0)``: the median and each classifier's accuracy; for a row scored
    on several refiners, then ``; by refiner 93.0, 80.0, 85.0: mean 86.0 ± 6.6 %``."""
    each = row.get("turing_accuracies", [])
    text = f"{row['turing_accuracy']:.1f} %" + (f" ({', '.join(f'{a:.1f}' for a in each)})" if len(each) > 1 else "")
    by_refiner = row.get("turing_by_refiner", [])
    if len(by_refiner) > 1:
        text += (f"; by refiner {', '.join(f'{a:.1f}' for a in by_refiner)}: mean {statistics.mean(by_refiner):.1f} ± "
                 f"{statistics.stdev(by_refiner):.1f} %")
    return text


def speed_markdown(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| task | profile | device | batch | train img/s | s/iteration | simulator img/s | target img/s | refine img/s | peak memory (MB) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['task']} | {r['profile']} | {r['device']} | {r['batch_size']} | {r['train_images_per_s']:.1f} | "
            f"{r['train_seconds_per_iteration']:.3f} | {r['simulator_images_per_s']:.0f} | {r['target_images_per_s']:.0f} | "
            f"{r['refine_images_per_s']:.1f} | train {r['train_peak_memory_mb']:.0f}, refine {r['refine_peak_memory_mb']:.0f} ({r['memory_kind']}) |"
        )
    return lines


def write_markdown(results: dict[str, Any], path: Path) -> None:
    """``results.md``: every table of every task, with the run's provenance on top."""
    env = results["environment"]
    out = [
        f"# Benchmark results: suite `{results['suite']}`",
        "",
        f"Command: `{results['command']}`  ",
        f"Commit `{env.get('commit')}`, simgan-toolkit {env.get('simgan_toolkit')}, torch {env.get('torch')}, "
        f"Python {env.get('python')}, device {env.get('device')} ({env.get('gpu', env.get('platform'))}, "
        f"{env.get('cpu_threads')} CPU threads); total {results['wall_seconds']:.0f} s.",
        "",
        "Scored on each task's procedural target test set; mean ± std over the estimator seeds.",
    ]
    for task, r in results["tasks"].items():
        primary = r["primary_metric"]
        out += ["", f"## {task}", "", f"Primary metric: `{primary}`. Config: profile `{r['config']['profile']}` + "
                f"suite overrides `{r['overrides']}`; seeds {r['seeds']}; extractor for KID: {r.get('kid_extractor', '–')}.", ""]
        out += ["### Sim-to-real", "", *table_markdown(r["sim2real"], primary)]
        if r.get("ablations"):
            seeds = r.get("ablation_seeds", r["seeds"])
            note = [f"Estimator seeds {seeds} in every row (the reference row re-aggregated over them).", ""] if seeds != r["seeds"] else []
            out += ["", "### Ablations", "", *note, *table_markdown(r["ablations"], primary)]
        if r.get("realism"):
            out += ["", "### Realism and label preservation", "", *realism_markdown(r["realism"], r.get("turing_self_check"))]
        if r.get("figures"):
            out += [""] + [f"![{Path(f).stem}]({f})" for f in r["figures"]]
    if results.get("speed"):
        out += ["", "## Speed", "", *speed_markdown(results["speed"])]
    with atomic_path(path) as tmp:
        Path(tmp).write_text("\n".join(out) + "\n", encoding="utf-8")


def plot_rows(task: str, tables: dict[str, dict[str, Any]], primary: str, lower_is_better: bool, path: Path) -> Path:
    """Horizontal bars of the primary metric (mean ± std) for every row of every table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names, means, stds, colours = [], [], [], []
    palette = {"sim2real": "tab:blue", "ablations": "tab:orange"}
    for part, rows in tables.items():
        for name, row in rows.items():
            names.append(name)
            means.append(row["mean"][primary])
            stds.append(row["std"][primary])
            colours.append(palette.get(part, "tab:grey"))
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(names) + 1.4), dpi=110)
    ax.barh(range(len(names)), means, xerr=stds, color=colours, capsize=3)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"{primary}, mean ± std over seeds\n({'lower' if lower_is_better else 'higher'} is better)")
    parts = "sim-to-real (blue) and ablations (orange)" if "ablations" in tables else "sim-to-real"
    ax.set_title(f"{task}: {parts}", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")  # long row names must not clip the labels
    plt.close(fig)
    return path


def plot_curves(task: str, rows: dict[str, dict[str, Any]], path: Path) -> Path | None:
    """Mean ``curve/<name>_<d>`` metrics over seeds, one line per row (e.g. PCK over d)."""
    keys = sorted((k for k in next(iter(rows.values()))["mean"] if k.startswith("curve/")), key=lambda k: int(k.rsplit("_", 1)[1]))
    if not keys:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8), dpi=110)
    xs = [int(k.rsplit("_", 1)[1]) for k in keys]
    for name, row in rows.items():
        ax.plot(xs, [row["mean"][k] for k in keys], marker=".", label=name)
    ax.set_xlabel("threshold d")
    ax.set_ylabel(keys[0].split("/")[1].rsplit("_", 1)[0] + " (mean over seeds)")
    ax.set_title(task, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def write_json(results: dict[str, Any], path: Path) -> None:
    atomic_write_json(path, json.loads(json.dumps(results, default=str)))
