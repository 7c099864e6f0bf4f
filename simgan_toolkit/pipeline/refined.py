"""The refine-and-export stages (rank 0): refine the synthetic set with the trained refiner,
write it to ``refined.h5`` with its labels, and measure how well refinement kept the labels."""

from __future__ import annotations

from simgan_toolkit.data.hdf5 import write_images_h5
from simgan_toolkit.pipeline.data import RunData
from simgan_toolkit.pipeline.run import Run, stage
from simgan_toolkit.refine import refine_images
from simgan_toolkit.task import LabelledImages
from simgan_toolkit.training import SimGANTrainer

REFINED_FILE = "refined.h5"


@stage("refine", ranks="main")
def refine_synthetic(run: Run, data: RunData, trainer: SimGANTrainer) -> LabelledImages:
    """The synthetic set refined by ``trainer.inference_refiner`` (noise seeded by the run's seed), labels kept."""
    return data.synthetic.with_images(refine_images(trainer.inference_refiner, data.synthetic.images, seed=run.config.seed))


@stage("export", ranks="main")
def export_refined(run: Run, refined: LabelledImages) -> None:
    """Write ``refined.h5`` (toolkit HDF5 layout) with the run's provenance as attributes."""
    config = run.config
    write_images_h5(
        run.out / REFINED_FILE, refined.to("cpu"),
        {"kind": "refined", "task": config.task, "profile": config.profile, "value_range": list(run.task.image_spec.value_range),
         "refiner_checkpoint": str((run.out / "checkpoints" / "last.pt").resolve()), "config": config.model_dump(mode="json"),
         "seed": config.seed},
    )


@stage("label_preservation", ranks="main")
def label_preservation(run: Run, data: RunData, refined: LabelledImages) -> dict[str, float]:
    """The task's label-preservation scores of ``refined`` against ``data.synthetic``; {} (with a
    note) when synthetic data read from disk lacks a label the task reads."""
    synthetic, source = data.synthetic, run.config.data.synthetic
    try:
        return run.task.label_preservation(synthetic, refined.images)
    except KeyError as exc:
        if source is None:
            raise
        run.say(f"label preservation skipped: task {run.config.task!r} reads label {exc.args[0]!r}, which "
                f"data.synthetic.path {source.path!r} does not have (it has: {', '.join(sorted(synthetic.labels)) or 'none'})")
        return {}


def refine_and_export(run: Run, data: RunData, trainer: SimGANTrainer) -> tuple[LabelledImages, dict[str, float]]:
    """Refine, export and score label preservation (rank 0): the refined set and the scores."""
    refined = refine_synthetic(run, data, trainer)
    export_refined(run, refined)
    return refined, label_preservation(run, data, refined)
