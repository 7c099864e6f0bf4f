"""Training and scoring the task's estimator for one row, over seeds, and aggregating.

A row is a training set (plus an optional label-free image transform applied to every batch);
every row gets the same estimator, optimiser, steps and seeds, so rows differ only in data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from torch import nn

from benchmarks.context import BenchContext
from simgan_toolkit.estimation import ImageTransform, evaluate_estimator
from simgan_toolkit.pipeline.estimators import fit_estimator
from simgan_toolkit.task import LabelledImages

__all__ = ["ImageTransform", "aggregate", "better", "score_row", "train_one"]


def train_one(ctx: BenchContext, train: LabelledImages, seed: int, transform: ImageTransform | None = None) -> nn.Module:
    """A fresh estimator (weights seeded by ``seed``) trained on ``train``, as a run trains it."""
    model, _ = fit_estimator(ctx.task, ctx.config, ctx.registry, ctx.device, train, seed, image_transform=transform)
    return model


def score_row(
    ctx: BenchContext,
    train: LabelledImages | Sequence[LabelledImages],
    *,
    transform: ImageTransform | None = None,
    test: LabelledImages | None = None,
    keep_models: bool = False,
    seeds: int | None = None,
) -> dict[str, Any]:
    """Train one estimator per seed (the suite's first ``seeds``, default all) and score each on
    ``test`` (default: the test split).

    ``train`` may be one training set or one per seed (e.g. images of a refiner trained with
    that seed). Returns ``{"per_seed": [metrics...], "mean": {...}, "std": {...}}`` and, with
    ``keep_models``, ``"models"``.
    """
    sets = list(train) if isinstance(train, (list, tuple)) else [train]
    per_seed, models = [], []
    for s in range(seeds or ctx.suite.seeds):
        model = train_one(ctx, sets[s % len(sets)], ctx.config.seed + s, transform)
        per_seed.append(evaluate_estimator(ctx.task, model, test if test is not None else ctx.test))
        if keep_models:
            models.append(model)
    out: dict[str, Any] = {"per_seed": per_seed, **aggregate(per_seed)}
    if keep_models:
        out["models"] = models
    return out


def aggregate(per_seed: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean and sample standard deviation (0 for one seed) of every metric."""
    mean, std = {}, {}
    for key in per_seed[0]:
        values = [m[key] for m in per_seed]
        mu = sum(values) / len(values)
        mean[key] = mu
        std[key] = math.sqrt(sum((v - mu) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return {"mean": mean, "std": std}


def better(ctx: BenchContext, a: float, b: float) -> bool:
    """Whether primary-metric value ``a`` beats ``b``."""
    return a < b if ctx.task.primary_metric.lower_is_better else a > b
