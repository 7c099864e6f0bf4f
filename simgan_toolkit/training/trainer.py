"""The SimGAN training loop: refiner pretraining, discriminator pretraining, then Algorithm 1.

One object owns the networks, optimisers, history buffer and random generators, so a
checkpoint of its ``state_dict`` resumes a run exactly where it stopped (on the CPU a resumed
run reproduces an uninterrupted one bit for bit).

Speed options (``train.amp``, ``train.compile``) change only how the forward passes run; the
networks the trainer exposes (``trainer.refiner``, ``trainer.discriminator``) and saves are
always the plain modules. ``trainer.inference_refiner`` is the refiner to apply after training:
the exponential moving average of the refiner's weights when ``train.refiner_ema`` > 0. The loop never waits for the device between checkpoints: metrics
are copied to the host in the background and written one logging interval later.

Under torchrun (see :mod:`simgan_toolkit.training.distributed`) R and D are wrapped in
DistributedDataParallel, each rank draws its own batches, and rank 0 alone writes files.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from simgan_toolkit.config import RunConfig, config_differences, describe_differences, resume_comparable
from simgan_toolkit.errors import ConfigError, TrainingDivergedError
from simgan_toolkit.features import FeatureTransform
from simgan_toolkit.losses import REAL, SimGANLoss
from simgan_toolkit.networks import Discriminator, Refiner
from simgan_toolkit.task import ImageSpec
from simgan_toolkit.training import distributed as dist_utils
from simgan_toolkit.training.checkpoint import load_checkpoint, save_checkpoint
from simgan_toolkit.training.history_buffer import HistoryBuffer, to_device_async
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

    Offsets are drawn on the CPU ``generator`` (uniform over valid positions) and reach the
    device without a host sync.
    """
    n, c, h, w = images.shape
    if size > h or size > w:
        raise ValueError(f"train.crop_size {size} is larger than the images ({h}x{w})")
    oy = to_device_async(torch.randint(h - size + 1, (n,), generator=generator), images.device)
    ox = to_device_async(torch.randint(w - size + 1, (n,), generator=generator), images.device)
    span = torch.arange(size, device=images.device)
    rows = (oy[:, None] + span)[:, None, :, None]  # (N, 1, size, 1)
    cols = (ox[:, None] + span)[:, None, None, :]  # (N, 1, 1, size)
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    chans = torch.arange(c, device=images.device)[None, :, None, None]
    return images[batch, chans, rows, cols]


def _patch_accuracy(logits: Tensor, target: int) -> Tensor:
    """Share of patches that the discriminator assigns to ``target`` (scalar tensor)."""
    return (logits.argmax(dim=1) == target).float().mean()


class _HostCopy:
    """A device-to-host copy in flight: started now, read (by :meth:`wait`) later.

    On CUDA the copy goes to pinned memory with ``non_blocking=True`` and an event marks its
    end, so starting it never stalls the host; by the time :meth:`wait` is called (one logging
    interval later) the GPU has long finished it. On the CPU the tensor is already on the host.
    """

    def __init__(self, tensor: Tensor) -> None:
        self._event: torch.cuda.Event | None = None
        if tensor.device.type == "cuda":
            self._host = tensor.to("cpu", non_blocking=True)  # lands in pinned memory
            self._event = torch.cuda.Event()
            self._event.record(torch.cuda.current_stream(tensor.device))
        else:
            self._host = tensor.to("cpu")

    def wait(self) -> Tensor:
        if self._event is not None:
            self._event.synchronize()
        return self._host


@dataclass
class _PendingRecord:
    """Metrics of one logged step, on their way to the host."""

    phase: str
    step: int
    keys: list[str]
    values: _HostCopy  # (len(keys),) in the metrics' common dtype


@dataclass
class _PendingSamples:
    """A sample grid's refined images, on their way to the host."""

    tag: str
    refined: _HostCopy  # (GRID_SAMPLES, C, H, W)


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
        *,
        distributed: bool | None = None,
        async_logging: bool = True,
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
        self.async_logging = async_logging

        self.distributed = dist_utils.is_distributed() if distributed is None else distributed
        if self.distributed and not dist_utils.is_distributed():
            raise ValueError("distributed=True needs an initialised process group (torchrun)")
        self.rank = dist_utils.rank() if self.distributed else 0
        self.world_size = dist_utils.world_size() if self.distributed else 1
        #: Whether this process writes files (checkpoints, samples, metrics.jsonl).
        self.is_main = self.rank == 0
        self.progress = progress and self.is_main

        self.opt_r = build_optimizer(refiner.parameters(), self.cfg.refiner_optimizer)
        self.opt_d = build_optimizer(discriminator.parameters(), self.cfg.discriminator_optimizer)
        # Index sampling on a CPU generator, noise on a device generator: both saved in checkpoints.
        # Each rank has its own streams (rank 0's are the single-process ones).
        self._stream_seed = config.seed + dist_utils.RANK_SEED_STRIDE * self.rank
        self.index_gen = torch.Generator().manual_seed(self._stream_seed)
        self.noise_gen = torch.Generator(device=device).manual_seed(self._stream_seed + 1)
        self.buffer = HistoryBuffer(self.cfg.history_size, generator=self.index_gen) if self.cfg.history else None
        #: Whether D normalises with batch statistics (see :meth:`_discriminate_refined`).
        self._d_batch_stats = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in discriminator.modules())
        self.refiner_ema = (
            AveragedModel(refiner, multi_avg_fn=get_ema_multi_avg_fn(self.cfg.refiner_ema)) if self.cfg.refiner_ema > 0 else None
        )
        self.phase = PHASES[0]
        self.step = 0
        self.log = MetricsLog(out_dir / "metrics.jsonl") if out_dir and self.is_main else None
        self._pending: _PendingRecord | None = None
        self._pending_samples: list[_PendingSamples] = []
        self._last: dict[str, float] = {}

        grid_gen = torch.Generator().manual_seed(config.seed + 2)
        self._grid_synthetic = synthetic[torch.randperm(len(synthetic), generator=grid_gen)[:GRID_SAMPLES].to(device)]
        self._grid_real = real[torch.randperm(len(real), generator=grid_gen)[:GRID_SAMPLES].to(device)]
        self._grid_noise = refiner.sample_noise(self._grid_synthetic, torch.Generator(device=device).manual_seed(config.seed + 3))

        self._build_forwards()

    # ------------------------------------------------------------------ execution
    @property
    def inference_refiner(self) -> Refiner:
        """The refiner that refines data and draws sample grids: the weight average when
        ``train.refiner_ema`` > 0, else the live refiner."""
        return self.refiner_ema.module if self.refiner_ema is not None else self.refiner  # type: ignore[return-value]

    def _build_forwards(self) -> None:
        """The callables the steps run R and D through (DDP- and/or compile-wrapped).

        - ``_refiner_train``: R in the refiner step (gradients flow; DDP averages them).
        - ``_refiner_plain``: R in the discriminator step, under ``no_grad``: the underlying
          module, since nothing is to be synchronised there.
        - ``_disc_train``: D in the discriminator step (DDP averages its gradients).
        - ``_disc_frozen``: D in the refiner step, where its parameters are frozen: the
          underlying module, because DDP must not expect gradients for them.

        DDP keeps its default ``broadcast_buffers=True``: at every discriminator step rank 0's
        buffers (batch-norm running statistics of a ``norm = "batch"`` discriminator) are copied
        to the other ranks. D always trains in train mode, where batch norm uses the statistics
        of each rank's own batch, so this only keeps the buffers (and rank 0's checkpoint) alike.
        """
        r_train: nn.Module = self.refiner
        d_train: nn.Module = self.discriminator
        if self.distributed:
            ddp_args: dict[str, Any] = {}
            if self.device.type == "cuda":
                index = self.device.index if self.device.index is not None else torch.cuda.current_device()
                ddp_args["device_ids"] = [index]
            r_train = DistributedDataParallel(self.refiner, **ddp_args)
            d_train = DistributedDataParallel(self.discriminator, **ddp_args)
        r_plain: nn.Module = self.refiner
        d_plain: nn.Module = self.discriminator
        if self.cfg.compile:
            # torch.compile(DDP(m)) is the supported order: dynamo splits the graph at DDP's
            # gradient buckets so communication overlaps the backward pass.
            r_train = torch.compile(r_train, mode=self.cfg.compile_mode)
            d_train = torch.compile(d_train, mode=self.cfg.compile_mode)
            r_plain = torch.compile(self.refiner, mode=self.cfg.compile_mode) if self.distributed else r_train
            d_plain = torch.compile(self.discriminator, mode=self.cfg.compile_mode) if self.distributed else d_train
        self._refiner_train: Callable[..., Tensor] = r_train
        self._refiner_plain: Callable[..., Tensor] = r_plain
        self._disc_train: Callable[[Tensor], Tensor] = d_train
        self._disc_frozen: Callable[[Tensor], Tensor] = d_plain

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        """bf16 autocast for forward passes when ``train.amp = "bf16"``; otherwise nothing."""
        if self.cfg.amp == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # ------------------------------------------------------------------ batches
    def _batch(self, images: Tensor) -> Tensor:
        """A random mini-batch (B, C, H, W) drawn with replacement from ``images`` (N, C, H, W),
        randomly cropped to (B, C, S, S) if ``train.crop_size`` = S is set.

        Indices come from the CPU generator and go to the device without waiting for it.
        """
        idx = torch.randint(len(images), (self.cfg.batch_size,), generator=self.index_gen)
        batch = images[to_device_async(idx, images.device)]
        return random_crops(batch, self.cfg.crop_size, self.index_gen) if self.cfg.crop_size else batch

    def _refine(self, x: Tensor, forward: Callable[..., Tensor] | None = None) -> Tensor:
        """R(x) for (B, C, H, W) ``x`` through ``forward`` (default: the training wrapper), with
        fresh noise maps from the trainer's noise generator (drawn outside any compiled code)."""
        forward = self._refiner_train if forward is None else forward
        return forward(x, self.refiner.sample_noise(x, self.noise_gen))

    # ------------------------------------------------------------------ steps
    def refiner_step(self, adversarial: bool) -> dict[str, Tensor]:
        """One refiner update; pretraining (``adversarial=False``) uses self-regularisation only.

        Returns scalar metric tensors, detached and still on the device (no host sync).
        """
        self.refiner.train()
        self.discriminator.requires_grad_(False)
        x = self._batch(self.synthetic)
        # Forward passes of R, D and psi (inside the loss) under autocast; the losses cast
        # their inputs to float32, and the backward pass runs outside autocast as recommended.
        with self._autocast():
            refined = self._refine(x)
            if adversarial:
                logits = self._discriminate_refined(refined)
                parts = self.loss.refiner_loss_from_images(logits, refined, x, self.psi, self.cfg.lam)
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
            return self._disc_frozen(refined)
        real = self._batch(self.real).to(refined.dtype)
        return self._disc_frozen(torch.cat([refined, real], dim=0))[: len(refined)]

    def discriminator_step(self) -> dict[str, Tensor]:
        """One discriminator update on (history-mixed) refined images vs real images.

        Returns scalar metric tensors, detached and still on the device (no host sync).
        """
        self.discriminator.train()
        with torch.no_grad(), self._autocast():
            self.refiner.eval()
            refined = self._refine(self._batch(self.synthetic), self._refiner_plain)
            self.refiner.train()
        if self.cfg.amp != "none":
            # Back to the images' dtype: the history buffer and checkpoints do not depend on amp.
            refined = refined.to(self.synthetic.dtype)
        if self.buffer is not None:
            refined = self.buffer.mix(refined)
        real = self._batch(self.real)
        with self._autocast():
            logits = self._disc_train(torch.cat([refined, real], dim=0))
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
            # The weight average as a plain refiner state dict (what `refine` loads when present)
            # and how many updates it has had (0 would make the next update copy, not average).
            "refiner_ema": self.refiner_ema.module.state_dict() if self.refiner_ema is not None else None,
            "refiner_ema_updates": int(self.refiner_ema.n_averaged) if self.refiner_ema is not None else None,
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
        """Restore from :meth:`state_dict` (a checkpoint written by rank 0).

        Under DDP every rank loads rank 0's checkpoint: weights, optimiser states, step and the
        history buffer's images. Ranks other than 0 then reseed their index/noise generators
        from (seed, rank, phase, step), so that they do not replay rank 0's batches; a resumed
        multi-process run is therefore not bit-identical to an uninterrupted one.
        """
        self.refiner.load_state_dict(state["refiner"])
        if self.refiner_ema is not None:
            self.refiner_ema.module.load_state_dict(state["refiner_ema"])
            self.refiner_ema.n_averaged.fill_(state["refiner_ema_updates"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.opt_r.load_state_dict(state["opt_r"])
        self.opt_d.load_state_dict(state["opt_d"])
        if self.buffer is not None and state["buffer"] is not None:
            self.buffer.load_state_dict(state["buffer"], self.device)
        self.index_gen.set_state(state["index_gen"])
        self.noise_gen.set_state(state["noise_gen"])
        self.phase, self.step = state["phase"], state["step"]
        if self.rank > 0:
            seed = (self._stream_seed * 1_000_003 + PHASES.index(self.phase) * 100_003 + self.step) % 2**63
            self.index_gen.manual_seed(seed)
            self.noise_gen.manual_seed(seed + 1)

    @property
    def checkpoint_path(self) -> Path | None:
        return self.out_dir / "checkpoints" / "last.pt" if self.out_dir else None

    def save(self) -> None:
        """Write ``checkpoints/last.pt`` atomically (after checking the weights are finite).

        Waits for the device (a checkpoint is one of the loop's two sync points). Under DDP
        every rank checks the weights (they are identical everywhere, so all ranks stop
        together on non-finite ones) and rank 0 alone writes the plain modules' weights.
        """
        if self.checkpoint_path is None:
            return
        for name, net in (("refiner", self.refiner), ("discriminator", self.discriminator)):
            if not all(torch.isfinite(p).all() for p in net.parameters()):
                raise TrainingDivergedError(
                    f"{name} weights are not finite at {self.phase} step {self.step}; checkpoint not written "
                    "(the previous one is intact). Lower the learning rates or lambda."
                )
        if self.is_main:
            save_checkpoint(self.state_dict(), self.checkpoint_path)

    def resume(self) -> bool:
        """Load ``checkpoints/last.pt`` if it exists; returns whether it did.

        The checkpoint's training config must match this run's: a resumed run would otherwise
        silently mix two experiments (settings that only change how it executes, such as
        ``train.compile``, may differ); the error names each differing field. Under DDP every
        rank loads rank 0's checkpoint, then all wait for each other, so rank 0 cannot replace
        it while another rank still reads it.

        Without a checkpoint (deleted, or the run stopped before its first one) training
        restarts from step 0, with a warning, and so does metrics.jsonl: the records of the
        lost attempt would otherwise stand twice in it.
        """
        path = self.checkpoint_path
        if path is None:
            return False
        if not path.exists():
            if self.is_main:
                warnings.warn(f"no checkpoint in {str(path.parent)!r}: SimGAN training restarts from step 0", stacklevel=2)
            if self.log is not None:
                self.log.clear()
            return False
        state = load_checkpoint(path, map_location=self.device)
        compared = ("train", "refiner", "discriminator", "feature", "seed")
        saved = {k: v for k, v in resume_comparable(state["config"]).items() if k in compared}
        current = {k: v for k, v in resume_comparable(self.config.model_dump(mode="json")).items() if k in compared}
        differences = config_differences(saved, current)
        if differences:
            raise ConfigError(
                f"cannot resume from {str(path)!r}: its settings differ from this run's: {describe_differences(differences)}; "
                "use the same config or a new --out directory"
            )
        self.load_state_dict(state)
        if self.log is not None:
            self.log.truncate_after(list(PHASES), self.phase, self.step)
        if self.distributed:
            dist_utils.barrier()
        return True

    # ------------------------------------------------------------------ logging (asynchronous)
    def _save_samples(self, tag: str) -> None:
        """Queue a sample grid: R is run now, the PNG is written at the next flush (rank 0 only)."""
        if self.out_dir is None or not self.is_main:
            return
        refiner = self.inference_refiner
        was_training = refiner.training
        refiner.eval()
        with torch.no_grad():
            refined = refiner(self._grid_synthetic, self._grid_noise)
        refiner.train(was_training)
        self._pending_samples.append(_PendingSamples(tag, _HostCopy(refined)))
        if not self.async_logging:
            self._write_samples()

    def _write_samples(self) -> None:
        samples, self._pending_samples = self._pending_samples, []
        if not samples or self.out_dir is None:
            return
        if not hasattr(self, "_grid_host"):  # host copies of the fixed grid inputs, made once
            self._grid_host = (self._grid_synthetic.cpu(), self._grid_real.cpu())
        synthetic, real = self._grid_host
        for pending in samples:
            grid = sample_grid(synthetic, pending.refined.wait(), real, self.image_spec.value_range)
            save_sample_grid(grid, self.out_dir / "samples" / f"{pending.tag}.png")

    def _start_record(self, phase: str, step: int, metrics: dict[str, Tensor]) -> _PendingRecord:
        """Start moving ``metrics`` (scalar tensors on the device) to the host; returns at once.

        Under DDP the values are first averaged over ranks (an all-reduce queued on the device),
        so every rank logs, and checks, the same numbers: a NaN on one rank stops them all.
        """
        keys = list(metrics)
        # stack promotes to the widest dtype, so the host values equal float(v) exactly.
        values = torch.stack([v.detach().reshape(()) for v in metrics.values()])
        if self.distributed:
            values = dist_utils.all_reduce_mean(values)
        return _PendingRecord(phase, step, keys, _HostCopy(values))

    def _finish_record(self, pending: _PendingRecord) -> dict[str, float]:
        """The host values of ``pending``; raises TrainingDivergedError if any is NaN or infinite."""
        values = dict(zip(pending.keys, pending.values.wait().tolist()))
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        if bad:
            raise TrainingDivergedError(
                f"{', '.join(bad)} became {values[bad[0]]} at {pending.phase} step {pending.step}; stopped before "
                "writing a checkpoint (the last good one is kept). Lower the learning rates or lambda, "
                "or check the input images for NaN."
            )
        return values

    def _flush(self, on_log: Callable[[dict[str, Any]], None] | None, bar: Any = None) -> None:
        """Write what is pending: sample grids, then the metrics record (checked for NaN).

        Called one logging interval after a record was started (its copy is long finished),
        and at checkpoints and the end of training, where waiting for the device is due anyway.
        """
        self._write_samples()
        pending, self._pending = self._pending, None
        if pending is None:
            return
        values = self._finish_record(pending)
        record = {"phase": pending.phase, "step": pending.step, **{k: round(v, 6) for k, v in values.items()}}
        self._last = values
        if self.log is not None:
            self.log.write(record)
        if on_log is not None:
            on_log(record)
        if bar is not None:
            bar.set_postfix({k: f"{v:.3f}" for k, v in values.items()}, refresh=False)

    # ------------------------------------------------------------------ loop
    def train(self, resume: bool = False, on_log: Callable[[dict[str, Any]], None] | None = None) -> TrainingOutcome:
        """Run every phase to the end (or the rest of them, when resuming).

        ``on_log(record)`` sees every metrics.jsonl record, one logging interval after its step
        (at the latest at the next checkpoint); under DDP every rank sees the same records,
        averaged over ranks.
        """
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
        self._last, self._pending, self._pending_samples = {}, None, []
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
                    logged = self.step % self.cfg.log_every == 0 or at_end
                    if logged:
                        # Write the previous record (its copy finished long ago), start this one.
                        self._flush(on_log, bar)
                        self._pending = self._start_record(phase, self.step, metrics)
                        if not self.async_logging:
                            self._flush(on_log, bar)
                    if phase == "adversarial" and (self.step % self.cfg.sample_every == 0 or at_end):
                        self._save_samples(f"step_{self.step:06d}")
                    if self.step % self.cfg.checkpoint_every == 0 or at_end:
                        # A checkpoint waits for the device anyway: write everything pending,
                        # and never save weights trained on a non-finite loss.
                        self._flush(on_log, bar)
                        if not logged:
                            self._finish_record(self._start_record(phase, self.step, metrics))
                        self.save()
                if phase == "refiner_pretrain" and lengths[phase] > 0:
                    self._save_samples("pretrained_refiner")
            self._flush(on_log, bar)
        finally:
            bar.close()
        return TrainingOutcome(time.perf_counter() - start, dict(self._last), resumed)
