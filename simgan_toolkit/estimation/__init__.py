"""Downstream estimators: training on a labelled image set and scoring on the target test set."""

from simgan_toolkit.estimation.base import Estimator
from simgan_toolkit.estimation.training import (
    ImageTransform,
    build_estimator,
    estimator_options,
    evaluate_estimator,
    predict,
    save_estimator,
    train_estimator,
)

__all__ = ["Estimator", "ImageTransform", "build_estimator", "estimator_options", "evaluate_estimator", "predict", "save_estimator", "train_estimator"]
