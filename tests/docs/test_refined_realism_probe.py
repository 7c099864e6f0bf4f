"""docs/examples/refined_realism_probe.py: its views, its discriminator probe, and a run on a smoke run."""

from __future__ import annotations

import pytest
import torch

from simgan_toolkit.config import build_config
from simgan_toolkit.plugin import get_registry
from simgan_toolkit.testing import run_cli

EXAMPLE = "refined_realism_probe"


def test_high_pass_of_a_flat_image_is_zero_and_blur_keeps_it(example):
    flat = torch.full((2, 1, 12, 16), 0.3)
    torch.testing.assert_close(example.high_pass(flat), torch.zeros_like(flat))
    torch.testing.assert_close(example.blurred(flat), flat)


def test_standardised_images_have_zero_mean_and_fixed_spread(example):
    images = torch.randn(3, 1, 10, 10) * torch.tensor([0.1, 1.0, 5.0]).view(3, 1, 1, 1) + 2.0
    out = example.standardised(images)
    torch.testing.assert_close(out.mean(dim=(1, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.std(dim=(1, 2, 3)), torch.full((3,), 0.2), atol=1e-5, rtol=0)


def test_discriminator_probe_separates_constant_from_noisy_images_and_rejects_tiny_sets(example):
    config = build_config("gaze", "smoke", get_registry().create("task", "gaze").profiles())
    g = torch.Generator().manual_seed(0)
    noisy = torch.randn(64, 1, 35, 55, generator=g).clamp(-1, 1)
    flat = torch.zeros(64, 1, 35, 55)
    probe = example.probe_discriminator(config, get_registry(), noisy, flat, norm="none", steps=60)
    assert probe["patch_acc"] > 90 and probe["image_acc"] > 90
    with pytest.raises(ValueError, match="at least 4 images"):
        example.probe_discriminator(config, get_registry(), noisy[:3], flat[:3], norm="none", steps=1)


@pytest.mark.slow
def test_runs_on_a_smoke_run(tmp_path, example):
    out = tmp_path / "run"
    result = run_cli(["run", "--task", "gaze", "--profile", "smoke", "--device", "cpu", "--no-progress", "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    results = example.main([str(out), "--n", "32", "--steps", "2", "--d-steps", "2"])
    assert list(results) == ["Turing, whole", "Turing, blurred", "Turing, high-pass", "Turing, standardised",
                             "D probe, norm none", "D probe, norm group"]
    assert all(0.0 <= v <= 100.0 for r in results.values() for v in r.values())
