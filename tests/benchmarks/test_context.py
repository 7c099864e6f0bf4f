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


def _tiny_suite(**fields):
    from benchmarks.suites import Suite

    return Suite(name="t", profile="smoke", multipliers=(2,), n_val=3, **fields)


def test_splits_are_the_pipelines_data_stage(registry, tmp_path):
    """The suite's splits hold exactly the images a run with the same config makes."""
    import torch

    from benchmarks.context import make_context
    from simgan_toolkit.pipeline.data import make_data
    from simgan_toolkit.pipeline.run import Run

    cpu = torch.device("cpu")
    ctx = make_context("gaze", _tiny_suite(), registry, cpu, tmp_path, say=lambda _: None)
    config = ctx.config.model_copy(update={"data": ctx.config.data.model_copy(update={"n_synthetic": 2 * ctx.n_base})})
    run_data = make_data(Run(config, registry, ctx.task, tmp_path, cpu, progress=False, say=lambda _: None))
    assert len(ctx.synthetic) == 2 * ctx.n_base  # the "2x" rows' images come with it
    assert torch.equal(ctx.synthetic.images, run_data.synthetic.images)
    assert torch.equal(ctx.target, run_data.target)
    assert torch.equal(ctx.test.images, run_data.test.images)
    assert torch.equal(ctx.target_train.images, run_data.target_train.images)
    assert len(ctx.val) == 3 and not torch.equal(ctx.val.images, ctx.test.images[:3])


def test_a_dataset_on_disk_serves_its_side(registry, tmp_path):
    """``--set data.target=file.h5`` reaches the benchmark as it reaches a run."""
    import torch

    from benchmarks.context import make_context
    from simgan_toolkit.data import write_images_h5

    cpu = torch.device("cpu")
    task = registry.create("task", "gaze")
    own = task.target_labelled(40, 12345, cpu)
    write_images_h5(tmp_path / "own.h5", own, {"kind": "real"})
    ctx = make_context("gaze", _tiny_suite(), registry, cpu, tmp_path, say=lambda _: None,
                       extra_overrides=[f"data.target={str(tmp_path / 'own.h5')!r}"])
    rows = {img.numpy().tobytes() for img in own.images}
    assert len(ctx.target) == min(40, ctx.config.data.n_target)  # a file may hold fewer
    assert all(img.numpy().tobytes() in rows for img in ctx.target)


def test_realism_names_the_suite_refiner_and_ablations_apart():
    import torch

    from benchmarks.refining import RefinerRun
    from simgan_toolkit.report import ROW_LABELS

    def run(variant):
        return RefinerRun(variant, 0, torch.zeros(1), {}, 0.0, {})

    assert run(ROW_LABELS["refined"]).image_set_name == ROW_LABELS["refined"]
    assert run("no history buffer").image_set_name == "refined, no history buffer"
    assert run("refined looking variant").image_set_name == "refined, refined looking variant"
