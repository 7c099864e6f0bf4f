"""Joint heatmaps from any timm backbone (no pretrained weights: nothing is downloaded)."""

from __future__ import annotations

from typing import Any

import timm
import torch.nn.functional as F
from torch import Tensor, nn

from simgan_toolkit.estimation import Estimator

from simgan_estimators.inputs import resize_square


class TimmHeatmap(Estimator):
    """(N, C, H, W) -> heatmaps (N, output_dim, heatmap_size, heatmap_size).

    ``timm.create_model(backbone, features_only=True, out_indices=(feature_index,))`` gives a
    feature map (stride 8 for ``feature_index=2`` on ResNets); a 3x3 conv head predicts one map
    per joint, bilinearly resized to ``heatmap_size``.
    """

    def __init__(
        self, image_spec: Any, output_dim: int, backbone: str = "resnet18", feature_index: int = 2,
        input_size: int = 256, heatmap_size: int = 64, **timm_kwargs: Any,
    ) -> None:
        super().__init__()
        self.input_size, self.heatmap_size = input_size, heatmap_size
        self.backbone = timm.create_model(
            backbone, pretrained=False, features_only=True, out_indices=(feature_index,), in_chans=image_spec.channels, **timm_kwargs
        )
        channels = self.backbone.feature_info.channels()[-1]
        self.head = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(channels, output_dim, 1))

    def resize_input(self, x: Tensor) -> Tensor:
        """(N, C, H, W) -> (N, C, input_size, input_size), antialiased; a no-op at that size."""
        return resize_square(x, self.input_size)

    def features(self, x: Tensor) -> Tensor:
        """The backbone's feature map at ``feature_index``: (N, D, input_size/stride, input_size/stride)."""
        return self.backbone(self.resize_input(x))[-1]

    def forward(self, x: Tensor) -> Tensor:
        heatmaps = self.head(self.features(x))
        return F.interpolate(heatmaps, size=(self.heatmap_size, self.heatmap_size), mode="bilinear", align_corners=False)
