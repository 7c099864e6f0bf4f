"""The gaze task: 35x55 eye images, gaze-vector regression, pupil-centre preservation.

Synthetic images come from the clean simulator (:mod:`simgan_gaze.simulator`); "real" images
from the separate target generator (:mod:`simgan_gaze.target`), which adds what the
simulator lacks. Target labels are used only to score (and train the oracle) estimators,
never by the refiner.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from simgan_gaze.eye_model import angular_error_degrees
from simgan_gaze.label_check import pupil_shift
from simgan_gaze.simulator import simulate_eyes
from simgan_gaze.target import simulate_target_eyes
from simgan_toolkit.task import ImageSource, ImageSpec, LabelledImages, MetricSpec, Task, seeded_generator

HEIGHT, WIDTH = 35, 55
WITHIN_DEGREES = 7.0

#: A target ("real") camera model: ``(n, generator, *, rgb, device) -> (images, labels)``.
TargetEyes = Callable[..., tuple[Tensor, dict[str, Tensor]]]


def eye_camera(camera: TargetEyes, rgb: bool) -> ImageSource:
    """``camera`` (called like :func:`simulate_target_eyes`) as a task's target image source:
    (n, 1 or 3, 35, 55) eyes with their ``gaze``, ``pitch_yaw`` and ``pupil_centre`` labels.
    A partial of a module function, not a closure, so that a task holding it can be pickled."""
    return partial(_draw_eyes, camera, rgb)


def _draw_eyes(camera: TargetEyes, rgb: bool, n: int, generator: torch.Generator, device: torch.device) -> LabelledImages:
    images, labels = camera(n, generator, rgb=rgb, device=device)
    return LabelledImages(images, labels)

#: The paper's eye discriminator (Shrivastava et al. 2017, appendix; 35x55 input -> 7x12 patch map);
#: profiles scale its width.
_EYE_DISCRIMINATOR = ["conv3s2-96", "conv3s2-64", "pool3s1", "conv3-32", "conv1-32", "conv1-2"]


class GazeTask(Task):
    """Eye gaze estimation from 35x55 eye crops (grayscale as in the paper, or RGB).

    The task is named ``gaze`` (grayscale) or ``gaze_rgb``. The same task against another
    target camera is ``GazeTask(rgb).derive(name=..., target=eye_camera(camera, rgb))``.
    """

    def __init__(self, rgb: bool = False) -> None:
        self.rgb = rgb
        self.name = "gaze_rgb" if rgb else "gaze"
        self._target = eye_camera(simulate_target_eyes, rgb)

    @property
    def image_spec(self) -> ImageSpec:
        return ImageSpec(channels=3 if self.rgb else 1, height=HEIGHT, width=WIDTH)

    def synthetic(self, n: int, seed: int, device: torch.device) -> LabelledImages:
        images, labels = simulate_eyes(n, seeded_generator(seed, device), rgb=self.rgb, device=device)
        return LabelledImages(images, labels)

    def target(self, n: int, seed: int, device: torch.device) -> Tensor:
        return self.target_labelled(n, seed, device).images

    def target_labelled(self, n: int, seed: int, device: torch.device) -> LabelledImages:
        return self._target(n, seeded_generator(seed, device), device)

    def profiles(self) -> dict[str, dict[str, Any]]:
        return gaze_profiles()

    # --- estimator ------------------------------------------------------------------------
    @property
    def estimator_output_dim(self) -> int:
        return 3

    def estimator_loss(self, prediction: Tensor, labels: dict[str, Tensor]) -> Tensor:
        """L2 loss on the 3D gaze vector (paper)."""
        return F.mse_loss(prediction, labels["gaze"])

    def estimator_metrics(self, prediction: Tensor, labels: dict[str, Tensor]) -> dict[str, float]:
        errors = angular_error_degrees(prediction.float(), labels["gaze"].float())
        return {
            "angular_error_deg": float(errors.mean()),
            "within_7deg_pct": float((errors <= WITHIN_DEGREES).float().mean() * 100),
        }

    @property
    def estimator_labels(self) -> dict[str, tuple[int, ...]]:
        """The estimator regresses the 3D gaze vector."""
        return {"gaze": (3,)}

    @property
    def primary_metric(self) -> MetricSpec:
        return MetricSpec("angular_error_deg", lower_is_better=True, unit="deg")

    def primary_metric_per_image(self, prediction: Tensor, labels: dict[str, Tensor]) -> Tensor:
        """(N,) each image's angular error in degrees (their mean is ``angular_error_deg``)."""
        return angular_error_degrees(prediction.float(), labels["gaze"].float())

    # --- label preservation ---------------------------------------------------------------
    def label_preservation(self, synthetic: LabelledImages, refined: Tensor) -> dict[str, float]:
        shift = pupil_shift(synthetic.images, refined, synthetic.labels["pupil_centre"])
        return {
            "pupil_shift_px_mean": float(shift.mean()),
            "pupil_shift_px_std": float(shift.std()),
            "mean_abs_pixel_change": float((refined - synthetic.images).abs().mean()),
        }


def gaze_profiles() -> dict[str, dict[str, Any]]:
    """smoke (seconds, for tests), default (under 3 minutes on a 2-core CPU), paper (GPU)."""
    return {
        "smoke": {
            "refiner": {"width": 8, "blocks": 1, "output": "residual"},
            "discriminator": {"layers": _EYE_DISCRIMINATOR, "width_mult": 0.25},
            "train": {
                "batch_size": 8, "refiner_pretrain_steps": 3, "discriminator_pretrain_steps": 2, "steps": 4,
                "history_size": 64, "log_every": 1, "sample_every": 2, "checkpoint_every": 2,
            },
            "data": {"n_synthetic": 64, "n_target": 64, "n_test": 32, "n_target_train": 64},
            "estimator": {"name": "gaze_cnn", "options": {"width_mult": 0.25, "hidden": 32}, "steps": 5, "batch_size": 16},
        },
        "default": {
            # Replicate padding and the weight average remove the frames and blotches that the
            # last iterate of a short run carried; 1000 iterations (not 250) let the refiner
            # learn lid shading and lash lines (docs/gaze.md, "What each training change bought").
            "refiner": {"width": 16, "blocks": 4, "output": "residual", "noise_channels": 1, "padding_mode": "replicate"},
            "discriminator": {"layers": _EYE_DISCRIMINATOR, "width_mult": 0.5},
            "train": {
                "batch_size": 32, "refiner_pretrain_steps": 30, "discriminator_pretrain_steps": 100, "steps": 1000,
                "k_g": 1, "k_d": 1, "lam": 0.5, "history_size": 3200, "refiner_ema": 0.99,
                "refiner_optimizer": {"name": "adam", "lr": 1e-3},
                "discriminator_optimizer": {"name": "adam", "lr": 1e-3},
                "log_every": 10, "sample_every": 50, "checkpoint_every": 50,
            },
            "data": {"n_synthetic": 6000, "n_target": 4000, "n_test": 1000, "n_target_train": 6000},
            "estimator": {"name": "gaze_cnn", "options": {"width_mult": 0.25, "hidden": 128, "batch_norm": True}, "steps": 300, "batch_size": 64},
        },
        "paper": {
            "refiner": {"width": 64, "blocks": 4, "kernel_size": 3, "output": "tanh"},
            "discriminator": {"layers": _EYE_DISCRIMINATOR, "width_mult": 1.0},
            "train": {
                "batch_size": 512, "refiner_pretrain_steps": 1000, "discriminator_pretrain_steps": 200, "steps": 10000,
                "k_g": 2, "k_d": 1, "history_size": 512 * 100,
                "refiner_optimizer": {"name": "sgd", "lr": 1e-3},
                "discriminator_optimizer": {"name": "sgd", "lr": 1e-3},
                "log_every": 50, "sample_every": 500, "checkpoint_every": 500,
            },
            "data": {"n_synthetic": 200000, "n_target": 200000, "n_test": 10000, "n_target_train": 200000},
            "estimator": {"name": "gaze_cnn", "options": {"width_mult": 1.0, "hidden": 1000}, "steps": 20000, "batch_size": 512},
        },
    }
