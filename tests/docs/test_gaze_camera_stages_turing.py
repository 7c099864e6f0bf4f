"""docs/examples/gaze_camera_stages_turing.py runs on a smoke gaze run and scores every row."""

from __future__ import annotations

import pytest
import torch

from simgan_toolkit.testing import run_cli

EXAMPLE = "gaze_camera_stages_turing"


def test_camera_stages_keep_shape_and_range_and_quantise_to_8_bits(example):
    images = torch.rand(3, 1, 35, 55) * 2 - 1
    out = example.camera_stages(images, torch.Generator().manual_seed(0), noise=True)
    assert out.shape == images.shape and out.min() >= -1 and out.max() <= 1
    levels = (out + 1) / 2 * 255
    torch.testing.assert_close(levels, levels.round(), atol=1e-3, rtol=0)  # 8-bit values


@pytest.mark.slow
def test_runs_on_a_smoke_run(tmp_path, example):
    out = tmp_path / "run"
    result = run_cli(["run", "--task", "gaze", "--profile", "smoke", "--device", "cpu", "--no-progress", "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    scores = example.main([str(out), "--n", "32", "--steps", "2"])
    assert list(scores) == ["refined", "refined + JPEG/8-bit", "refined + sensor noise + JPEG/8-bit",
                            "synthetic + sensor noise + JPEG/8-bit"]
    assert all(0.0 <= s <= 100.0 for s in scores.values())
