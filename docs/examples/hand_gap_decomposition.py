"""How much of the hand task's synthetic-to-target gap is content, and how much is sensor?

A refiner keeps labels by changing an image only locally (self-regularisation), so it can learn
a camera's effects (holes, flying pixels, edge dropout, noise) but not a different scene (a
thicker hand, a bent forearm, a tilted table). This script trains the task's estimator, with the
run's own settings, on three training sets and scores each on the camera's labelled test set:

- ``synthetic``: the simulator's crops (what a run's synthetic row trains on);
- ``ideal sensor``: the *target's* scene seen by a perfect camera
  (:func:`simgan_hand.target_scene.ideal_sensor`): target content, no sensor effect;
- ``target``: the target camera's labelled crops (the run's oracle row).

``ideal sensor`` minus ``synthetic`` is the content part of the gap; ``target`` minus ``ideal
sensor`` the sensor part, the most a refiner can close. Numbers are in docs/hand.md.

    python docs/examples/hand_gap_decomposition.py                      # default profile, 3 cameras, 2 seeds
    python docs/examples/hand_gap_decomposition.py --profile long --seeds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from simgan_hand.target_scene import ideal_sensor, simulate_target_hands
from simgan_toolkit.config import build_config
from simgan_toolkit.estimation import evaluate_estimator
from simgan_toolkit.pipeline.data import SEED_OFFSETS
from simgan_toolkit.pipeline.estimators import fit_estimator
from simgan_toolkit.plugin import get_registry
from simgan_toolkit.task import LabelledImages

CAMERAS = ("hand_depth", "hand_depth_tof", "hand_depth_stereo")
#: Seed of the ideal-sensor training set (any seed not used by a run's own splits).
IDEAL_SEED = 4242


def decompose(task_name: str, profile: str, seeds: int, overrides: list[str]) -> dict[str, list[dict[str, float]]]:
    """Per training set, the metrics of one estimator per seed, scored on ``task_name``'s test set."""
    registry = get_registry()
    task = registry.create("task", task_name)
    config = build_config(task_name, profile, task.profiles(), overrides=overrides)
    device, d, run_seed = torch.device("cpu"), config.data, config.seed
    generator = torch.Generator().manual_seed(IDEAL_SEED)
    train_sets = {
        "synthetic": task.synthetic(d.n_synthetic, run_seed + SEED_OFFSETS["synthetic"], device),
        "ideal sensor": LabelledImages(*simulate_target_hands(d.n_synthetic, generator, ideal_sensor)),
        "target": task.target_labelled(d.n_target_train, run_seed + SEED_OFFSETS["target_train"], device),
    }
    test = task.target_labelled(d.n_test, run_seed + SEED_OFFSETS["test"], device)
    results: dict[str, list[dict[str, float]]] = {}
    for name, train in train_sets.items():
        results[name] = []
        for seed in range(seeds):
            start = time.perf_counter()
            model, _ = fit_estimator(task, config, registry, device, train, run_seed + seed)
            metrics = evaluate_estimator(task, model, test)
            results[name].append(metrics)
            print(f"{task_name:18s} {name:13s} seed {seed}: pck_5 {metrics['pck_5']:6.2f}  "
                  f"mean_px_error {metrics['mean_px_error']:6.2f}  ({time.perf_counter() - start:.0f} s)", flush=True)
    return results


def content_share(results: dict[str, list[dict[str, float]]], metric: str) -> float:
    """Fraction of the synthetic-to-target gap in ``metric`` that the ideal-sensor set closes."""
    mean = {name: statistics.fmean(m[metric] for m in rows) for name, rows in results.items()}
    gap = mean["target"] - mean["synthetic"]
    return (mean["ideal sensor"] - mean["synthetic"]) / gap if gap else float("nan")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default")
    parser.add_argument("--tasks", default=",".join(CAMERAS), help="comma-separated hand tasks")
    parser.add_argument("--seeds", type=int, default=2, help="estimator seeds per training set")
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    parser.add_argument("--json", type=Path, help="also write the per-seed metrics here")
    args = parser.parse_args(argv)
    everything = {}
    for task_name in args.tasks.split(","):
        results = decompose(task_name, args.profile, args.seeds, args.overrides)
        everything[task_name] = results
        for metric in ("pck_5", "mean_px_error"):
            means = "  ".join(f"{name} {statistics.fmean(m[metric] for m in rows):.2f}" for name, rows in results.items())
            print(f"{task_name}: {metric}: {means}; content share of the gap {content_share(results, metric):.0%}")
    if args.json:
        args.json.write_text(json.dumps(everything, indent=1))


if __name__ == "__main__":
    main()
