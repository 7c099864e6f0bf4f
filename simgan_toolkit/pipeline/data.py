"""The data stage: every side of a run's data, from the task's generators or from disk.

Each side (synthetic, target, test, target_train) comes from the task's generators or, when the
config sets ``data.<side> = {path = ..., format = ..., options = {...}}``, from a dataset on
disk (see :mod:`simgan_toolkit.data.sources`). Every DDP rank makes the same data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from simgan_toolkit.config import DataSource
from simgan_toolkit.data.sources import load_side
from simgan_toolkit.pipeline.run import Run, stage
from simgan_toolkit.task import LabelledImages

# Fixed offsets keep every data source independent of the others and of the run's seed use.
SEED_OFFSETS = {"synthetic": 101, "target": 202, "test": 303, "target_train": 404}


@dataclass
class RunData:
    """A run's data, on its device: ``synthetic`` (Ns, C, H, W) with labels, unlabelled
    ``target`` (Nt, C, H, W) images for SimGAN, labelled ``test`` and, when
    ``data.n_target_train`` > 0, labelled ``target_train`` images for the target-trained
    (oracle) estimator."""

    synthetic: LabelledImages
    target: torch.Tensor
    test: LabelledImages
    target_train: LabelledImages | None

    def counts(self) -> dict[str, int]:
        """Images per side, as the summary reports them."""
        return {"synthetic": len(self.synthetic), "target": len(self.target), "test": len(self.test),
                "target_train": len(self.target_train) if self.target_train is not None else 0}


def side_seed(run: Run, side: str) -> int:
    """The seed of one data side: the run's seed plus that side's fixed offset."""
    return run.config.seed + SEED_OFFSETS[side]


def _side(run: Run, name: str, n: int, generate: Callable[[int], LabelledImages]) -> LabelledImages:
    """The task's generator (called with the side's seed), or the dataset on disk that ``data.<name>`` names."""
    seed = side_seed(run, name)
    source: DataSource | None = getattr(run.config.data, name)
    if source is None:
        return generate(seed)
    return load_side(run.registry, run.task, name, source, n, seed, progress=run.progress, say=run.say).to(run.device)


@stage("simulate", ranks="all")
def make_data(run: Run) -> RunData:
    """Simulate (or read) every side of the data and check it against the task's image spec."""
    task, d, device, spec = run.task, run.config.data, run.device, run.task.image_spec
    synthetic = _side(run, "synthetic", d.n_synthetic, lambda seed: task.synthetic(d.n_synthetic, seed, device))
    target = _side(run, "target", d.n_target, lambda seed: LabelledImages(task.target(d.n_target, seed, device))).images
    test = _side(run, "test", d.n_test, lambda seed: task.target_labelled(d.n_test, seed, device))
    target_train = (_side(run, "target_train", d.n_target_train, lambda seed: task.target_labelled(d.n_target_train, seed, device))
                    if d.n_target_train else None)
    name = run.config.task
    spec.check(synthetic.images, f"task {name!r} synthetic()")
    spec.check(target, f"task {name!r} target()")
    spec.check(test.images, f"task {name!r} target_labelled()")
    if (d.target is None) != (d.test is None):
        on_disk, generated = ("target", "test") if d.target is not None else ("test", "target")
        run.say(f"note: data.{on_disk} is read from disk but data.{generated} comes from the task's generator: "
                "the refiner adapts to one target domain and the estimators are scored on another")
    return RunData(synthetic, target, test, target_train)
