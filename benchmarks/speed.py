"""Throughput and memory: simulator, one SimGAN iteration, refinement; per task and profile.

- simulator: synthetic and target images generated per second;
- training: images per second of one Algorithm-1 iteration (``k_g`` refiner steps and ``k_d``
  discriminator steps on one batch of ``train.batch_size``), i.e. ``batch / seconds``;
- refine: images per second of ``refine_images`` at full image size;
- memory: peak allocated CUDA memory of each measurement on a GPU; on the CPU the process's
  peak resident set size so far (a coarse upper bound: it never goes down).

One untimed warm-up precedes every timed measurement; CUDA is synchronised around timers.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from typing import Any

import torch

from simgan_toolkit.config import build_config
from simgan_toolkit.plugin import Registry
from simgan_toolkit.refine import refine_images
from simgan_toolkit.task import Task
from simgan_toolkit.training import SimGANTrainer


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_call(fn: Callable[[], Any], device: torch.device, iters: int, warmup: int = 1) -> float:
    """Mean wall seconds per ``fn()`` over ``iters`` calls after ``warmup`` untimed ones,
    with CUDA synchronised around the timer."""
    for _ in range(warmup):
        fn()
    _sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / iters


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def measure_speed(task_name: str, task: Task, profile: str, registry: Registry, device: torch.device, iterations: int) -> dict[str, Any]:
    """All throughputs of one task and profile (see the module docstring)."""
    config = build_config(task_name, profile, task.profiles(), overrides=[f"device='{device.type}'"])
    b = config.train.batch_size
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    n_sim = max(2 * b, 64)
    sim = seconds_per_call(lambda: task.synthetic(n_sim, 0, device), device, 1)
    target_time = seconds_per_call(lambda: task.target(n_sim, 1, device), device, 1)
    synthetic, target = task.synthetic(2 * b, 2, device).images, task.target(2 * b, 3, device)

    trainer = SimGANTrainer.from_config(config, registry, task, synthetic, target, None, device, progress=False)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    iteration = seconds_per_call(trainer.adversarial_iteration, device, iterations)
    train_memory = _peak_memory_mb(device)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    n_refine = min(len(synthetic), 256)
    refine = seconds_per_call(lambda: refine_images(trainer.refiner, synthetic[:n_refine], batch_size=min(b, 256)), device, 1)
    refine_memory = _peak_memory_mb(device)
    return {
        "task": task_name, "profile": profile, "device": str(device), "batch_size": b,
        "k_g": config.train.k_g, "k_d": config.train.k_d, "crop_size": config.train.crop_size,
        "loss_implementation": trainer.loss_name, "iterations_timed": iterations,
        "simulator_images_per_s": n_sim / sim,
        "target_images_per_s": n_sim / target_time,
        "train_images_per_s": b / iteration,
        "train_seconds_per_iteration": iteration,
        "refine_images_per_s": n_refine / refine,
        "train_peak_memory_mb": train_memory,
        "refine_peak_memory_mb": refine_memory,
        "memory_kind": "CUDA peak allocated" if device.type == "cuda" else "process peak RSS so far",
    }
