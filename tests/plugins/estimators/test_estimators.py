"""Estimators plugin: the paper's gaze CNN and the timm option."""

from __future__ import annotations

import pytest
import torch

from simgan_estimators.gaze_cnn import GazeCNN
from simgan_estimators.timm_regressor import TimmRegressor
from simgan_toolkit.task import ImageSpec

EYE = ImageSpec(channels=1, height=35, width=55)


def test_gaze_cnn_matches_the_paper_layout():
    model = GazeCNN(EYE, output_dim=3)
    x = torch.randn(2, 1, 35, 55)
    # unpadded 3x3 convs: 35x55 -> 33x53 -> 31x51 -> 29x49; pool3 s2 -> 14x24; -> 12x22 -> 10x20; pool2 -> 5x10
    assert model.features(x).shape == (2, 192, 5, 10)
    first_fc = model.head[1]
    assert (first_fc.in_features, first_fc.out_features) == (9600, 1000)
    assert model(x).shape == (2, 3)
    widths = [m.out_channels for m in model.trunk if isinstance(m, torch.nn.Conv2d)]
    assert widths == [32, 32, 64, 80, 192]


def test_gaze_cnn_width_multiplier_and_gradients():
    model = GazeCNN(ImageSpec(3, 35, 55), output_dim=3, width_mult=0.25, hidden=16, batch_norm=True)
    x = torch.randn(4, 3, 35, 55, requires_grad=True)
    model(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.parameters())


def test_timm_regressor_builds_without_downloads():
    model = TimmRegressor(EYE, output_dim=3, backbone="resnet18")
    x = torch.randn(2, 1, 35, 55)
    assert model(x).shape == (2, 3)
    assert model.features(x).ndim == 4


def test_timm_regressor_unknown_backbone():
    with pytest.raises(RuntimeError, match="Unknown model"):
        TimmRegressor(EYE, output_dim=3, backbone="no_such_backbone_xyz")


def test_estimators_registered_by_the_estimators_plugin(registry):
    assert registry.get("estimator", "gaze_cnn").plugin == "estimators"
    assert registry.get("estimator", "timm").plugin == "estimators"


def test_hourglass_heatmap_shapes_and_intermediate_supervision():
    from simgan_estimators.hourglass import StackedHourglass

    spec = ImageSpec(1, 224, 224)
    model = StackedHourglass(spec, output_dim=14, stacks=2, width=16, depth=2, input_size=64, heatmap_size=24)
    x = torch.randn(2, 1, 224, 224)
    assert model.train()(x).shape == (2, 2, 14, 24, 24)  # every stack, for the loss
    assert model.eval()(x).shape == (2, 14, 24, 24)  # the last stack, for predictions
    assert model.features(x).shape == (2, 16, 16, 16)
    with pytest.raises(ValueError, match="divisible"):
        StackedHourglass(spec, output_dim=14, depth=4, input_size=96)


def test_paper_hourglass_gives_64x64_heatmaps():
    from simgan_estimators.hourglass import StackedHourglass

    model = StackedHourglass(ImageSpec(1, 224, 224), output_dim=14).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, 224, 224)).shape == (1, 14, 64, 64)


def test_timm_heatmap_shapes_and_gradients():
    from simgan_estimators.timm_heatmap import TimmHeatmap

    model = TimmHeatmap(ImageSpec(1, 224, 224), output_dim=14, backbone="resnet18", input_size=64, heatmap_size=24)
    x = torch.randn(2, 1, 224, 224, requires_grad=True)
    out = model(x)
    assert out.shape == (2, 14, 24, 24)
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
