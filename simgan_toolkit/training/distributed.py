"""Multi-process SimGAN training: torchrun's process group and DistributedDataParallel.

``torchrun --nproc_per_node N -m simgan_toolkit.run --task NAME ...`` starts N copies of the
job with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` set.
:func:`setup` turns those into a process group (NCCL on GPUs, gloo on the CPU) and gives
every process its device (``cuda:LOCAL_RANK``). The trainer then wraps R and D in
:class:`torch.nn.parallel.DistributedDataParallel` (see :mod:`simgan_toolkit.training.trainer`).

Division of labour (see :func:`simgan_toolkit.pipeline.run_pipeline`):

- every rank simulates (or loads) the data, and trains SimGAN on its own random batches
  (``train.batch_size`` is per rank: the global batch is N times larger), with its own history
  buffer and its own index/noise random streams (seed + :data:`RANK_SEED_STRIDE` x rank);
  gradients are averaged by DDP, so the weights stay identical on every rank;
- rank 0 alone writes files: config.json, metrics.jsonl, samples, checkpoints, and it alone
  runs the stages after SimGAN training (refine, export, estimators, figures, summary); the
  other ranks leave once training is done.

Without torchrun nothing here does anything and a run is the plain single-process one.
``torchrun --nproc_per_node 1`` does make a one-process group and wraps R and D in DDP: it
exercises the multi-process code (NCCL included) on a machine with one GPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from simgan_toolkit.errors import ConfigError

#: Rank r draws its batch indices and noise from seed + RANK_SEED_STRIDE * r, so rank 0 keeps the
#: single-process streams and no two ranks share one (offsets below the stride are taken by
#: the trainer's other generators: noise = +1, sample grids = +2, +3).
RANK_SEED_STRIDE = 1000

#: How long a rank waits at a collective before giving up. Generous because ranks wait for
#: rank 0 to train the synthetic estimator when psi is ``learned`` (under torchrun, a rank that
#: fails makes torchrun stop the others at once, so a crash does not wait this long).
TIMEOUT = timedelta(minutes=60)


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in a multi-process run.

    Attributes:
        rank: global rank, 0..world_size-1; rank 0 writes every file.
        world_size: number of processes.
        local_rank: rank on this machine (picks the GPU).
        backend: ``nccl`` or ``gloo``.
        device: this rank's training device.
        owns_group: whether :func:`setup` created the process group (then :func:`cleanup`
            destroys it; a group made by the caller is left alone).
    """

    rank: int
    world_size: int
    local_rank: int
    backend: str
    device: torch.device
    owns_group: bool

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name}={raw!r} is not an integer (set by torchrun)") from None


def env_world_size() -> int:
    """``WORLD_SIZE`` as torchrun sets it (1 when unset)."""
    return _env_int("WORLD_SIZE", 1)


def launched_by_torchrun() -> bool:
    """Whether the environment describes a process group: ``WORLD_SIZE`` > 1, or torchrun's
    full set of variables (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) for one process."""
    if env_world_size() > 1:
        return True
    return all(os.environ.get(k) for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


def is_distributed() -> bool:
    """Whether this process belongs to an initialised process group."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank (0 outside a process group)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes (1 outside a process group)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Whether this process writes files: rank 0, or the only process."""
    return rank() == 0


def rank_device(name: str, local_rank: int) -> torch.device:
    """This rank's device for the configured ``device`` name.

    ``auto`` and ``cuda`` become ``cuda:LOCAL_RANK`` (``auto`` falls back to the CPU without
    CUDA); ``cpu`` stays the CPU (gloo). A numbered GPU (``cuda:1``) is only accepted for a
    single process: with several, each must have its own.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"device: {name!r} is not a device name ({exc})") from None
    if device.type == "cpu":
        return torch.device("cpu")
    if device.type != "cuda":
        raise ConfigError(f"device: multi-process training runs on 'cuda' or 'cpu', not {name!r}")
    if device.index is not None and env_world_size() > 1:
        raise ConfigError(
            f"device: {name!r} names one GPU, but torchrun started {env_world_size()} processes; "
            "use device='cuda' (or 'auto'): process LOCAL_RANK k trains on cuda:k"
        )
    if not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' requested but CUDA is not available on this machine")
    index = local_rank if device.index is None else device.index  # an index: one process on that GPU
    if index >= torch.cuda.device_count():
        raise ConfigError(
            f"cuda:{index} does not exist: this machine has {torch.cuda.device_count()} GPU(s); "
            "start at most that many processes per node (torchrun --nproc_per_node)"
        )
    return torch.device("cuda", index)


def setup(device_name: str) -> DistributedContext | None:
    """Join the process group torchrun describes; None in a plain single-process run.

    Reads ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` (and, through ``init_process_group``,
    ``MASTER_ADDR``/``MASTER_PORT``). On CUDA it selects ``cuda:LOCAL_RANK`` and uses NCCL, on
    the CPU gloo. A process group that already exists (made by the caller) is reused.
    See :func:`launched_by_torchrun` for when a group is made.
    """
    if not dist.is_available():
        if launched_by_torchrun():
            raise ConfigError("this PyTorch build has no torch.distributed: multi-process training is unavailable")
        return None
    if dist.is_initialized():
        local_rank = _env_int("LOCAL_RANK", dist.get_rank())
        device = rank_device(device_name, local_rank)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        return DistributedContext(dist.get_rank(), dist.get_world_size(), local_rank, dist.get_backend(), device, False)
    if not launched_by_torchrun():
        return None
    world = env_world_size()
    rank_, local_rank = _env_int("RANK", -1), _env_int("LOCAL_RANK", 0)
    if not 0 <= rank_ < world:
        raise ConfigError(f"WORLD_SIZE={world} but RANK={os.environ.get('RANK')!r}: start multi-process runs with torchrun")
    device = rank_device(device_name, local_rank)
    backend = "nccl" if device.type == "cuda" else "gloo"
    kwargs: dict[str, Any] = {"backend": backend, "rank": rank_, "world_size": world, "timeout": TIMEOUT}
    if device.type == "cuda":
        torch.cuda.set_device(device)
        kwargs["device_id"] = device  # binds NCCL to this GPU (barriers then know which one)
    dist.init_process_group(**kwargs)
    return DistributedContext(rank_, world, local_rank, backend, device, True)


def barrier() -> None:
    """Wait for every rank (no-op outside a process group)."""
    if not is_distributed():
        return
    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (picklable objects; no-op outside a process group)."""
    if not is_distributed():
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def all_reduce_mean(values: Tensor) -> Tensor:
    """Mean of ``values`` (any shape, floating point) over ranks; ``values`` itself outside a group.

    Runs asynchronously with respect to the host on NCCL (it is queued on the GPU); gloo blocks.
    A NaN on any rank makes the mean NaN on every rank, so all ranks agree on divergence.
    """
    if not is_distributed():
        return values
    out = values.clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / dist.get_world_size()


def cleanup(context: DistributedContext | None) -> None:
    """Destroy the process group if :func:`setup` created it."""
    if context is not None and context.owns_group and dist.is_initialized():
        dist.destroy_process_group()
