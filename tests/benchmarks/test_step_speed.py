"""The GPU step benchmark runs end to end on the CPU (numbers meaningless here) and counts FLOPs right."""

from __future__ import annotations

import json
import math

import torch
from torch import nn

from benchmarks import step_speed


def test_flop_counter_counts_a_known_convolution():
    """FlopCounterMode on a 3x3 conv, 1 -> 4 channels, 8x8 output, batch 2: forward
    2 * (2*8*8) * 4 * 9 = 9216 FLOPs; forward + backward (input and weight grads) = 3x."""
    conv = nn.Conv2d(1, 4, 3, padding=1, bias=False)
    x = torch.randn(2, 1, 8, 8, requires_grad=True)
    with torch.utils.flop_counter.FlopCounterMode(display=False) as counter:
        conv(x).sum().backward()
    assert counter.get_total_flops() == 3 * 9216


def test_measure_reports_both_paths_and_mfu(registry):
    result = step_speed.measure("gaze", "smoke", torch.device("cpu"), iters=1, warmup=1, compile_=False, registry=registry)
    assert set(result["rows"]) == {"eager fp32", "fast"}
    assert result["flops_per_iteration"] > 0 and result["measured_bf16_matmul_flops_per_s"] > 0
    for row in result["rows"].values():
        assert row["images_per_s"] > 0 and math.isfinite(row["images_per_s"])
        assert math.isclose(row["mfu_vs_measured_bf16_peak"], result["flops_per_iteration"] / row["seconds_per_iteration"] / result["measured_bf16_matmul_flops_per_s"])
    assert result["rows"]["eager fp32"]["amp"] == "none" and result["rows"]["fast"]["amp"] == "bf16"
    assert result["rows"]["eager fp32"]["loss"] == "SimGANLoss"  # the reference, as the baseline
    assert math.isclose(result["speedup_fast_vs_eager"],
                        result["rows"]["eager fp32"]["seconds_per_iteration"] / result["rows"]["fast"]["seconds_per_iteration"])


def test_cli_writes_json(tmp_path, capsys):
    out = tmp_path / "perf.json"
    assert step_speed.main(["--task", "gaze", "--profile", "smoke", "--device", "cpu", "--iters", "1", "--no-compile", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["runs"][0]["task"] == "gaze" and "commit" in data["environment"]
    assert json.loads(capsys.readouterr().out) == data
