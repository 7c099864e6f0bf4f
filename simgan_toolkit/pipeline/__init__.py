"""The main job: simulate, train SimGAN, refine, export, train and score estimators, report.

``python -m simgan_toolkit.run --task NAME`` calls :func:`run_pipeline`. Every stage writes its
result into the run folder, so ``--resume`` skips finished stages and continues SimGAN
training from its last checkpoint.

Under ``torchrun --nproc_per_node N -m simgan_toolkit.run ...`` SimGAN trains with
DistributedDataParallel on N processes (:mod:`simgan_toolkit.training.distributed`):

- all ranks: check the run folder, simulate/load the data, train SimGAN (each rank its own
  batches, history buffer and random streams; gradients averaged; the global batch is N x
  ``train.batch_size``);
- rank 0 only: every file (config.json, metrics, samples, checkpoints, ...), the estimator
  stages, refine, export, figures and summary. When psi is ``learned`` from this run's
  synthetic estimator, rank 0 trains that estimator before SimGAN and the others load it from
  ``estimators/synthetic.pt``; otherwise it trains after SimGAN, with the other estimators;
- ranks other than 0 leave once SimGAN training is done (their return value is a short
  dict with ``rank``, ``world_size`` and ``simgan_final``).

Run folder::

    config.json          the resolved configuration
    task.json            the task's name and data version (Task.data_version; --resume checks it)
    metrics.jsonl        per-step SimGAN losses
    samples/*.png        synthetic | refined | real | |refined - synthetic|
    checkpoints/last.pt  trainer checkpoint (refiner, discriminator, optimisers, buffer, RNG)
    refined.h5           the refined synthetic set with its labels (toolkit HDF5 layout)
    estimators/<set>.pt  estimator trained on each training set, and <set>.json its scores;
                         <set>_seed<k>.{pt,json} for the further seeds of synthetic and refined
    *.png                the task's result plots, if it draws any (e.g. a PCK curve)
    summary.json         task, profile, device, wall time, scores (per seed too), label
                         preservation, the refinement verdict

The verdict: the synthetic and refined estimators are trained with ``estimator.seeds`` seeds
(default 2); refinement "helped" only if the refined mean beats the synthetic mean by more than
the noise: the larger of the two rows' max-min spread over seeds and, when the task gives its
primary metric per test image, the 95 % half-width of the paired refined-minus-synthetic
difference over the test images (:func:`simgan_toolkit.report.refinement_verdict`).

Where each stage lives (each a top-level function, declared with :func:`~simgan_toolkit.pipeline.run.stage`
to run on every rank or on rank 0 alone, which a benchmark can call as well):

=====================  ==============================================================
``run_folder.py``      check, create and clean the run folder; write config.json and task.json
``data.py``            the data stage (simulate or read every side)
``estimators.py``      train and score the estimators (and psi's synthetic estimator)
``simgan.py``          build the trainer and train SimGAN
``refined.py``         refine the synthetic set, export ``refined.h5``, label preservation
``summary.py``         figures and ``summary.json``
``run.py``             :class:`Run`, what every stage gets, and the ``stage`` declaration
=====================  ==============================================================
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from simgan_toolkit.config import RunConfig
from simgan_toolkit.environment import resolve_device
from simgan_toolkit.pipeline.data import RunData, make_data
from simgan_toolkit.pipeline.estimators import (
    VERDICT_SETS,
    EstimatorResults,
    check_estimator,
    estimator_for_psi,
    estimator_seed_count,
    train_estimators,
)
from simgan_toolkit.pipeline.refined import refine_and_export
from simgan_toolkit.pipeline.run import Run, StageClock, stage
from simgan_toolkit.pipeline.run_folder import (
    check_run_folder,
    clean_run_folder,
    create_run_folder,
    prepare_run_folder,
    remove_empty,
    write_run_config,
)
from simgan_toolkit.pipeline.simgan import check_networks, train_simgan
from simgan_toolkit.pipeline.summary import save_figures, write_summary
from simgan_toolkit.plugin import Registry
from simgan_toolkit.report import format_results_table
from simgan_toolkit.training import distributed as dist_utils

__all__ = [
    "VERDICT_SETS", "EstimatorResults", "Run", "RunData", "StageClock", "check_run_folder", "create_run_folder",
    "estimator_for_psi", "estimator_seed_count", "make_data", "refine_and_export", "run_pipeline", "stage",
    "train_estimators", "train_simgan", "write_summary",
]


def run_pipeline(
    config: RunConfig,
    out_dir: str | Path,
    registry: Registry,
    *,
    resume: bool = False,
    progress: bool = True,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the whole job for ``config`` into ``out_dir``; returns (and writes) the summary.

    Started by torchrun with several processes, trains SimGAN with DDP on all of them and runs
    everything else on rank 0 (see the module docstring); the other ranks return a short dict
    with ``rank``, ``world_size`` and ``simgan_final``.
    """
    context = dist_utils.setup(config.device)  # None in a plain single-process run
    try:
        return _run_stages(open_run(config, out_dir, registry, context, resume=resume, progress=progress, say=say))
    finally:
        dist_utils.cleanup(context)


def open_run(
    config: RunConfig, out_dir: str | Path, registry: Registry, context: dist_utils.DistributedContext | None, *,
    resume: bool = False, progress: bool = True, say: Callable[[str], None] = print,
) -> Run:
    """The :class:`Run` every stage gets: its task, device and folder (rank 0's, on every rank:
    e.g. a default --out named after the clock)."""
    out = Path(dist_utils.broadcast_object(str(out_dir)))
    task = registry.create("task", config.task)
    device = context.device if context is not None else resolve_device(config.device)
    return Run(config, registry, task, out, device, context, resume=resume, progress=progress, say=say)


def _run_stages(run: Run) -> dict[str, Any]:
    """The stages, in order; each declares whether it runs on every rank or on rank 0 alone."""
    check_estimator(run)  # a wrong estimator must not surface only after SimGAN
    check_networks(run)  # nor a refiner or discriminator setting its factory rejects
    created = prepare_run_folder(run)
    run.say(f"task {run.config.task!r}, profile {run.config.profile!r}, device {run.device}, output {run.out}")
    try:
        data = make_data(run)
    except BaseException:  # Ctrl-C included: a run that never started leaves no folder behind
        remove_empty(created)
        raise
    # Written once the data is in: a bad data path or format leaves no half-started run behind.
    write_run_config(run)
    estimators = EstimatorResults()
    trainer, outcome = train_simgan(run, data, estimator_for_psi(run, data, estimators))
    if not run.is_main:
        return {"task": run.config.task, "rank": run.context.rank, "world_size": run.context.world_size,  # type: ignore[union-attr]
                "simgan_final": outcome.last_metrics}
    refined, preservation = refine_and_export(run, data, trainer)
    train_estimators(run, data, refined, estimators)
    figures = save_figures(run, estimators)
    summary = write_summary(run, data, estimators, outcome, preservation, figures, trainer.loss_name)
    clean_run_folder(run)
    run.say(format_results_table(summary))
    return summary
