"""One rank of the multi-process tests in test_distributed.py (not a test module itself).

Started N times by the tests with torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR, MASTER_PORT); every rank saves what the test checks into ``RESULTS/rank<r>.pt``,
a folder outside the run folder.

Usage: ``python ddp_worker.py OUT_ROOT RESULTS``: a tiny trainer (interrupted, then resumed
from rank 0's checkpoint) in ``OUT_ROOT/trainer``, then the whole job through the CLI in
``OUT_ROOT/pipeline``, both in one gloo process group.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

TINY_H, TINY_W = 12, 16


def _tiny_config(**train: Any):
    from simgan_toolkit.config import RunConfig, deep_merge

    base: dict[str, Any] = {
        "task": "tiny", "seed": 0, "device": "cpu",
        "refiner": {"width": 4, "blocks": 1, "output": "tanh", "noise_channels": 1},
        "discriminator": {"layers": ["conv3s2-8", "conv1-2"], "norm": "batch"},
        "estimator": {"name": "gaze_cnn"},
        "train": {
            "batch_size": 4, "refiner_pretrain_steps": 2, "discriminator_pretrain_steps": 2, "steps": 5,
            "history_size": 6, "log_every": 1, "sample_every": 2, "checkpoint_every": 2,
            "refiner_optimizer": {"name": "adam", "lr": 1e-2}, "discriminator_optimizer": {"name": "adam", "lr": 1e-2},
        },
    }
    return RunConfig.model_validate(deep_merge(base, {"train": train}))


def _trainer(config, out: Path, init_seed: int):
    from simgan_toolkit.features import Identity
    from simgan_toolkit.losses import SimGANLoss
    from simgan_toolkit.networks import LocalDiscriminator, ResNetRefiner
    from simgan_toolkit.task import ImageSpec
    from simgan_toolkit.training import SimGANNetworks, SimGANTrainer

    torch.manual_seed(init_seed)
    refiner = ResNetRefiner(1, **config.refiner.factory_options()).to(memory_format=torch.channels_last)
    discriminator = LocalDiscriminator(1, **config.discriminator.factory_options()).to(memory_format=torch.channels_last)
    g = torch.Generator().manual_seed(1)
    synthetic = torch.rand(16, 1, TINY_H, TINY_W, generator=g) * 2 - 1
    real = (torch.rand(16, 1, TINY_H, TINY_W, generator=g) * 2 - 1) * 0.5 + 0.2
    networks = SimGANNetworks(refiner, discriminator, Identity(), SimGANLoss(), {"name": "resnet", "options": {"in_channels": 1}})
    return SimGANTrainer(config, ImageSpec(1, TINY_H, TINY_W), networks, synthetic, real, torch.device("cpu"), out, progress=False)


def _weights(trainer) -> dict[str, dict[str, torch.Tensor]]:
    return {
        "refiner": {k: v.detach().clone() for k, v in trainer.refiner.named_parameters()},
        "discriminator": {k: v.detach().clone() for k, v in trainer.discriminator.named_parameters()},
    }


def run_trainer(out: Path) -> dict[str, Any]:
    """Train, stop every rank at adversarial step 3 (checkpoint: step 2), resume from rank 0's checkpoint."""
    config = _tiny_config()
    first = _trainer(config, out, init_seed=0)
    records: list[dict[str, Any]] = []
    batches: list[torch.Tensor] = []
    first.discriminator.register_forward_hook(lambda mod, inp, outp: batches.append(inp[0].detach().clone()))

    def stop(record: dict[str, Any]) -> None:
        records.append(record)
        if (record["phase"], record["step"]) == ("adversarial", 3):
            raise KeyboardInterrupt

    try:
        first.train(on_log=stop)
    except KeyboardInterrupt:
        pass
    interrupted = _weights(first)
    # Different initial weights on every rank: only DDP's initial broadcast and the checkpoint can make them agree.
    second = _trainer(config, out, init_seed=100 + dist.get_rank())
    outcome = second.train(resume=True)
    return {
        "distributed": first.distributed, "world_size": first.world_size, "records": records,
        "first_batch": batches[0], "interrupted": interrupted, "final": _weights(second),
        "resumed_from": outcome.resumed_from, "phase_step": (second.phase, second.step),
        "index_gen": second.index_gen.get_state(),
    }


def run_pipeline(out: Path) -> dict[str, Any]:
    """The whole job through the CLI (learned psi, bf16 autocast), in the caller's process group."""
    from simgan_toolkit.pipeline import simgan
    from simgan_toolkit.cli import main

    trainers: list[Any] = []

    class Recorded(simgan.SimGANTrainer):
        def train(self, *args: Any, **kwargs: Any):  # type: ignore[override]
            trainers.append(self)
            return super().train(*args, **kwargs)

    simgan.SimGANTrainer = Recorded  # type: ignore[misc]
    code = main(["run", "--task", "gaze", "--profile", "smoke", "--device", "cpu", "--no-progress", "--out", str(out),
                 "--set", "feature.name='learned'", "--set", "train.amp='bf16'"])
    (trainer,) = trainers
    return {"code": code, "distributed": trainer.distributed, "final": _weights(trainer)}


def record_writes(root: Path) -> list[str]:
    """Every write this process makes under ``root`` (opens for writing, renames, mkdir, removals)."""
    writes: list[str] = []
    prefix = str(root.resolve())

    def under_root(path: Any) -> bool:
        return isinstance(path, (str, os.PathLike)) and os.path.abspath(path).startswith(prefix)

    def audit(event: str, args: tuple[Any, ...]) -> None:
        if event == "open" and under_root(args[0]):
            mode, flags = args[1], args[2]
            if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
            ):
                writes.append(f"open {args[0]}")
        elif event == "os.rename" and (under_root(args[0]) or under_root(args[1])):
            writes.append(f"{event} {args[1]}")  # the destination (os.replace raises this event too)
        elif event in ("os.mkdir", "os.remove", "os.rmdir") and args and under_root(args[0]):
            writes.append(f"{event} {args[0]}")

    sys.addaudithook(audit)
    return writes


if __name__ == "__main__":
    from simgan_toolkit.training import distributed as dist_utils

    torch.set_num_threads(1)
    out_root, results = Path(sys.argv[1]), Path(sys.argv[2])
    writes = record_writes(out_root)
    context = dist_utils.setup("cpu")  # torchrun's variables -> a gloo group, kept for both parts
    assert context is not None and context.backend == "gloo" and context.owns_group
    result = {"trainer": run_trainer(out_root / "trainer"), "pipeline": run_pipeline(out_root / "pipeline")}
    assert dist.is_initialized(), "run_pipeline destroyed a process group it did not create"
    dist_utils.cleanup(context)
    torch.save({"rank": context.rank, "writes": writes, **result}, results / f"rank{context.rank}.pt")
