"""The trainer's logging: metrics records and sample grids, written without stalling the device.

The loop never waits for the device between checkpoints: a logged step's metrics start their
copy to the host at once (:meth:`TrainingLogger.log_step`) and are written one logging interval
later, when the copy has long finished; sample grids likewise. Checkpoints and the end of
training flush everything (they wait for the device anyway). Every record is checked for NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from simgan_toolkit.errors import TrainingDivergedError
from simgan_toolkit.training import distributed as dist_utils
from simgan_toolkit.training.metrics_log import MetricsLog
from simgan_toolkit.training.sample_grid import sample_grid, save_sample_grid

#: Images shown in every sample grid.
GRID_SAMPLES = 8


class HostCopy:
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
class PendingRecord:
    """Metrics of one logged step, on their way to the host."""

    phase: str
    step: int
    keys: list[str]
    values: HostCopy  # (len(keys),) in the metrics' common dtype


@dataclass
class _PendingSamples:
    """A sample grid's refined images, on their way to the host."""

    tag: str
    refined: HostCopy  # (GRID_SAMPLES, C, H, W)


@dataclass
class GridInputs:
    """The fixed inputs of every sample grid: (GRID_SAMPLES, C, H, W) synthetic and real images
    and the refiner's noise maps for the synthetic ones."""

    synthetic: Tensor
    real: Tensor
    noise: Any


def grid_inputs(synthetic: Tensor, real: Tensor, refiner: nn.Module, seed: int, device: torch.device) -> GridInputs:
    """The sample grids' inputs drawn from (N, C, H, W) ``synthetic`` and ``real`` with ``seed``
    + 2 (images) and ``seed`` + 3 (noise), independent of the training streams."""
    grid_gen = torch.Generator().manual_seed(seed + 2)
    grid_synthetic = synthetic[torch.randperm(len(synthetic), generator=grid_gen)[:GRID_SAMPLES].to(device)]
    grid_real = real[torch.randperm(len(real), generator=grid_gen)[:GRID_SAMPLES].to(device)]
    noise = refiner.sample_noise(grid_synthetic, torch.Generator(device=device).manual_seed(seed + 3))  # type: ignore[operator]
    return GridInputs(grid_synthetic, grid_real, noise)


class TrainingLogger:
    """Metrics records (to ``metrics.jsonl`` via ``log``) and sample grids (PNGs in
    ``samples_dir``), asynchronous unless ``async_logging`` is False. ``log``/``samples_dir``
    None: nothing is written (ranks other than 0, or a trainer without a folder). Under DDP the
    metrics are averaged over ranks first, so every rank logs and checks the same numbers.
    """

    def __init__(
        self, log: MetricsLog | None, samples_dir: Path | None, grid: GridInputs, value_range: tuple[float, float], *,
        distributed: bool, async_logging: bool,
    ) -> None:
        self.log = log
        self.samples_dir = samples_dir
        self.grid = grid
        self.value_range = value_range
        self.distributed = distributed
        self.async_logging = async_logging
        self._grid_host: tuple[Tensor, Tensor] | None = None  # host copies of the grid inputs, made once
        self.reset()

    def reset(self) -> None:
        """Forget anything pending (the start of :meth:`SimGANTrainer.train`)."""
        self.pending: PendingRecord | None = None
        self._pending_samples: list[_PendingSamples] = []
        #: The host values of the last record written.
        self.last: dict[str, float] = {}

    # ------------------------------------------------------------------ records
    def start_record(self, phase: str, step: int, metrics: dict[str, Tensor]) -> PendingRecord:
        """Start moving ``metrics`` (scalar tensors on the device) to the host; returns at once.

        Under DDP the values are first averaged over ranks (an all-reduce queued on the device),
        so every rank logs, and checks, the same numbers: a NaN on one rank stops them all.
        """
        keys = list(metrics)
        # stack promotes to the widest dtype, so the host values equal float(v) exactly.
        values = torch.stack([v.detach().reshape(()) for v in metrics.values()])
        if self.distributed:
            values = dist_utils.all_reduce_mean(values)
        return PendingRecord(phase, step, keys, HostCopy(values))

    def finish_record(self, pending: PendingRecord) -> dict[str, float]:
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

    def log_step(self, phase: str, step: int, metrics: dict[str, Tensor], on_log: Callable[[dict[str, Any]], None] | None,
                 bar: Any = None) -> None:
        """Write the previous record (its copy finished long ago) and start this one."""
        self.flush(on_log, bar)
        self.pending = self.start_record(phase, step, metrics)
        if not self.async_logging:
            self.flush(on_log, bar)

    def check_step(self, phase: str, step: int, metrics: dict[str, Tensor]) -> None:
        """Wait for ``metrics`` and raise TrainingDivergedError if any is not finite (before a checkpoint)."""
        self.finish_record(self.start_record(phase, step, metrics))

    # ------------------------------------------------------------------ sample grids
    def queue_samples(self, tag: str, refiner: nn.Module) -> None:
        """Queue a sample grid of ``refiner``'s output: R is run now, the PNG is written at the next flush."""
        if self.samples_dir is None:
            return
        was_training = refiner.training
        refiner.eval()
        with torch.no_grad():
            refined = refiner(self.grid.synthetic, self.grid.noise)
        refiner.train(was_training)
        self._pending_samples.append(_PendingSamples(tag, HostCopy(refined)))
        if not self.async_logging:
            self._write_samples()

    def _write_samples(self) -> None:
        samples, self._pending_samples = self._pending_samples, []
        if not samples or self.samples_dir is None:
            return
        if self._grid_host is None:
            self._grid_host = (self.grid.synthetic.cpu(), self.grid.real.cpu())
        synthetic, real = self._grid_host
        for pending in samples:
            grid = sample_grid(synthetic, pending.refined.wait(), real, self.value_range)
            save_sample_grid(grid, self.samples_dir / f"{pending.tag}.png")

    # ------------------------------------------------------------------ flushing
    def flush(self, on_log: Callable[[dict[str, Any]], None] | None, bar: Any = None) -> None:
        """Write what is pending: sample grids, then the metrics record (checked for NaN).

        Called one logging interval after a record was started (its copy is long finished),
        and at checkpoints and the end of training, where waiting for the device is due anyway.
        """
        self._write_samples()
        pending, self.pending = self.pending, None
        if pending is None:
            return
        values = self.finish_record(pending)
        record = {"phase": pending.phase, "step": pending.step, **{k: round(v, 6) for k, v in values.items()}}
        self.last = values
        if self.log is not None:
            self.log.write(record)
        if on_log is not None:
            on_log(record)
        if bar is not None:
            bar.set_postfix({k: f"{v:.3f}" for k, v in values.items()}, refresh=False)
