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
from simgan_toolkit.pipeline.data import make_data
from simgan_toolkit.pipeline.run import Run
from simgan_toolkit.plugin import Registry
from simgan_toolkit.task import LabelledImages, Task

#: Offset from the run seed of the validation split, the benchmark's own; the other splits are
#: the pipeline's (:func:`make_context`), so they hold a run's images.
SEED_VAL = 505


@dataclass
class BenchContext:
    """Everything a benchmark part needs for one task.

    Attributes:
        task: the task object; ``config`` its resolved run config (profile + suite overrides).
        synthetic: labelled synthetic images, ``n_synthetic x max(multipliers)`` of them; the
            first ``n_synthetic`` are the base training set.
        target: unlabelled target images (N, C, H, W) for SimGAN training.
        val / test / target_train: labelled target images: validation (baseline tuning only),
            test (scoring and the realism tests' reference) and the oracle's training set.
        extra_overrides: the command line's ``--set`` overrides, applied after the suite's to
            every config of the task (:meth:`variant_config`).
    """

    task: Task
    config: RunConfig
    registry: Registry
    device: torch.device
    suite: Suite
    out_dir: Path
    say: Callable[[str], None]
    synthetic: LabelledImages
    target: Tensor
    val: LabelledImages
    test: LabelledImages
    target_train: LabelledImages
    extra_overrides: tuple[str, ...] = ()

    def variant_config(self, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
        """The config of one variant: profile, suite overrides, the user's ``--set`` overrides,
        then ``overrides`` (a row's or ablation's own)."""
        return suite_config(self.config.task, self.task, self.suite, [*self.extra_overrides, *overrides])

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
    return build_config(task_name, suite.profile_for(task), task.profiles(), overrides=overrides)


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
    """Resolve the config and make the fixed data splits of one task.

    The splits are the pipeline's own data stage (:func:`simgan_toolkit.pipeline.data.make_data`):
    the same images a run with this config trains and scores on (the synthetic side
    ``max(multipliers)`` times larger), and datasets on disk where the config names them
    (``data.<side>.path``). Only the validation split is the benchmark's own.
    """
    task: Task = registry.create("task", task_name)
    config = suite_config(task_name, task, suite, extra_overrides)
    d = config.data
    n_synthetic = d.n_synthetic * max((1, *suite.multipliers))
    say(f"[{task_name}] data: {n_synthetic} synthetic, {d.n_target} target, {suite.n_val} validation, "
        f"{d.n_test} test, {d.n_target_train} labelled target")
    # The oracle row always needs a labelled target set, even where the config disables it.
    data_config = config.model_copy(update={"data": d.model_copy(update={
        "n_synthetic": n_synthetic, "n_target_train": max(d.n_target_train, 1)})})
    data = make_data(Run(data_config, registry, task, out_dir, device, progress=False, say=lambda _: None))
    return BenchContext(
        task=task, config=config, registry=registry, device=device, suite=suite, out_dir=out_dir, say=say,
        extra_overrides=tuple(extra_overrides),
        synthetic=data.synthetic, target=data.target, test=data.test, target_train=data.target_train,
        val=task.target_labelled(suite.n_val, config.seed + SEED_VAL, device),
    )
