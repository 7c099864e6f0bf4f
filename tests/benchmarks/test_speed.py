"""benchmarks.speed: throughput and memory of one task and profile, on the CPU."""

from __future__ import annotations

import math

import pytest
import torch

from benchmarks.speed import measure_speed, seconds_per_call

THROUGHPUTS = ("simulator_images_per_s", "target_images_per_s", "train_images_per_s", "refine_images_per_s")


def test_measure_speed_gaze_smoke_on_cpu(registry):
    out = measure_speed("gaze", registry.create("task", "gaze"), "smoke", registry, torch.device("cpu"), 2)
    assert set(out) == {
        "task", "profile", "device", "batch_size", "k_g", "k_d", "crop_size", "loss_implementation", "iterations_timed",
        *THROUGHPUTS, "train_seconds_per_iteration", "train_peak_memory_mb", "refine_peak_memory_mb", "memory_kind",
    }
    assert (out["task"], out["profile"], out["device"], out["iterations_timed"]) == ("gaze", "smoke", "cpu", 2)
    assert (out["batch_size"], out["k_g"], out["k_d"]) == (8, 2, 1)  # the smoke profile's
    assert out["memory_kind"] == "process peak RSS so far"
    for key in (*THROUGHPUTS, "train_seconds_per_iteration", "train_peak_memory_mb", "refine_peak_memory_mb"):
        assert math.isfinite(out[key]) and out[key] > 0, key
    assert out["train_images_per_s"] == pytest.approx(out["batch_size"] / out["train_seconds_per_iteration"])
    assert isinstance(out["loss_implementation"], str) and out["loss_implementation"]


def test_timed_warms_up_once_then_averages():
    calls = []
    seconds = seconds_per_call(lambda: calls.append(1), torch.device("cpu"), 3)
    assert len(calls) == 4
    assert 0 <= seconds < 1
