"""The SimGAN training loop: refiner pretraining, discriminator pretraining, then Algorithm 1.

One object owns the networks, optimisers, history buffer and random generators, so a
checkpoint of them resumes a run exactly where it stopped (on the CPU a resumed run reproduces
an uninterrupted one bit for bit).

Speed options (``train.amp``, ``train.compile``) change only how the forward passes run; the
networks the trainer exposes (``trainer.refiner``, ``trainer.discriminator``) and saves are
always the plain modules. ``trainer.inference_refiner`` is the refiner to apply after training:
the exponential moving average of the refiner's weights when ``train.refiner_ema`` > 0.

Behind one object each: batches (:mod:`~simgan_toolkit.training.batches`), the plain, DDP and
compiled forwards (:mod:`~simgan_toolkit.training.forwards`), metrics and sample grids, written
without waiting for the device (:mod:`~simgan_toolkit.training.metrics_logger`), checkpoints:
what they hold, when they are written, resuming from one
(:class:`~simgan_toolkit.training.checkpoint.TrainerCheckpointer`), and the networks themselves
(:mod:`~simgan_toolkit.training.build`).

Under torchrun (see :mod:`simgan_toolkit.training.distributed`) R and D are wrapped in
DistributedDataParallel, each rank draws its own batches, and rank 0 alone writes files.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from simgan_toolkit.config import RunConfig
from simgan_toolkit.losses import REAL
from simgan_toolkit.networks import Refiner
from simgan_toolkit.task import ImageSpec
from simgan_toolkit.training import distributed as dist_utils
from simgan_toolkit.training.build import SimGANNetworks, build_simgan_networks
from simgan_toolkit.training.checkpoint import CHECKPOINT_FORMAT, PHASES, TrainerCheckpointer
from simgan_toolkit.training.batches import BatchSampler
from simgan_toolkit.training.forwards import build_forwards
from simgan_toolkit.training.history_buffer import HistoryBuffer
from simgan_toolkit.training.metrics_log import MetricsLog
from simgan_toolkit.training.metrics_logger import TrainingLogger, grid_inputs
from simgan_toolkit.training.optim import build_optimizer

if TYPE_CHECKING:
    from simgan_toolkit.plugin import Registry
    from simgan_toolkit.task import Task

__all__ = ["CHECKPOINT_FORMAT", "PHASES", "SimGANTrainer", "TrainingOutcome"]


@dataclass
class TrainingOutcome:
    """What :meth:`SimGANTrainer.train` reports."""

    wall_seconds: float
    last_metrics: dict[str, float] = field(default_factory=dict)
    resumed_from: tuple[str, int] | None = None


def _patch_accuracy(logits: Tensor, target: int) -> Tensor:
    """Share of patches that the discriminator assigns to ``target`` (scalar tensor)."""
    return (logits.argmax(dim=1) == target).float().mean()


class SimGANTrainer:
    """Trains a refiner against a discriminator.

    Build one with :meth:`from_config` (networks from the registry, as a run does); the
    constructor takes networks built elsewhere (tests, benchmarks with hand-made networks).

    Args:
        config: the resolved run configuration (``train`` section drives the schedule).
        image_spec: the task's image spec.
        networks: refiner, discriminator and psi (already on ``device``), the loss and the
            refiner's spec (stored in checkpoints so ``refine`` can rebuild it).
        synthetic: (Ns, C, H, W) simulator images on ``device``.
        real: (Nr, C, H, W) unlabelled real images on ``device``.
        device: where training runs.
        out_dir: where ``checkpoints/``, ``samples/`` and ``metrics.jsonl`` go; None writes nothing.
        progress: show a progress bar.
        distributed: train with DistributedDataParallel over the initialised process group
            (None: whenever one is initialised, e.g. by :func:`run_pipeline` under torchrun).
            Every rank must construct its trainer; rank 0 alone writes files, but every rank
            reads ``out_dir``'s checkpoint on resume.
        async_logging: copy metrics to the host in the background and write each record one
            logging interval later (never stalls a GPU); False writes it at once (a sync).
    """

    def __init__(
        self,
        config: RunConfig,
        image_spec: ImageSpec,
        networks: SimGANNetworks,
        synthetic: Tensor,
        real: Tensor,
        device: torch.device,
        out_dir: Path | None = None,
        *,
        progress: bool = True,
        distributed: bool | None = None,
        async_logging: bool = True,
    ) -> None:
        image_spec.check(synthetic, "synthetic images")
        image_spec.check(real, "real images")
        self.config = config
        train = config.train
        self.image_spec = image_spec
        self.refiner = refiner = networks.refiner
        self.discriminator = discriminator = networks.discriminator
        self.psi = networks.feature_transform
        self.loss = networks.loss
        self.loss_name = networks.loss_name
        self.refiner_spec = networks.refiner_spec
        self.synthetic = synthetic
        self.real = real
        self.device = device
        self.out_dir = out_dir

        self.distributed = dist_utils.is_distributed() if distributed is None else distributed
        if self.distributed and not dist_utils.is_distributed():
            raise ValueError("distributed=True needs an initialised process group (torchrun)")
        self.rank = dist_utils.rank() if self.distributed else 0
        self.world_size = dist_utils.world_size() if self.distributed else 1
        #: Whether this process writes files (checkpoints, samples, metrics.jsonl).
        self.is_main = self.rank == 0
        self.progress = progress and self.is_main

        self.opt_r = build_optimizer(refiner.parameters(), train.refiner_optimizer)
        self.opt_d = build_optimizer(discriminator.parameters(), train.discriminator_optimizer)
        # Index sampling on a CPU generator, noise on a device generator: both saved in checkpoints.
        # Each rank has its own streams (rank 0's are the single-process ones).
        self.stream_seed = config.seed + dist_utils.RANK_SEED_STRIDE * self.rank
        self.index_gen = torch.Generator().manual_seed(self.stream_seed)
        self.noise_gen = torch.Generator(device=device).manual_seed(self.stream_seed + 1)
        self.buffer = HistoryBuffer(train.history_size, generator=self.index_gen) if train.history else None
        #: Whether D normalises with batch statistics (see :meth:`_discriminate_refined`).
        self._d_batch_stats = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in discriminator.modules())
        self.refiner_ema = AveragedModel(refiner, multi_avg_fn=get_ema_multi_avg_fn(train.refiner_ema)) if train.refiner_ema > 0 else None
        self.phase = PHASES[0]
        self.step = 0
        self.batches = BatchSampler(train.batch_size, train.crop_size, self.index_gen)
        writes = out_dir is not None and self.is_main
        self.logger = TrainingLogger(
            MetricsLog(out_dir / "metrics.jsonl") if writes else None, out_dir / "samples" if writes else None,  # type: ignore[operator]
            grid_inputs(synthetic, real, refiner, config.seed, device), image_spec.value_range,
            distributed=self.distributed, async_logging=async_logging,
        )
        self.forwards = build_forwards(refiner, discriminator, device, distributed=self.distributed,
                                       compile_mode=train.compile_mode if train.compile else None)
        #: Writes, restores and schedules ``out_dir/checkpoints/last.pt``.
        self.checkpoints = TrainerCheckpointer(self, out_dir)

    @classmethod
    def from_config(
        cls,
        config: RunConfig,
        registry: Registry,
        task: Task,
        synthetic: Tensor,
        real: Tensor,
        out_dir: Path | None,
        device: torch.device,
        *,
        synthetic_estimator: nn.Module | None = None,
        distributed: bool | None = None,
        progress: bool = True,
        async_logging: bool = True,
    ) -> SimGANTrainer:
        """The trainer of a run: ``config``'s networks built from ``registry`` (weights seeded by
        ``config.seed``) for ``task``'s images, training on (Ns, C, H, W) ``synthetic`` and
        (Nr, C, H, W) ``real`` on ``device``. ``synthetic_estimator`` backs
        ``feature.name = "learned"`` without a checkpoint; the other arguments are the
        constructor's."""
        networks = build_simgan_networks(config, registry, task, device, synthetic_estimator)
        return cls(config, task.image_spec, networks, synthetic, real, device, out_dir,
                   progress=progress, distributed=distributed, async_logging=async_logging)

    # ------------------------------------------------------------------ execution
    @property
    def inference_refiner(self) -> Refiner:
        """The refiner that refines data and draws sample grids: the weight average when
        ``train.refiner_ema`` > 0, else the live refiner."""
        return self.refiner_ema.module if self.refiner_ema is not None else self.refiner  # type: ignore[return-value]

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        """bf16 autocast for forward passes when ``train.amp = "bf16"``; otherwise nothing."""
        if self.config.train.amp == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _refine(self, x: Tensor, forward: Callable[..., Tensor] | None = None) -> Tensor:
        """R(x) for (B, C, H, W) ``x`` through ``forward`` (default: the training wrapper), with
        fresh noise maps from the trainer's noise generator (drawn outside any compiled code)."""
        forward = self.forwards.refiner_train if forward is None else forward
        return forward(x, self.refiner.sample_noise(x, self.noise_gen))

    # ------------------------------------------------------------------ steps
    def refiner_step(self, adversarial: bool) -> dict[str, Tensor]:
        """One refiner update; pretraining (``adversarial=False``) uses self-regularisation only.

        Returns scalar metric tensors, detached and still on the device (no host sync).
        """
        self.refiner.train()
        self.discriminator.requires_grad_(False)
        x = self.batches.draw(self.synthetic)
        # Forward passes of R, D and psi (inside the loss) under autocast; the losses cast
        # their inputs to float32, and the backward pass runs outside autocast as recommended.
        with self._autocast():
            refined = self._refine(x)
            if adversarial:
                logits = self._discriminate_refined(refined)
                parts = self.loss.refiner_loss_from_images(logits, refined, x, self.psi, self.config.train.lam)
                total = parts.total
                metrics = {"loss_r": parts.total, "loss_r_adv": parts.adversarial, "loss_r_reg": parts.regularization}
                metrics["d_fooled"] = _patch_accuracy(logits.detach(), REAL)
            else:
                reg = self.loss.regularization_from_images(refined, x, self.psi)
                total, metrics = reg, {"loss_r_reg": reg}
        self.opt_r.zero_grad(set_to_none=True)
        total.backward()
        self.opt_r.step()
        if self.refiner_ema is not None:
            self.refiner_ema.update_parameters(self.refiner)
        self.discriminator.requires_grad_(True)
        return {k: v.detach() for k, v in metrics.items()}

    def _discriminate_refined(self, refined: Tensor) -> Tensor:
        """D's logits for ``refined`` (B, C, H, W) in the refiner step, D frozen: (B, 2, h, w).

        A discriminator with batch statistics (batch norm) is trained on batches of refined and
        real images together; shown refined images alone, its normalisation would differ and
        the refiner would be trained against another function than the trained D (on gaze: D
        0.99 accurate on mixed batches called 55 % of an all-refined batch real). So it gets a
        real batch beside the refined one here too, and only the refined logits are used.
        """
        if not self._d_batch_stats:
            return self.forwards.disc_frozen(refined)
        real = self.batches.draw(self.real).to(refined.dtype)
        return self.forwards.disc_frozen(torch.cat([refined, real], dim=0))[: len(refined)]

    def discriminator_step(self) -> dict[str, Tensor]:
        """One discriminator update on (history-mixed) refined images vs real images.

        Returns scalar metric tensors, detached and still on the device (no host sync).
        """
        self.discriminator.train()
        with torch.no_grad(), self._autocast():
            self.refiner.eval()
            refined = self._refine(self.batches.draw(self.synthetic), self.forwards.refiner_plain)
            self.refiner.train()
        if self.config.train.amp != "none":
            # Back to the images' dtype: the history buffer and checkpoints do not depend on amp.
            refined = refined.to(self.synthetic.dtype)
        if self.buffer is not None:
            refined = self.buffer.mix(refined)
        real = self.batches.draw(self.real)
        with self._autocast():
            logits = self.forwards.disc_train(torch.cat([refined, real], dim=0))
            logits_refined, logits_real = logits[: len(refined)], logits[len(refined) :]
            loss = self.loss.discriminator_loss(logits_refined, logits_real)
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        with torch.no_grad():
            acc = 0.5 * (_patch_accuracy(logits_refined, 1) + _patch_accuracy(logits_real, REAL))
        return {"loss_d": loss.detach(), "d_acc": acc}

    def adversarial_iteration(self) -> dict[str, Tensor]:
        """Algorithm 1: ``k_g`` refiner steps, then ``k_d`` discriminator steps."""
        metrics: dict[str, Tensor] = {}
        for _ in range(self.config.train.k_g):
            metrics.update(self.refiner_step(adversarial=True))
        for _ in range(self.config.train.k_d):
            metrics.update(self.discriminator_step())
        return metrics

    # ------------------------------------------------------------------ loop
    def train(self, resume: bool = False, on_log: Callable[[dict[str, Any]], None] | None = None) -> TrainingOutcome:
        """Run every phase to the end (or the rest of them, when resuming).

        ``on_log(record)`` sees every metrics.jsonl record, one logging interval after its step
        (at the latest at the next checkpoint); under DDP every rank sees the same records,
        averaged over ranks.
        """
        resumed = self.checkpoints.resume() if resume else None
        lengths = {
            "refiner_pretrain": self.config.train.refiner_pretrain_steps,
            "discriminator_pretrain": self.config.train.discriminator_pretrain_steps,
            "adversarial": self.config.train.steps,
        }
        steps_fn = {
            "refiner_pretrain": lambda: self.refiner_step(adversarial=False),
            "discriminator_pretrain": self.discriminator_step,
            "adversarial": self.adversarial_iteration,
        }
        done_before = sum(lengths[p] for p in PHASES[: PHASES.index(self.phase)]) + self.step
        start = time.perf_counter()
        log = self.logger
        log.reset()
        bar = tqdm(total=sum(lengths.values()), initial=done_before, desc="SimGAN", disable=not self.progress, dynamic_ncols=True)
        try:
            for phase in PHASES[PHASES.index(self.phase) :]:
                if phase != self.phase:
                    self.phase, self.step = phase, 0
                bar.set_description(phase.replace("_", " "))
                while self.step < lengths[phase]:
                    metrics = steps_fn[phase]()
                    self.step += 1
                    bar.update(1)
                    at_end = self.step == lengths[phase]
                    logged = self.step % self.config.train.log_every == 0 or at_end
                    if logged:
                        log.log_step(phase, self.step, metrics, on_log, bar)
                    if phase == "adversarial" and (self.step % self.config.train.sample_every == 0 or at_end):
                        log.queue_samples(f"step_{self.step:06d}", self.inference_refiner)
                    if self.checkpoints.due(self.step, at_end):
                        # A checkpoint waits for the device anyway: write everything pending,
                        # and never save weights trained on a non-finite loss.
                        log.flush(on_log, bar)
                        if not logged:
                            log.check_step(phase, self.step, metrics)
                        self.checkpoints.save()
                if phase == "refiner_pretrain" and lengths[phase] > 0:
                    log.queue_samples("pretrained_refiner", self.inference_refiner)
            log.flush(on_log, bar)
        finally:
            bar.close()
        return TrainingOutcome(time.perf_counter() - start, dict(log.last), resumed)
