"""Gaze test helpers shared by the simulator and target tests."""

from __future__ import annotations

from typing import Callable

import kornia
import pytest
import torch

from simgan_gaze.eye_model import EyeParams
from simgan_gaze.simulator import eye_layers

DarkCentroid = Callable[[torch.Tensor, EyeParams], tuple[torch.Tensor, torch.Tensor]]


def dark_centroid(images: torch.Tensor, params: EyeParams) -> tuple[torch.Tensor, torch.Tensor]:
    """Centroid (N, 2) of the k darkest pixels inside the eye opening, k = pupil area.

    Also returns (N,) bool: the pupil lies fully inside the opening (not cut by a lid), the
    only case where the dark blob's centroid should sit on the label.
    """
    n, c, h, w = images.shape
    gray = (images if c == 1 else kornia.color.rgb_to_grayscale(images))[:, 0]
    layers = eye_layers(params, h, w)
    inside = layers.opening_sd[:, 0] < -1.0
    k = layers.pupil.sum((1, 2, 3)).round().clamp_min(3).long()
    values = gray.masked_fill(~inside, float("inf")).flatten(1)
    rank = values.argsort(dim=1).argsort(dim=1)
    chosen = (rank < k[:, None]).float()
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    cx = (chosen * xs.flatten()).sum(1) / chosen.sum(1)
    cy = (chosen * ys.flatten()).sum(1) / chosen.sum(1)
    visible = (layers.pupil * (layers.opening_sd < -1.0)).sum((1, 2, 3)) / layers.pupil.sum((1, 2, 3))
    return torch.stack([cx, cy], dim=1), visible > 0.98


@pytest.fixture(name="dark_centroid")
def dark_centroid_fixture() -> DarkCentroid:
    """The pupil-centroid estimator both renderers' label tests measure pixels with."""
    return dark_centroid
