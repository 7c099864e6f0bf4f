"""Heatmap targets, decoding and PCK against hand-computed values."""

from __future__ import annotations

import pytest
import torch

from simgan_hand.heatmaps import crop_to_heatmap, decode_heatmaps, gaussian_heatmaps, heatmap_to_crop, pck_curve


def test_coordinate_maps_are_inverse_and_pixel_centred():
    uv = torch.tensor([[0.0, 223.0], [111.5, 50.0]])
    assert torch.allclose(heatmap_to_crop(crop_to_heatmap(uv, 224, 64), 224, 64), uv, atol=1e-5)
    # the centre of the crop maps to the centre of the heatmap
    assert torch.allclose(crop_to_heatmap(torch.tensor([111.5, 111.5]), 224, 64), torch.tensor([31.5, 31.5]))
    # pixel 0 of a 4x-downsampled map covers crop pixels 0..3, whose centre is 1.5
    assert torch.allclose(heatmap_to_crop(torch.tensor([0.0, 0.0]), 8, 2), torch.tensor([1.5, 1.5]))


def test_gaussian_heatmap_values():
    h = gaussian_heatmaps(torch.tensor([[[2.0, 1.0]]]), size=5, sigma=1.0)
    assert h.shape == (1, 1, 5, 5)
    assert h[0, 0, 1, 2] == pytest.approx(1.0)
    assert h[0, 0, 1, 3] == pytest.approx(torch.exp(torch.tensor(-0.5)).item())
    assert h[0, 0, 3, 2] == pytest.approx(torch.exp(torch.tensor(-2.0)).item())


@pytest.mark.parametrize("u,v", [(10.0, 5.0), (10.3, 5.6), (0.0, 23.0), (17.75, 3.25)])
def test_decoding_recovers_subpixel_positions(u, v):
    uv = torch.tensor([[[u, v]]])
    decoded = decode_heatmaps(gaussian_heatmaps(uv, size=24, sigma=1.0))
    # the log of a Gaussian is a parabola: the vertex fit is exact (border pixels keep the arg-max)
    assert torch.allclose(decoded, uv, atol=1e-3)


def test_decoding_handles_several_joints_and_images():
    uv = torch.rand(3, 4, 2) * 20 + 2
    assert torch.allclose(decode_heatmaps(gaussian_heatmaps(uv, 24, 1.5)), uv, atol=1e-3)


def test_decoding_ignores_flat_neighbourhoods():
    heatmaps = torch.zeros(1, 1, 8, 8)
    heatmaps[0, 0, 3, 5] = 1.0  # a single spike: neighbours at the floor, the vertex stays put
    assert torch.allclose(decode_heatmaps(heatmaps), torch.tensor([[[5.0, 3.0]]]), atol=1e-6)


def test_pck_curve_hand_computed():
    errors = torch.tensor([[0.0, 1.5], [5.0, 30.0]])
    curve = pck_curve(errors, max_px=5)
    # d=0: {0}; d=1: {0}; d=2..4: {0, 1.5}; d=5: {0, 1.5, 5}
    assert curve.tolist() == pytest.approx([25.0, 25.0, 50.0, 50.0, 50.0, 75.0])
