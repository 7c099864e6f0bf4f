"""The SimGAN stage: build the trainer from the config and train it, on every DDP rank
(each rank its own batches; gradients averaged; rank 0 alone writes checkpoints, samples and
metrics.jsonl)."""

from __future__ import annotations

from torch import nn

from simgan_toolkit.pipeline.data import RunData
from simgan_toolkit.pipeline.run import Run, stage
from simgan_toolkit.training import SimGANTrainer, TrainingOutcome
from simgan_toolkit.training import distributed as dist_utils
from simgan_toolkit.training.build import check_network_settings


def check_networks(run: Run) -> None:
    """Bad refiner or discriminator settings fail before any long work (see
    :func:`~simgan_toolkit.training.build.check_network_settings`)."""
    check_network_settings(run.config, run.registry, run.task.image_spec)


@stage("simgan", ranks="all")
def train_simgan(run: Run, data: RunData, synthetic_estimator: nn.Module | None = None) -> tuple[SimGANTrainer, TrainingOutcome]:
    """Train (or, resuming, continue training) SimGAN on the run's synthetic and target images.

    ``synthetic_estimator`` is psi when ``feature.name = "learned"`` has no checkpoint.
    """
    trainer = SimGANTrainer.from_config(
        run.config, run.registry, run.task, data.synthetic.images, data.target, run.out, run.device,
        synthetic_estimator=synthetic_estimator, distributed=run.distributed, progress=run.progress,
    )
    outcome = trainer.train(resume=run.resume)
    dist_utils.barrier()  # rank 0's final checkpoint is written; the others are done
    return trainer, outcome
