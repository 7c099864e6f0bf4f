"""Entry-point module of the estimators plugin: registers factories only (imports stay cheap)."""

from __future__ import annotations

from typing import Any

from simgan_toolkit.plugin import Register, hookimpl


def _gaze_cnn(**kwargs: Any) -> Any:
    from simgan_estimators.gaze_cnn import GazeCNN

    return GazeCNN(**kwargs)


def _timm_regressor(**kwargs: Any) -> Any:
    from simgan_estimators.timm_regressor import TimmRegressor

    return TimmRegressor(**kwargs)


def _hourglass(**kwargs: Any) -> Any:
    from simgan_estimators.hourglass import StackedHourglass

    return StackedHourglass(**kwargs)


def _timm_heatmap(**kwargs: Any) -> Any:
    from simgan_estimators.timm_heatmap import TimmHeatmap

    return TimmHeatmap(**kwargs)


@hookimpl
def simgan_register_estimators(register: Register) -> None:
    register.estimator("gaze_cnn", _gaze_cnn, description="paper's gaze CNN: conv 32-32-64, pool, 80-192, pool, FC, FC")
    register.estimator("timm", _timm_regressor, description="any timm backbone (no pretrained weights) with a linear head")
    register.estimator("hourglass", _hourglass, description="stacked hourglass joint heatmaps (paper's hand estimator)")
    register.estimator("timm_heatmap", _timm_heatmap, description="joint heatmaps from a timm backbone's stride-8 features")
