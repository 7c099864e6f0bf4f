"""Training a SimGAN refiner for one config variant and refining the benchmark's synthetic set."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from benchmarks.context import BenchContext
from simgan_toolkit.pipeline.data import RunData
from simgan_toolkit.pipeline.run import Run
from simgan_toolkit.pipeline.simgan import train_simgan
from simgan_toolkit.refine import refine_images
from simgan_toolkit.report import ROW_LABELS


@dataclass
class RefinerRun:
    """One trained refiner and what it produced.

    Attributes:
        variant: the row name of the ablation variant (:data:`benchmarks.sim2real.REFINED_ROW` for the suite's own config).
        seed: the run seed of this refiner.
        refined: (N, C, H, W) refined versions of ``ctx.synthetic[:N]``.
        final: the last logged SimGAN metrics (losses, discriminator accuracy).
        seconds: SimGAN training time.
        preservation: the task's label-preservation figures on the base set.
    """

    variant: str
    seed: int
    refined: Tensor
    final: dict[str, Any]
    seconds: float
    preservation: dict[str, float]

    @property
    def image_set_name(self) -> str:
        """The name of its refined images in the realism table: the suite's own refiner is the
        refined row; an ablation's is "refined, <variant>"."""
        return self.variant if self.variant == ROW_LABELS["refined"] else f"refined, {self.variant}"

    def summary(self) -> dict[str, Any]:
        return {"variant": self.variant, "seed": self.seed, "simgan_seconds": round(self.seconds, 2),
                "simgan_final": self.final, "label_preservation": self.preservation}


def train_refiner(
    ctx: BenchContext,
    variant: str,
    overrides: list[str],
    seed_index: int = 0,
    *,
    n_refine: int | None = None,
    synthetic_estimator: nn.Module | None = None,
) -> RefinerRun:
    """Train SimGAN with the suite config plus ``overrides`` and refine ``n_refine`` images.

    The refiner's seed is the config seed + ``seed_index``; it trains on the base synthetic set
    and the unlabelled target images only. Checkpoints and sample grids go to
    ``<out>/simgan/<task>/<variant>_seed<k>/``.
    """
    seed = ctx.config.seed + seed_index
    # The user's --set overrides apply here too (they once reached only the estimators).
    config = ctx.variant_config([*overrides, f"seed={seed}"])
    slug = "".join(c if c.isalnum() else "_" for c in variant).strip("_")
    out = ctx.out_dir / "simgan" / ctx.config.task / f"{slug}_seed{seed_index}"
    base = ctx.base_synthetic()
    # The pipeline's own SimGAN stage, on a run of this variant (quiet: the benchmark reports itself).
    run = Run(config, ctx.registry, ctx.task, out, ctx.device, progress=False, say=lambda _: None)
    start = time.perf_counter()
    trainer, outcome = train_simgan(run, RunData(base, ctx.target, ctx.test, None), synthetic_estimator)
    seconds = time.perf_counter() - start
    n = n_refine or ctx.n_base
    refined = refine_images(trainer.inference_refiner, ctx.synthetic.images[:n], seed=seed)
    preservation = ctx.task.label_preservation(base, refined[: ctx.n_base])
    ctx.say(f"  {variant} (seed {seed}): SimGAN {seconds:.0f} s, final {_short(outcome.last_metrics)}")
    return RefinerRun(variant, seed, refined, outcome.last_metrics, seconds, preservation)


def _short(metrics: dict[str, Any]) -> str:
    keep = ("loss_r_adv", "loss_r_reg", "d_acc")
    return ", ".join(f"{k} {metrics[k]:.3f}" for k in keep if isinstance(metrics.get(k), (int, float)))
