"""The estimator stages: train (or, resuming, reload) the task's estimator on each training set
(synthetic, refined, target) with one or more seeds, and score it on the test set.

Files: ``estimators/<set>.{pt,json}`` for the first seed, ``<set>_seed<k>.{pt,json}`` for seed
index k. Estimators train on rank 0 only, except the synthetic estimator that a ``learned``
psi needs before SimGAN: rank 0 trains it and the other ranks load it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from simgan_toolkit.config import RunConfig
from simgan_toolkit.data.sources import LABELLED_SIDES
from simgan_toolkit.environment import to_device
from simgan_toolkit.errors import DataError, PluginError
from simgan_toolkit.estimation import (
    ImageTransform,
    build_estimator,
    estimator_options,
    predict,
    save_estimator,
    train_estimator,
)
from simgan_toolkit.io import atomic_write_json
from simgan_toolkit.pipeline.data import RunData
from simgan_toolkit.pipeline.run import Run, stage
from simgan_toolkit.plugin import Registry
from simgan_toolkit.task import LabelledImages, Task
from simgan_toolkit.training import distributed as dist_utils

#: The training sets the refinement verdict compares, trained with ``estimator.seeds`` seeds each.
VERDICT_SETS = ("synthetic", "refined")
#: Training set names (``estimator.train_on`` values), in the order their stages run.
SYNTHETIC, REFINED, TARGET = "synthetic", "refined", "target"


@dataclass
class EstimatorResults:
    """What the estimator stages found: ``first_seed[set]`` is the first seed's result record
    (``train_set``, ``seed``, ``n_train``, ``metrics``, fit statistics), ``per_seed[set]``
    the metrics of every seed and ``per_image[set]`` every seed's (N,) primary metric per test
    image (:meth:`~simgan_toolkit.task.Task.primary_metric_per_image`; absent when the task
    does not provide it)."""

    first_seed: dict[str, dict[str, Any]] = field(default_factory=dict)
    per_seed: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    per_image: dict[str, list[Tensor]] = field(default_factory=dict)

    def metrics(self) -> dict[str, dict[str, float]]:
        """Training set -> its first seed's metrics."""
        return {k: v["metrics"] for k, v in self.first_seed.items()}


def estimator_seed_count(config: RunConfig, train_set: str) -> int:
    """Estimator seeds trained on ``train_set``: ``estimator.seeds`` for the two rows the
    verdict compares (synthetic, refined), one for the others."""
    return config.estimator.seeds if train_set in VERDICT_SETS else 1


def psi_needs_synthetic_estimator(config: RunConfig) -> bool:
    """Whether psi is this run's synthetic estimator (``feature.name = "learned"`` without a checkpoint)."""
    return config.feature.name == "learned" and config.feature.checkpoint is None


def new_estimator(task: Task, config: RunConfig, registry: Registry, device: torch.device, seed: int) -> nn.Module:
    """``task``'s estimator as ``config`` sets it, initial weights seeded by ``seed``, on ``device``."""
    torch.manual_seed(seed)
    return to_device(build_estimator(task, config.estimator, registry), device, config.channels_last)


def fit_estimator(
    task: Task, config: RunConfig, registry: Registry, device: torch.device, data: LabelledImages, seed: int,
    *, progress: bool = False, desc: str = "estimator", image_transform: ImageTransform | None = None,
) -> tuple[nn.Module, dict[str, float]]:
    """A fresh estimator (:func:`new_estimator`, weights seeded by ``seed``) trained on ``data``
    with ``config.estimator``'s budget: the one training call of runs and benchmarks alike.
    ``image_transform`` (benchmarks' label-free baselines) is applied to every training batch.
    Returns ``(model, fit)``, ``fit`` as :func:`~simgan_toolkit.estimation.train_estimator` returns it."""
    model = new_estimator(task, config, registry, device, seed)
    fit = train_estimator(task, model, data, config.estimator, seed, progress=progress, desc=desc,
                          image_transform=image_transform)
    return model, fit


def check_estimator(run: Run) -> None:
    """Build the configured estimator once, before any long work, so that a wrong
    ``estimator.name`` or ``estimator.options`` fails in seconds rather than after SimGAN
    (whose run folder could then not be resumed with the corrected setting).

    Built on the CPU inside a forked RNG: the run's random streams are untouched.
    """
    if not run.config.estimator.train_on:
        return
    with torch.random.fork_rng(devices=[]):
        build_estimator(run.task, run.config.estimator, run.registry)


def _load_weights(model: nn.Module, path: Path, device: torch.device) -> nn.Module:
    model.load_state_dict(torch.load(path, map_location=device, weights_only=False)["state_dict"])
    return model


def per_image_scores(task: Task, prediction: Tensor, test: LabelledImages, metrics: dict[str, float]) -> Tensor | None:
    """The task's (N,) primary metric per test image, on the CPU; None if the task gives none.

    Raises PluginError when their mean is not the primary metric of ``metrics``: the verdict's
    test-set noise would then be measured on another quantity than the one the table shows.
    """
    values = task.primary_metric_per_image(prediction, test.labels)
    if values is None:
        return None
    values = values.detach().float().cpu()
    name = task.primary_metric.name
    if values.shape != (len(test),) or abs(float(values.mean()) - metrics[name]) > 1e-3 * max(1.0, abs(metrics[name])):
        raise PluginError(
            f"task {task.name!r}: primary_metric_per_image must return one value per test image ({len(test)},) "
            f"whose mean is the primary metric {name!r} = {metrics[name]:.6g}; got shape {tuple(values.shape)}"
            + (f", mean {float(values.mean()):.6g}" if values.numel() else "")
        )
    return values


def train_estimator_seed(
    run: Run, train_set: str, data: LabelledImages, test: LabelledImages, seed_index: int = 0,
) -> tuple[nn.Module, dict[str, Any], Tensor | None]:
    """Train (or, when resuming, reload) the estimator of seed ``config.seed + seed_index`` on
    one training set and score it on ``test``. Seed index 0 writes ``estimators/<set>.{pt,json}``,
    index k ``estimators/<set>_seed<k>.{pt,json}``.

    Returns ``(model, result record, per-image primary metric or None)``; the per-image values
    are recomputed from the (re)loaded model, so a resumed run has them too."""
    config = run.config
    est_dir = run.out / "estimators"
    name = train_set if seed_index == 0 else f"{train_set}_seed{seed_index}"
    result_path, model_path = est_dir / f"{name}.json", est_dir / f"{name}.pt"
    # Every training set starts from the same initial weights and batch order (per seed).
    seed = config.seed + seed_index
    if run.resume and result_path.exists() and model_path.exists():
        model = _load_weights(new_estimator(run.task, config, run.registry, run.device, seed), model_path, run.device)
        result = json.loads(result_path.read_text())
        return model, result, per_image_scores(run.task, predict(model, test.images), test, result["metrics"])
    model, fit = fit_estimator(run.task, config, run.registry, run.device, data, seed, progress=run.progress,
                               desc=f"estimator ({name})")
    prediction = predict(model, test.images)
    metrics = run.task.estimator_metrics(prediction, test.labels)
    scores = per_image_scores(run.task, prediction, test, metrics)
    result = {"train_set": train_set, "seed": seed, "n_train": len(data), "metrics": metrics, **fit}
    save_estimator(model, config.estimator.name, estimator_options(run.task, config.estimator), model_path)
    atomic_write_json(result_path, result)
    return model, result, scores


def train_estimator_seeds(run: Run, train_set: str, data: LabelledImages, test: LabelledImages,
                          results: EstimatorResults) -> nn.Module:
    """Train (or reload) every seed's estimator on ``train_set``, record the results in
    ``results``; returns the first seed's estimator.

    Labelled sides read from disk may lack a label the task reads (when it declares no
    ``estimator_labels``): that KeyError becomes a DataError naming the paths.
    """
    try:
        fits = [train_estimator_seed(run, train_set, data, test, k) for k in range(estimator_seed_count(run.config, train_set))]
    except KeyError as exc:
        d = run.config.data
        disk_labelled = {s: getattr(d, s).path for s in LABELLED_SIDES if getattr(d, s) is not None}
        if not disk_labelled:
            raise
        have = {"training set": sorted(data.labels), "test set": sorted(test.labels)}
        raise DataError(
            f"task {run.config.task!r} reads label {exc.args[0]!r}, missing from data on disk "
            f"({', '.join(f'data.{k}.path {v!r}' for k, v in disk_labelled.items())}); labels present: {have}"
        ) from None
    results.first_seed[train_set] = fits[0][1]
    results.per_seed[train_set] = [r["metrics"] for _, r, _ in fits]
    if all(scores is not None for _, _, scores in fits):
        results.per_image[train_set] = [scores for _, _, scores in fits]
    return fits[0][0]


def _timed(run: Run, train_set: str, data: LabelledImages, test: LabelledImages, results: EstimatorResults) -> nn.Module:
    return run.clock.run(f"estimator:{train_set}", lambda: train_estimator_seeds(run, train_set, data, test, results))


@stage(None, ranks="all")
def estimator_for_psi(run: Run, data: RunData, results: EstimatorResults) -> nn.Module | None:
    """The synthetic estimator that psi is, trained before SimGAN; None when psi is not learned
    from this run. Rank 0 trains (or reloads) it, the other ranks load what rank 0 wrote."""
    if not (psi_needs_synthetic_estimator(run.config) and SYNTHETIC in run.config.estimator.train_on):
        return None
    model: nn.Module | None = None
    if run.is_main:
        model = _timed(run, SYNTHETIC, data.synthetic, data.test, results)
    dist_utils.barrier()
    if model is None:  # rank 0 has written it (or, resuming, had it): load it
        model = _load_weights(new_estimator(run.task, run.config, run.registry, run.device, run.config.seed), run.out / "estimators" / "synthetic.pt", run.device)
    return model


@stage(None, ranks="main")
def train_estimators(run: Run, data: RunData, refined: LabelledImages, results: EstimatorResults) -> None:
    """The estimators of ``estimator.train_on`` not trained yet, each on its training set."""
    train_on = run.config.estimator.train_on
    sets = {SYNTHETIC: data.synthetic, REFINED: refined, TARGET: data.target_train}
    for train_set in (SYNTHETIC, REFINED, TARGET):
        images = sets[train_set]
        if train_set in train_on and images is not None and train_set not in results.first_seed:
            _timed(run, train_set, images, data.test, results)
