"""The gaze target must not change when shared code is refactored: statistics of its output
for fixed seeds, recorded at commit aed5195 before the glint and chunking helpers were shared."""

from __future__ import annotations

import pytest
import torch

from simgan_gaze.target import simulate_target_eyes


@pytest.mark.parametrize(
    "seed,rgb,total,squares,probe",
    [
        (3, False, 190.683214366436, 3213.19020743433, 0.17647063732147217),
        (4, True, -13053.190446197987, 10824.454378155773, -0.05882352590560913),
    ],
)
def test_target_output_is_unchanged(seed, rgb, total, squares, probe) -> None:
    images, _ = simulate_target_eyes(16, torch.Generator().manual_seed(seed), rgb=rgb)
    x = images.double()
    assert float(x.sum()) == pytest.approx(total, rel=1e-9)
    assert float((x * x).sum()) == pytest.approx(squares, rel=1e-9)
    assert float(x.flatten()[x.numel() // 3]) == pytest.approx(probe, abs=1e-7)
