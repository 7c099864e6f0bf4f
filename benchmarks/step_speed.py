"""One SimGAN iteration, plain vs fast, against the device's limits (the GPU performance check).

``python -m benchmarks.step_speed --task gaze --profile paper --device cuda --out perf.json``
measures, in one process:

- **eager fp32**: the plain path (fp32, NCHW, eager, reference loss) — the baseline;
- **fast**: bf16 autocast, channels_last, optionally ``torch.compile``, ``loss = auto`` (the
  Triton kernels on CUDA when the loss-kernel plugin is installed);

each as images/s of one Algorithm-1 iteration (``k_g`` refiner steps + ``k_d`` discriminator
steps on one batch), plus **model FLOP utilisation**: the FLOPs one iteration performs
(counted by :class:`torch.utils.flop_counter.FlopCounterMode` on the eager path) per second,
over the **measured** dense bf16 matmul peak of the same device (:func:`matmul_peak_flops`).
The loss-kernel micro-benchmark (:func:`simgan_losskernels.bench.time_losses`) is added when
that plugin is importable. On a CPU it runs too (small iteration counts), which is how the
test keeps it from rotting; its numbers there say nothing about a GPU.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.speed import seconds_per_call
from simgan_toolkit.config import build_config
from simgan_toolkit.environment import environment_info, resolve_device
from simgan_toolkit.plugin import Registry, get_registry
from simgan_toolkit.training import SimGANTrainer


def matmul_peak_flops(device: torch.device, dtype: torch.dtype = torch.bfloat16, n: int = 8192, iters: int = 20) -> float:
    """Measured dense matmul FLOP/s (2 n^3 per product) of ``device`` in ``dtype``: the
    denominator of model FLOP utilisation (a measured peak, not the datasheet's)."""
    if device.type != "cuda":
        n, iters = min(n, 1024), min(iters, 3)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    return 2 * n**3 / seconds_per_call(lambda: a @ b, device, iters, warmup=2)


def _trainer(task_name: str, profile: str, registry: Registry, device: torch.device, fast: bool, compile_: bool, batch: int | None) -> SimGANTrainer:
    task = registry.create("task", task_name)
    overrides = [f"device='{device.type}'"]
    if batch:
        overrides.append(f"train.batch_size={batch}")
    if fast:
        overrides += ["train.amp='bf16'", "channels_last=true", f"train.compile={'true' if compile_ else 'false'}", "train.loss='auto'"]
    else:
        overrides += ["train.amp='none'", "channels_last=false", "train.compile=false", "train.loss='reference'"]
    config = build_config(task_name, profile, task.profiles(), overrides=overrides)
    b = config.train.batch_size
    synthetic, target = task.synthetic(2 * b, 0, device).images, task.target(2 * b, 1, device)
    return SimGANTrainer.from_config(config, registry, task, synthetic, target, None, device, progress=False)


def iteration_flops(trainer: SimGANTrainer) -> int:
    """FLOPs of one adversarial iteration (forward and backward), counted op by op."""
    with FlopCounterMode(display=False) as counter:
        trainer.adversarial_iteration()
    return int(counter.get_total_flops())


def measure(task_name: str, profile: str, device: torch.device, *, iters: int = 20, warmup: int = 5,
            compile_: bool = True, batch: int | None = None, registry: Registry | None = None) -> dict[str, Any]:
    """Eager fp32 vs fast path for one task/profile on ``device`` (see the module docstring)."""
    registry = registry or get_registry()
    peak = matmul_peak_flops(device)
    plain = _trainer(task_name, profile, registry, device, fast=False, compile_=False, batch=batch)
    flops = iteration_flops(plain)
    b = plain.config.train.batch_size
    rows = {}
    for name, trainer in (("eager fp32", plain), ("fast", _trainer(task_name, profile, registry, device, True, compile_, batch))):
        seconds = seconds_per_call(trainer.adversarial_iteration, device, iters, warmup)
        rows[name] = {
            "seconds_per_iteration": seconds, "images_per_s": b / seconds,
            "model_flops_per_s": flops / seconds, "mfu_vs_measured_bf16_peak": flops / seconds / peak,
            "loss": type(trainer.loss).__name__, "amp": trainer.config.train.amp, "compile": trainer.config.train.compile,
        }
    result: dict[str, Any] = {
        "task": task_name, "profile": profile, "batch_size": b, "k_g": plain.config.train.k_g, "k_d": plain.config.train.k_d,
        "flops_per_iteration": flops, "measured_bf16_matmul_flops_per_s": peak, "rows": rows,
        "speedup_fast_vs_eager": rows["eager fp32"]["seconds_per_iteration"] / rows["fast"]["seconds_per_iteration"],
    }
    try:
        from simgan_losskernels.bench import peak_bandwidth, time_losses
    except ImportError:
        return result
    if device.type == "cuda":
        # The loss terms at this configuration's own sizes: one training batch and D's patch map.
        images = plain.batches.draw(plain.synthetic)
        with torch.no_grad():
            logits_shape = tuple(plain.discriminator(images).shape)
        result["loss_kernels"] = {
            dtype: time_losses(tuple(images.shape), getattr(torch, dtype), device, logits_shape=logits_shape)
            for dtype in ("float32", "bfloat16")
        }
        result["measured_copy_bandwidth_bytes_per_s"] = peak_bandwidth(device)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.step_speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--task", action="append", default=None, help="task (repeatable); default gaze and hand_depth")
    p.add_argument("--profile", default="paper")
    p.add_argument("--device", default="auto")
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--batch", type=int, default=None, help="override train.batch_size")
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--out", default=None, help="write the JSON here too")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    results = {"environment": environment_info(device), "command": "python -m benchmarks.step_speed " + " ".join(argv or sys.argv[1:]),
               "runs": [measure(t, args.profile, device, iters=args.iters, compile_=not args.no_compile, batch=args.batch)
                        for t in (args.task or ["gaze", "hand_depth"])]}
    text = json.dumps(results, indent=2, default=str)
    print(text)
    if args.out:
        from simgan_toolkit.io import atomic_write_text

        atomic_write_text(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
