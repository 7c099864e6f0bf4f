"""A timm backbone with a regression head, for any task that regresses a vector."""

from __future__ import annotations

from typing import Any

import timm
from torch import Tensor

from simgan_toolkit.estimation import Estimator


class TimmRegressor(Estimator):
    """(N, C, H, W) -> (N, output_dim) with ``timm.create_model(backbone, num_classes=output_dim)``.

    No pretrained weights are loaded (nothing is downloaded). ``features`` returns the
    backbone's final feature map via ``forward_features``.
    """

    def __init__(self, image_spec: Any, output_dim: int, backbone: str = "resnet18", **timm_kwargs: Any) -> None:
        super().__init__()
        self.backbone = timm.create_model(backbone, pretrained=False, in_chans=image_spec.channels, num_classes=output_dim, **timm_kwargs)

    def features(self, x: Tensor) -> Tensor:
        """The backbone's final feature map (N, D, h, w), before pooling and the head."""
        return self.backbone.forward_features(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.backbone(x)
