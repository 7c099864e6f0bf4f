"""The Kinect target must not change when shared code is refactored: statistics of its output
for fixed seeds, recorded at commit aed5195 before the scene moved to ``target_scene.py``."""

from __future__ import annotations

import pytest
import torch

from simgan_hand.kinect import simulate_kinect_hands


@pytest.mark.parametrize(
    "n,seed,size,total,squares,far,probe",
    [
        (6, 1, 64, 16244.688509161155, 15518.628620506131, 10500, 0.7095980048179626),
        (3, 7, 224, 71286.7691871752, 69775.17699337949, 40340, 1.0),
    ],
)
def test_kinect_output_is_unchanged(n, seed, size, total, squares, far, probe) -> None:
    images, _ = simulate_kinect_hands(n, torch.Generator().manual_seed(seed), size=size)
    x = images.double()
    assert float(x.sum()) == pytest.approx(total, rel=1e-9)
    assert float((x * x).sum()) == pytest.approx(squares, rel=1e-9)
    assert int((x >= 1).sum()) == far
    assert float(x.flatten()[x.numel() // 3]) == pytest.approx(probe, abs=1e-7)
