"""Shared fixture of the benchmark tests: fake benchmark contexts (one torch thread: tests/conftest.py).

The real :class:`benchmarks.context.BenchContext` needs generated data splits; the unit tests
of the picking, scoring and ablation logic only need its attributes, so ``fake_ctx`` builds a
namespace with the same ones.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch

from simgan_toolkit.task import ImageSpec, LabelledImages, MetricSpec


def _labelled(n: int, fill: float) -> LabelledImages:
    return LabelledImages(torch.full((n, 1, 4, 4), fill), {"y": torch.arange(n, dtype=torch.float32)[:, None]})


@pytest.fixture
def fake_ctx():
    """``fake_ctx(lower_is_better=True, metric="err", **suite_fields)`` -> a BenchContext-like namespace.

    Data splits are tiny constant images, each split filled with its own value so a test can
    tell which split a function was given: synthetic 0.0 (8 images, n_base 4), val 0.5,
    test -0.5, target_train 0.25. ``said`` collects what ``say`` printed.
    """

    def make(lower_is_better: bool = True, metric: str = "err", seed: int = 10, **suite_fields: Any) -> SimpleNamespace:
        suite = SimpleNamespace(**{"name": "fake", "seeds": 2, "simgan_seeds": 1, "ablation_simgan_seeds": None, "noise_sigmas": (0.05, 0.1), "multipliers": (2,), **suite_fields})
        said: list[str] = []
        synthetic = _labelled(8, 0.0)
        ctx = SimpleNamespace(
            task=SimpleNamespace(primary_metric=MetricSpec(metric, lower_is_better), image_spec=ImageSpec(1, 4, 4)),
            config=SimpleNamespace(seed=seed, task="fake"),
            suite=suite,
            synthetic=synthetic,
            val=_labelled(3, 0.5),
            test=_labelled(5, -0.5),
            target_train=_labelled(6, 0.25),
            n_base=4,
            said=said,
            say=said.append,
        )
        ctx.base_synthetic = lambda multiplier=1: synthetic.subset(torch.arange(4 * multiplier))
        return ctx

    return make
