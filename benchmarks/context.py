"""One task's benchmark context: its config, networks registry, device and fixed data splits.

Every row of every table draws from these same splits, so rows differ only in what the
estimator is trained on. Target-domain labels are used for the oracle row, the validation split
(choosing the noise baseline's sigma) and scoring; never for training a refiner.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from benchmarks.suites import Suite
from simgan_toolkit.config import RunConfig, build_config
from simgan_toolkit.plugin import Registry
from simgan_toolkit.task import LabelledImages, Task

# Offsets from the run seed, one per split (the validation split is the benchmark's own).
SEED_SYNTHETIC, SEED_REAL, SEED_TEST, SEED_TARGET, SEED_VAL = 101, 202, 303, 404, 505


@dataclass
class BenchContext:
    """Everything a benchmark part needs for one task.

    Attributes:
        task: the task object; ``config`` its resolved run config (profile + suite overrides).
        synthetic: labelled synthetic images, ``n_synthetic x max(multipliers)`` of them; the
            first ``n_synthetic`` are the base training set.
        real: unlabelled target images (N, C, H, W) for SimGAN training and the realism tests.
        val / test / target: labelled target images: validation (baseline tuning only), test
            (scoring) and the oracle's training set.
    """

    task: Task
    config: RunConfig
    registry: Registry
    device: torch.device
    suite: Suite
    out_dir: Path
    say: Callable[[str], None]
    synthetic: LabelledImages
    real: Tensor
    val: LabelledImages
    test: LabelledImages
    target: LabelledImages

    @property
    def n_base(self) -> int:
        """Size of the base synthetic training set."""
        return self.config.data.n_synthetic

    def base_synthetic(self, multiplier: int = 1) -> LabelledImages:
        """The first ``multiplier x n_synthetic`` synthetic images."""
        return self.synthetic.subset(torch.arange(self.n_base * multiplier, device=self.synthetic.images.device))


def suite_config(task_name: str, task: Task, suite: Suite, extra: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """The run config a suite uses for ``task_name``: profile, then suite overrides, then ``extra``."""
    overrides = [*suite.overrides.get(task_name, []), *extra]
    return build_config(task_name, suite.profile, task.profiles(), overrides=overrides)


def make_context(
    task_name: str,
    suite: Suite,
    registry: Registry,
    device: torch.device,
    out_dir: Path,
    *,
    extra_overrides: list[str] | tuple[str, ...] = (),
    say: Callable[[str], None] = print,
) -> BenchContext:
    """Resolve the config and generate the fixed data splits of one task."""
    task: Task = registry.create("task", task_name)
    config = suite_config(task_name, task, suite, extra_overrides)
    d, seed = config.data, config.seed
    n_synthetic = d.n_synthetic * max((1, *suite.multipliers))
    say(f"[{task_name}] data: {n_synthetic} synthetic, {d.n_real} real, {suite.n_val} validation, "
        f"{d.n_test} test, {d.n_target_train} labelled target")
    return BenchContext(
        task=task, config=config, registry=registry, device=device, suite=suite, out_dir=out_dir, say=say,
        synthetic=task.synthetic(n_synthetic, seed + SEED_SYNTHETIC, device),
        real=task.real(d.n_real, seed + SEED_REAL, device),
        val=task.real_labelled(suite.n_val, seed + SEED_VAL, device),
        test=task.real_labelled(d.n_test, seed + SEED_TEST, device),
        target=task.real_labelled(max(d.n_target_train, 1), seed + SEED_TARGET, device),
    )
