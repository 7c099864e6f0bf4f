"""Label-free baselines that perturb synthetic images instead of refining them.

- :func:`gaussian_noise`: additive white noise of one sigma, chosen on the validation split by
  :func:`choose_noise_sigma` (never on the test set).
- :func:`kornia_photometric`: a generic photometric and sensor augmentation built from
  kornia's augmentation modules (blur, noise, brightness, contrast, gamma, small erasures), the
  kind of domain randomisation people try before a GAN.

Both are applied to every training batch (fresh randomness each time), after the task's own
geometric augmentation.
"""

from __future__ import annotations

from typing import Any

import kornia.augmentation as K
import torch
from torch import Tensor

from benchmarks.context import BenchContext
from benchmarks.scoring import ImageTransform, better, train_one
from simgan_toolkit.errors import ConfigError
from simgan_toolkit.estimation import evaluate_estimator
from simgan_toolkit.task import ImageSpec


def gaussian_noise(sigma: float, spec: ImageSpec) -> ImageTransform:
    """``x + sigma * N(0, 1)`` per pixel, clipped to the image range; sigma in image units."""
    low, high = spec.value_range

    def transform(images: Tensor, generator: torch.Generator) -> Tensor:
        noise = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
        return (images + sigma * noise).clamp(low, high)

    return transform


def kornia_photometric(spec: ImageSpec) -> ImageTransform:
    """A kornia augmentation stack applied in [0, 1] space and mapped back to the image range.

    Gaussian blur (p 0.5), Gaussian noise std 0.02 (p 0.5), brightness and contrast 0.85-1.15,
    gamma 0.8-1.25 (p 0.5 each), and 1-3 % erasures set to the range maximum (p 0.3; for depth
    that is "no reading", for intensity a specular patch). Kornia draws from torch's global RNG,
    which the scorer seeds per estimator.
    """
    low, high = spec.value_range
    stack = K.AugmentationSequential(
        K.RandomGaussianBlur((5, 5), (0.1, 1.5), p=0.5),
        K.RandomGaussianNoise(std=0.02, p=0.5),
        K.RandomBrightness((0.85, 1.15), p=0.5),
        K.RandomContrast((0.85, 1.15), p=0.5),
        K.RandomGamma((0.8, 1.25), p=0.5),
        K.RandomErasing(scale=(0.01, 0.03), value=1.0, p=0.3),
    )

    def transform(images: Tensor, generator: torch.Generator) -> Tensor:
        unit = (images - low) / (high - low)
        return (stack(unit).clamp(0, 1) * (high - low) + low).to(images.dtype)

    return transform


def choose_noise_sigma(ctx: BenchContext) -> dict[str, Any]:
    """Train one estimator (first seed) per candidate sigma on the base synthetic set and keep
    the sigma whose primary metric is best on the *validation* split.

    Returns ``{"sigma": best, "validation": {sigma: metric}}``.
    """
    if not ctx.suite.noise_sigmas:
        raise ConfigError(f"suite {ctx.suite.name!r} lists no noise_sigmas for the Gaussian-noise baseline")
    metric = ctx.task.primary_metric.name
    scores: dict[float, float] = {}
    for sigma in ctx.suite.noise_sigmas:
        model = train_one(ctx, ctx.base_synthetic(), ctx.config.seed, gaussian_noise(sigma, ctx.task.image_spec))
        scores[sigma] = evaluate_estimator(ctx.task, model, ctx.val)[metric]
        ctx.say(f"  noise sigma {sigma}: validation {metric} {scores[sigma]:.3f}")
    best = next(iter(scores))
    for sigma, value in scores.items():
        if better(ctx, value, scores[best]):
            best = sigma
    return {"sigma": best, "validation": {str(k): v for k, v in scores.items()}}
