"""BenchContext.variant_config: every refiner of a suite sees the user's --set overrides."""

from __future__ import annotations

from types import SimpleNamespace

from benchmarks.context import BenchContext
from benchmarks.suites import SUITES


def test_user_overrides_reach_variant_configs_and_row_overrides_win(registry):
    task = registry.create("task", "gaze")
    ctx = SimpleNamespace(
        config=SimpleNamespace(task="gaze"), task=task, suite=SUITES["quick"],
        extra_overrides=("train.steps=7", "train.lam=0.25"),
    )
    config = BenchContext.variant_config(ctx, ["train.lam=2.0", "seed=3"])  # type: ignore[arg-type]
    assert config.train.steps == 7  # the user's --set (the quick suite alone says 400)
    assert config.train.lam == 2.0  # the row's own override comes last
    assert config.seed == 3
    assert config.data.n_synthetic == 4000  # the suite's overrides still apply
