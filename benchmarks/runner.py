"""Running a suite: every part for every task, then the reports."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from benchmarks.ablations import run_ablations
from benchmarks.baselines import gaussian_noise, kornia_photometric
from benchmarks.context import BenchContext, make_context
from benchmarks.realism import constant_images, judge_self_check, kid, pooled_features, visual_turing_test
from benchmarks.report import plot_curves, plot_rows, write_json, write_markdown
from benchmarks.sim2real import SYNTHETIC_ROW, run_sim2real
from benchmarks.speed import measure_speed
from benchmarks.suites import Suite
from simgan_toolkit.config import ConfigError
from simgan_toolkit.environment import environment_info
from simgan_toolkit.plugin import Registry

PARTS = ("sim2real", "ablations", "realism", "speed")
#: How often the parent looks for finished task processes (--jobs > 1).
_POLL_SECONDS = 0.2
#: Patch size of the visual Turing test's classifier on images larger than twice this.
TURING_CROP = 64


#: Realism rows of the Turing test's self-check (see :func:`benchmarks.realism.judge_self_check`).
CONSTANT_ROW = "constant images (self-check)"
CALIBRATION_ROW = "labelled-target sample (calibration)"


def run_realism(ctx: BenchContext, artefacts: dict[str, Any], ablation_runs: list[Any]) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """KID and visual Turing test of each image set against the held-out target test images.

    The extractor is the oracle estimator of the first seed (trained on labelled target
    images). Two rows check the measures themselves: a second target sample (KID ~ 0,
    accuracy ~ 50 %) and constant images (accuracy ~ 100 %). Returns ``(rows, extractor name,
    Turing self-check)``.
    """
    reference = ctx.test.images
    base = ctx.base_synthetic().images
    g = torch.Generator(device=ctx.device).manual_seed(ctx.config.seed + 7)
    torch.manual_seed(ctx.config.seed + 7)
    spec = ctx.task.image_spec
    sets: dict[str, tuple[torch.Tensor, dict[str, float]]] = {
        CALIBRATION_ROW: (ctx.target_train.images, {}),
        CONSTANT_ROW: (constant_images(ctx.target_train.images), {}),
        SYNTHETIC_ROW: (base, {}),
        f"synthetic + Gaussian noise (sigma {artefacts['sigma']})": (gaussian_noise(artefacts["sigma"], spec)(base, g), {}),
        "synthetic + kornia photometric": (kornia_photometric(spec)(base, g), {}),
    }
    for run in [*artefacts["runs"][:1], *ablation_runs]:
        sets[run.image_set_name] = (run.refined[: ctx.n_base], run.preservation)
    extractor = artefacts["oracle_models"][0]
    extractor_name = f"{ctx.config.estimator.name} trained on labelled target images (seed {ctx.config.seed}), spatially pooled features"
    real_features = pooled_features(extractor, reference)
    # The classifier looks at 64x64 patches of large images (the hand crops), whole small ones.
    crop = TURING_CROP if min(spec.height, spec.width) > 2 * TURING_CROP else None
    rows, turing = {}, {}
    for name, (images, preservation) in sets.items():
        mean, std = kid(real_features, pooled_features(extractor, images), seed=ctx.config.seed)
        turing[name] = visual_turing_test(reference, images, spec, steps=ctx.suite.turing_steps, seed=ctx.config.seed,
                                          crop=crop, classifiers=ctx.suite.turing_classifiers)
        rows[name] = {"kid": mean, "kid_std": std, **turing[name].to_json(), "label_preservation": preservation}
        ctx.say(f"  {name}: KID {mean:.2f}, real-vs-these accuracy {turing[name].accuracy:.1f} % "
                f"(median of {', '.join(f'{a:.1f}' for a in turing[name].accuracies)})")
    # One refiner's Turing score scatters by ~10 points from refiner seed to refiner seed
    # (docs/gaze.md): the refined row is also scored on every other refiner of the sim-to-real table.
    refiners = artefacts["runs"]
    if len(refiners) > 1:
        first = refiners[0].image_set_name
        scores = [turing[first].accuracy] + [
            visual_turing_test(reference, run.refined[: ctx.n_base], spec, steps=ctx.suite.turing_steps, seed=ctx.config.seed,
                               crop=crop, classifiers=ctx.suite.turing_classifiers).accuracy
            for run in refiners[1:]
        ]
        rows[first]["turing_by_refiner"] = scores
        ctx.say(f"  {first}: real-vs-these accuracy by refiner {', '.join(f'{a:.1f}' for a in scores)} %")
    check = judge_self_check(turing[CONSTANT_ROW], turing[CALIBRATION_ROW])
    ctx.say(f"  Turing self-check {'passed' if check['passed'] else 'FAILED'}")
    return rows, extractor_name, check


def run_task(task_name: str, suite: Suite, registry: Registry, device: torch.device, out: Path, parts: tuple[str, ...],
             say: Callable[[str], None], extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every requested part for one task; returns its JSON-ready results."""
    start = time.perf_counter()
    ctx = make_context(task_name, suite, registry, device, out, extra_overrides=extra, say=say)
    primary = ctx.task.primary_metric
    result: dict[str, Any] = {
        "primary_metric": primary.name, "lower_is_better": primary.lower_is_better,
        "config": ctx.config.model_dump(mode="json"), "overrides": [*suite.overrides.get(task_name, []), *extra],
        "seeds": [ctx.config.seed + s for s in range(suite.seeds)],
        "ablation_seeds": [ctx.config.seed + s for s in range(suite.ablation_seeds or suite.seeds)],
    }
    sim2real, artefacts = run_sim2real(ctx)
    result["sim2real"] = sim2real
    ablation_runs: list[Any] = []
    if "ablations" in parts and suite.ablations:
        result["ablations"], ablation_runs = run_ablations(ctx, sim2real, artefacts)
    if "realism" in parts and suite.realism:
        say(f"[{task_name}] realism")
        result["realism"], result["kid_extractor"], result["turing_self_check"] = run_realism(ctx, artefacts, ablation_runs)
    figures = [plot_rows(task_name, {k: result[k] for k in ("sim2real", "ablations") if k in result},
                         primary.name, primary.lower_is_better, out / f"{task_name}_rows.png")]
    curve = plot_curves(task_name, sim2real, out / f"{task_name}_curves.png")
    result["figures"] = [f.name for f in [*figures, curve] if f is not None]
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


def _print_now(line: str) -> None:
    print(line, flush=True)


def _run_task_in_worker(task_name: str, suite: Suite, device: torch.device, out: Path, parts: tuple[str, ...],
                        extra: tuple[str, ...], threads: int) -> dict[str, Any]:
    """:func:`run_task` in a worker process: its own registry (plugins load again) and thread count."""
    from simgan_toolkit.plugin import get_registry

    torch.set_num_threads(threads)
    return run_task(task_name, suite, get_registry(), device, out, parts, _print_now, extra)


def run_tasks(
    suite: Suite, tasks: list[str], registry: Registry, device: torch.device, out: Path, parts: tuple[str, ...],
    say: Callable[[str], None], extra: tuple[str, ...], jobs: int, on_done: Callable[[str, dict[str, Any]], None],
) -> None:
    """Run every task, ``jobs`` at a time; ``on_done(task, result)`` as each one finishes.

    With ``jobs > 1`` each task runs in its own process with ``threads // jobs`` torch threads
    and prints its progress lines itself (``say`` is not called). The networks are small and
    scale poorly over threads: on the project's 2-core machine the quick suite took 17.4 min
    with two one-thread processes against 22.0 min with one two-thread process.
    """
    if jobs <= 1 or len(tasks) <= 1:
        for task in tasks:
            on_done(task, run_task(task, suite, registry, device, out, parts, say, extra))
        return
    jobs = min(jobs, len(tasks))
    threads = max(1, torch.get_num_threads() // jobs)
    say(f"running {len(tasks)} tasks in {jobs} processes, {threads} torch thread(s) each")
    # spawn, not fork: a forked child of a process that already ran OpenMP threads can hang.
    # Leaving the block terminates the workers, so a failing task (its error re-raised by
    # get()) or Ctrl-C stops the others at once instead of after their remaining minutes.
    with multiprocessing.get_context("spawn").Pool(processes=jobs) as pool:
        pending = {t: pool.apply_async(_run_task_in_worker, (t, suite, device, out, parts, extra, threads)) for t in tasks}
        while pending:
            for task in [t for t, r in pending.items() if r.ready()]:
                on_done(task, pending.pop(task).get())
            time.sleep(_POLL_SECONDS)


def run_suite(
    suite: Suite, tasks: list[str], registry: Registry, device: torch.device, out: Path, *,
    parts: tuple[str, ...] = PARTS, command: str = "", say: Callable[[str], None] = print, extra: tuple[str, ...] = (),
    jobs: int = 1,
) -> dict[str, Any]:
    """Run ``parts`` of ``suite`` for ``tasks`` into ``out``; writes results.json/.md and plots.

    ``jobs``: tasks run side by side in that many processes (see :func:`run_tasks`); the speed
    part always runs afterwards, alone, so its timings are not shared with other work.
    """
    unknown = set(parts) - set(PARTS)
    if unknown or not parts:
        raise ConfigError(f"unknown benchmark parts {sorted(unknown) or 'none given'}; choose from {', '.join(PARTS)}")
    if not tasks:
        raise ConfigError("no task given; name one or more registered tasks, or 'all'")
    # Ablations and realism reuse the sim-to-real rows (reference row, refiners, estimators).
    if {"ablations", "realism"} & set(parts):
        parts = ("sim2real", *parts)
    parts = tuple(p for p in PARTS if p in parts)  # canonical order, no repeats
    if (out / "results.json").exists():
        raise ConfigError(f"{str(out)!r} already holds benchmark results; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    results: dict[str, Any] = {"suite": suite.name, "command": command, "parts": list(parts), "jobs": jobs,
                               "environment": environment_info(device), "tasks": {}}
    if set(parts) - {"speed"}:
        def finished(task: str, result: dict[str, Any]) -> None:
            results["tasks"][task] = result
            write_json(results, out / "results.partial.json")  # a crash keeps the finished tasks

        run_tasks(suite, tasks, registry, device, out, parts, say, extra, jobs, finished)
        results["tasks"] = {t: results["tasks"][t] for t in tasks}  # the order asked for, not of finishing
    if "speed" in parts and not suite.speed_profiles:
        say(f"[speed] skipped: suite {suite.name!r} measures no profile")
    elif "speed" in parts:
        say("[speed]")
        results["speed"] = [
            measure_speed(task, registry.create("task", task), profile, registry, device, suite.speed_iterations)
            for task in tasks for profile in suite.speed_profiles
        ]
    results["wall_seconds"] = round(time.perf_counter() - start, 1)
    write_json(results, out / "results.json")
    write_markdown(results, out / "results.md")
    (out / "results.partial.json").unlink(missing_ok=True)
    say(f"wrote {out / 'results.json'}, {out / 'results.md'} and plots ({results['wall_seconds']:.0f} s)")
    return results
