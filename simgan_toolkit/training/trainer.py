"""The SimGAN training loop: refiner pretraining, discriminator pretraining, then Algorithm 1.

One object owns the networks, optimisers, history buffer and random generators, so a
checkpoint of its ``state_dict`` resumes a run exactly where it stopped (on the CPU a resumed
run reproduces an uninterrupted one bit for bit).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from simgan_toolkit.config import RunConfig
from simgan_toolkit.errors import ConfigError, TrainingDivergedError
from simgan_toolkit.features import FeatureTransform
from simgan_toolkit.losses import REAL, SimGANLoss
from simgan_toolkit.networks import Discriminator, Refiner
from simgan_toolkit.task import ImageSpec
from simgan_toolkit.training.checkpoint import load_checkpoint, save_checkpoint
from simgan_toolkit.training.history_buffer import HistoryBuffer
from simgan_toolkit.training.metrics_log import MetricsLog
from simgan_toolkit.training.optim import build_optimizer
from simgan_toolkit.training.sample_grid import sample_grid, save_sample_grid

CHECKPOINT_FORMAT = "simgan-toolkit/trainer-1"
PHASES = ("refiner_pretrain", "discriminator_pretrain", "adversarial")
#: Images shown in every sample grid.
GRID_SAMPLES = 8


@dataclass
class TrainingOutcome:
    """What :meth:`SimGANTrainer.train` reports."""

    wall_seconds: float
    last_metrics: dict[str, float] = field(default_factory=dict)
    resumed_from: tuple[str, int] | None = None


def random_crops(images: Tensor, size: int, generator: torch.Generator) -> Tensor:
    """One random ``size`` x ``size`` crop per image: (N, C, H, W) -> (N, C, size, size).

    Offsets are drawn on the CPU ``generator`` (uniform over valid positions).
    """
    n, c, h, w = images.shape
    if size > h or size > w:
        raise ValueError(f"train.crop_size {size} is larger than the images ({h}x{w})")
    oy = torch.randint(h - size + 1, (n,), generator=generator).to(images.device)
    ox = torch.randint(w - size + 1, (n,), generator=generator).to(images.device)
    span = torch.arange(size, device=images.device)
    rows = (oy[:, None] + span)[:, None, :, None]  # (N, 1, size, 1)
    cols = (ox[:, None] + span)[:, None, None, :]  # (N, 1, 1, size)
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    chans = torch.arange(c, device=images.device)[None, :, None, None]
    return images[batch, chans, rows, cols]


def _patch_accuracy(logits: Tensor, target: int) -> Tensor:
    """Share of patches that the discriminator assigns to ``target`` (scalar tensor)."""
    return (logits.argmax(dim=1) == target).float().mean()


class SimGANTrainer:
    """Trains a refiner against a discriminator.

    Args:
        config: the resolved run configuration (``train`` section drives the schedule).
        image_spec: the task's image spec.
        refiner, discriminator: networks, already on ``device``.
        feature_transform: psi, on ``device``.
        loss: the loss implementation.
        synthetic: (Ns, C, H, W) simulator images on ``device``.
        real: (Nr, C, H, W) unlabelled real images on ``device``.
        out_dir: where ``checkpoints/``, ``samples/`` and ``metrics.jsonl`` go; None writes nothing.
        refiner_spec: name/options of the refiner, stored in checkpoints so ``refine`` can rebuild it.
        progress: show a progress bar.
    """

    def __init__(
        self,
        config: RunConfig,
        image_spec: ImageSpec,
        refiner: Refiner,
        discriminator: Discriminator,
        feature_transform: FeatureTransform,
        loss: SimGANLoss,
        synthetic: Tensor,
        real: Tensor,
        device: torch.device,
        out_dir: Path | None = None,
        refiner_spec: dict[str, Any] | None = None,
        progress: bool = True,
    ) -> None:
        image_spec.check(synthetic, "synthetic images")
        image_spec.check(real, "real images")
        self.config = config
        self.cfg = config.train
        self.image_spec = image_spec
        self.refiner = refiner
        self.discriminator = discriminator
        self.psi = feature_transform
        self.loss = loss
        self.synthetic = synthetic
        self.real = real
        self.device = device
        self.out_dir = out_dir
        self.refiner_spec = refiner_spec or {}
        self.progress = progress

        self.opt_r = build_optimizer(refiner.parameters(), self.cfg.refiner_optimizer)
        self.opt_d = build_optimizer(discriminator.parameters(), self.cfg.discriminator_optimizer)
        # Index sampling on a CPU generator, noise on a device generator: both saved in checkpoints.
        self.index_gen = torch.Generator().manual_seed(config.seed)
        self.noise_gen = torch.Generator(device=device).manual_seed(config.seed + 1)
        self.buffer = HistoryBuffer(self.cfg.history_size, generator=self.index_gen) if self.cfg.history else None
        self.phase = PHASES[0]
        self.step = 0
        self.log = MetricsLog(out_dir / "metrics.jsonl") if out_dir else None

        grid_gen = torch.Generator().manual_seed(config.seed + 2)
        self._grid_synthetic = synthetic[torch.randperm(len(synthetic), generator=grid_gen)[:GRID_SAMPLES].to(device)]
        self._grid_real = real[torch.randperm(len(real), generator=grid_gen)[:GRID_SAMPLES].to(device)]
        self._grid_noise = refiner.sample_noise(self._grid_synthetic, torch.Generator(device=device).manual_seed(config.seed + 3))

    # ------------------------------------------------------------------ batches
    def _batch(self, images: Tensor) -> Tensor:
        """A random mini-batch (with replacement), randomly cropped if ``train.crop_size`` is set."""
        idx = torch.randint(len(images), (self.cfg.batch_size,), generator=self.index_gen)
        batch = images[idx.to(images.device)]
        return random_crops(batch, self.cfg.crop_size, self.index_gen) if self.cfg.crop_size else batch

    def _refine(self, x: Tensor) -> Tensor:
        return self.refiner(x, self.refiner.sample_noise(x, self.noise_gen))

    # ------------------------------------------------------------------ steps
    def refiner_step(self, adversarial: bool) -> dict[str, Tensor]:
        """One refiner update; pretraining (``adversarial=False``) uses self-regularisation only."""
        self.refiner.train()
        self.discriminator.requires_grad_(False)
        x = self._batch(self.synthetic)
        refined = self._refine(x)
        if adversarial:
            logits = self.discriminator(refined)
            parts = self.loss.refiner_loss_from_images(logits, refined, x, self.psi, self.cfg.lam)
            total, metrics = parts.total, {"loss_r": parts.total, "loss_r_adv": parts.adversarial, "loss_r_reg": parts.regularization}
            metrics["d_fooled"] = _patch_accuracy(logits.detach(), REAL)
        else:
            reg = self.loss.regularization_from_images(refined, x, self.psi)
            total, metrics = reg, {"loss_r_reg": reg}
        self.opt_r.zero_grad(set_to_none=True)
        total.backward()
        self.opt_r.step()
        self.discriminator.requires_grad_(True)
        return {k: v.detach() for k, v in metrics.items()}

    def discriminator_step(self) -> dict[str, Tensor]:
        """One discriminator update on (history-mixed) refined images vs real images."""
        self.discriminator.train()
        with torch.no_grad():
            self.refiner.eval()
            refined = self._refine(self._batch(self.synthetic))
            self.refiner.train()
        if self.buffer is not None:
            refined = self.buffer.mix(refined)
        real = self._batch(self.real)
        logits = self.discriminator(torch.cat([refined, real], dim=0))
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
        for _ in range(self.cfg.k_g):
            metrics.update(self.refiner_step(adversarial=True))
        for _ in range(self.cfg.k_d):
            metrics.update(self.discriminator_step())
        return metrics

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "phase": self.phase,
            "step": self.step,
            "refiner": self.refiner.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "opt_r": self.opt_r.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "buffer": self.buffer.state_dict() if self.buffer is not None else None,
            "index_gen": self.index_gen.get_state(),
            "noise_gen": self.noise_gen.get_state(),
            "config": self.config.model_dump(mode="json"),
            "refiner_spec": self.refiner_spec,
            "image_spec": {
                "channels": self.image_spec.channels,
                "height": self.image_spec.height,
                "width": self.image_spec.width,
                "value_range": list(self.image_spec.value_range),
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.refiner.load_state_dict(state["refiner"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.opt_r.load_state_dict(state["opt_r"])
        self.opt_d.load_state_dict(state["opt_d"])
        if self.buffer is not None and state["buffer"] is not None:
            self.buffer.load_state_dict(state["buffer"], self.device)
        self.index_gen.set_state(state["index_gen"])
        self.noise_gen.set_state(state["noise_gen"])
        self.phase, self.step = state["phase"], state["step"]

    @property
    def checkpoint_path(self) -> Path | None:
        return self.out_dir / "checkpoints" / "last.pt" if self.out_dir else None

    def save(self) -> None:
        """Write ``checkpoints/last.pt`` atomically (after checking the weights are finite)."""
        if self.checkpoint_path is None:
            return
        for name, net in (("refiner", self.refiner), ("discriminator", self.discriminator)):
            if not all(torch.isfinite(p).all() for p in net.parameters()):
                raise TrainingDivergedError(
                    f"{name} weights are not finite at {self.phase} step {self.step}; checkpoint not written "
                    "(the previous one is intact). Lower the learning rates or lambda."
                )
        save_checkpoint(self.state_dict(), self.checkpoint_path)

    def resume(self) -> bool:
        """Load ``checkpoints/last.pt`` if it exists; returns whether it did.

        The checkpoint's training config must match this run's: a resumed run would otherwise
        silently mix two experiments.
        """
        path = self.checkpoint_path
        if path is None or not path.exists():
            return False
        state = load_checkpoint(path, map_location=self.device)
        saved = state["config"]
        current = self.config.model_dump(mode="json")
        changed = [k for k in ("train", "refiner", "discriminator", "feature", "seed") if saved.get(k) != current.get(k)]
        if changed:
            raise ConfigError(
                f"cannot resume from {str(path)!r}: its {', '.join(changed)} settings differ from this run's; "
                "use the same config or a new --out directory"
            )
        self.load_state_dict(state)
        if self.log is not None:
            self.log.truncate_after(list(PHASES), self.phase, self.step)
        return True

    # ------------------------------------------------------------------ loop
    def _save_samples(self, tag: str) -> None:
        if self.out_dir is None:
            return
        was_training = self.refiner.training
        self.refiner.eval()
        with torch.no_grad():
            refined = self.refiner(self._grid_synthetic, self._grid_noise)
        self.refiner.train(was_training)
        grid = sample_grid(self._grid_synthetic, refined, self._grid_real, self.image_spec.value_range)
        save_sample_grid(grid, self.out_dir / "samples" / f"{tag}.png")

    def _check_finite(self, metrics: dict[str, Tensor]) -> dict[str, float]:
        values = {k: float(v) for k, v in metrics.items()}
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        if bad:
            raise TrainingDivergedError(
                f"{', '.join(bad)} became {values[bad[0]]} at {self.phase} step {self.step}; stopped before "
                "writing a checkpoint (the last good one is kept). Lower the learning rates or lambda, "
                "or check the input images for NaN."
            )
        return values

    def train(self, resume: bool = False, on_log: Callable[[dict[str, Any]], None] | None = None) -> TrainingOutcome:
        """Run every phase to the end (or the rest of them, when resuming)."""
        resumed = (self.phase, self.step) if resume and self.resume() else None
        lengths = {
            "refiner_pretrain": self.cfg.refiner_pretrain_steps,
            "discriminator_pretrain": self.cfg.discriminator_pretrain_steps,
            "adversarial": self.cfg.steps,
        }
        steps_fn = {
            "refiner_pretrain": lambda: self.refiner_step(adversarial=False),
            "discriminator_pretrain": self.discriminator_step,
            "adversarial": self.adversarial_iteration,
        }
        done_before = sum(lengths[p] for p in PHASES[: PHASES.index(self.phase)]) + self.step
        start = time.perf_counter()
        last: dict[str, float] = {}
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
                    if self.step % self.cfg.log_every == 0 or at_end:
                        last = self._check_finite(metrics)
                        record = {"phase": phase, "step": self.step, **{k: round(v, 6) for k, v in last.items()}}
                        if self.log is not None:
                            self.log.write(record)
                        if on_log is not None:
                            on_log(record)
                        bar.set_postfix({k: f"{v:.3f}" for k, v in last.items()}, refresh=False)
                    if phase == "adversarial" and (self.step % self.cfg.sample_every == 0 or at_end):
                        self._save_samples(f"step_{self.step:06d}")
                    if self.step % self.cfg.checkpoint_every == 0 or at_end:
                        self._check_finite(metrics)
                        self.save()
                if phase == "refiner_pretrain" and lengths[phase] > 0:
                    self._save_samples("pretrained_refiner")
        finally:
            bar.close()
        if self.out_dir is not None and self.step == 0 and not any(lengths.values()):
            self.save()
        return TrainingOutcome(time.perf_counter() - start, last, resumed)
