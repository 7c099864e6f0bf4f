"""Heatmap targets, decoding and PCK against hand-computed values."""

from __future__ import annotations

import pytest
import torch

from simgan_hand.heatmaps import crop_to_heatmap, gaussian_heatmaps, heatmap_to_crop, pck_curve, soft_argmax


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


@pytest.mark.parametrize("u,v", [(10.0, 5.0), (10.3, 5.6), (17.75, 13.25)])
def test_soft_argmax_recovers_subpixel_positions(u, v):
    uv = torch.tensor([[[u, v]]])
    # logits = log of a Gaussian: the softmax is that Gaussian, whose mean is its centre
    logits = gaussian_heatmaps(uv, size=24, sigma=1.0).clamp(min=1e-38).log()
    assert torch.allclose(soft_argmax(logits), uv, atol=1e-3)


def test_soft_argmax_of_a_flat_map_is_the_centre_and_has_gradients():
    logits = torch.zeros(1, 2, 8, 6, requires_grad=True)
    assert torch.allclose(soft_argmax(logits), torch.tensor([[[2.5, 3.5], [2.5, 3.5]]]))
    soft_argmax(logits)[..., 0].sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_pck_curve_hand_computed():
    errors = torch.tensor([[0.0, 1.5], [5.0, 30.0]])
    curve = pck_curve(errors, max_px=5)
    # d=0: {0}; d=1: {0}; d=2..4: {0, 1.5}; d=5: {0, 1.5, 5}
    assert curve.tolist() == pytest.approx([25.0, 25.0, 50.0, 50.0, 50.0, 75.0])
