"""How real do images look, measured without downloading anything.

- :func:`kid`: Kernel Inception Distance (Binkowski et al. 2018), the unbiased MMD^2 with the
  cubic polynomial kernel ``k(x, y) = (x.y / d + 1)^3``, averaged over random subsets, on
  features of a network trained *on the task* (an ImageNet Inception means little for 35x55
  eyes or depth maps). The extractor is named in every row.
- :func:`visual_turing_test`: fresh small CNNs trained to tell real from X; the median of their
  accuracies on held-out images (50 % = indistinguishable). The automatic version of the
  paper's user study. :func:`judge_self_check` says whether the test itself worked, from its
  results on two known answers (target vs constant images: ~100 %; target vs a second target
  sample: ~50 %).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from simgan_toolkit.networks.discriminator import group_count
from simgan_toolkit.task import ImageSpec
from simgan_toolkit.training.optim import fused_option
from simgan_toolkit.training.batches import random_crops


@torch.no_grad()
def pooled_features(extractor: nn.Module, images: Tensor, batch_size: int = 256) -> Tensor:
    """``extractor.features(images)`` averaged over space: (N, C, H, W) -> (N, D), float64."""
    extractor.eval()
    out = []
    for i in range(0, len(images), batch_size):
        f = extractor.features(images[i : i + batch_size])
        out.append((f.flatten(2).mean(-1) if f.ndim > 2 else f).double().cpu())
    return torch.cat(out)


def mmd2_unbiased(x: Tensor, y: Tensor) -> Tensor:
    """Unbiased MMD^2 between samples x (m, d) and y (n, d) with k(a, b) = (a.b / d + 1)^3."""
    d = x.shape[1]
    kxx, kyy, kxy = ((x @ x.T) / d + 1) ** 3, ((y @ y.T) / d + 1) ** 3, ((x @ y.T) / d + 1) ** 3
    m, n = len(x), len(y)
    sum_xx = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    sum_yy = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return sum_xx + sum_yy - 2 * kxy.mean()


def kid(real: Tensor, other: Tensor, *, subsets: int = 20, subset_size: int = 500, seed: int = 0) -> tuple[float, float]:
    """KID between feature sets (N, D): mean and std of MMD^2 over random subsets (x 1000 for
    readability, the usual convention). Subsets are capped at the smaller set's size."""
    if min(len(real), len(other)) < 2:
        raise ValueError(f"KID needs at least 2 samples per set, got {len(real)} and {len(other)}")
    size = min(subset_size, len(real), len(other))
    g = torch.Generator().manual_seed(seed)
    values = torch.stack([
        mmd2_unbiased(real[torch.randperm(len(real), generator=g)[:size]], other[torch.randperm(len(other), generator=g)[:size]])
        for _ in range(subsets)
    ]) * 1000
    return float(values.mean()), float(values.std()) if subsets > 1 else 0.0


class RealnessClassifier(nn.Module):
    """Three strided 3x3 convolutions, global average pooling, one logit: small enough to train
    in seconds, strong enough to spot textures a refiner failed to reproduce.

    Group norm, not batch norm: with batch norm the classifier was measured to collapse to 50 %
    on trivially separable sets (target vs constant images) for some seeds (docs/benchmarks.md).
    Batch statistics of a batch that is half constant images swamp the other half; group norm
    normalises each image on its own.
    """

    def __init__(self, channels: int, width: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 3, 2, 1), _group_norm(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, 2 * width, 3, 2, 1), _group_norm(2 * width), nn.ReLU(inplace=True),
            nn.Conv2d(2 * width, 2 * width, 3, 2, 1), _group_norm(2 * width), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, H, W) -> (N,) logits of "real"."""
        return self.net(x).squeeze(1)


def _group_norm(channels: int) -> nn.GroupNorm:
    """Group norm with up to 8 groups, as the discriminator's ``norm = "group"`` builds it."""
    return nn.GroupNorm(group_count(channels), channels)


@dataclass(frozen=True)
class TuringResult:
    """Outcome of :func:`visual_turing_test`.

    Attributes:
        accuracy: the median held-out accuracy (%) over the classifiers: the reported figure.
        accuracies: each classifier's held-out accuracy (%), the i-th trained with seed ``seed + i``.
    """

    accuracy: float
    accuracies: tuple[float, ...]

    def to_json(self) -> dict[str, Any]:
        """``{"turing_accuracy": median, "turing_accuracies": [...]}`` for results.json."""
        return {"turing_accuracy": self.accuracy, "turing_accuracies": list(self.accuracies)}


def median(values: Sequence[float]) -> float:
    """The middle value of ``values`` (the mean of the two middle ones for an even count)."""
    if not values:
        raise ValueError("the median of no values is undefined")
    return statistics.median(values)


def visual_turing_test(
    real: Tensor, other: Tensor, spec: ImageSpec, *, steps: int = 300, batch_size: int = 64, seed: int = 0,
    crop: int | None = None, classifiers: int = 3,
) -> TuringResult:
    """Median held-out accuracy (%) of ``classifiers`` fresh classifiers (seeds ``seed``,
    ``seed + 1``, ...) trained to separate ``real`` from ``other``.

    One small classifier trained for a few hundred steps is erratic from seed to seed; the
    median of several is not moved by one that failed to train. See :func:`classifier_accuracy`
    for the protocol of each.
    """
    if classifiers < 1:
        raise ValueError(f"the visual Turing test needs at least 1 classifier, got {classifiers}")
    accuracies = tuple(
        classifier_accuracy(real, other, spec, steps=steps, batch_size=batch_size, seed=seed + i, crop=crop)
        for i in range(classifiers)
    )
    return TuringResult(median(accuracies), accuracies)


def classifier_accuracy(
    real: Tensor, other: Tensor, spec: ImageSpec, *, steps: int = 300, batch_size: int = 64, seed: int = 0,
    crop: int | None = None,
) -> float:
    """Held-out accuracy (%) of one fresh classifier trained to separate ``real`` from ``other``.

    Each set is split in half: the classifier trains on the first halves (balanced batches) and
    is scored on the second halves (equal numbers of each; 50 % = chance). With ``crop`` it sees
    random ``crop`` x ``crop`` patches (fresh ones per batch, one fixed patch per test image):
    realism is local, and on 224x224 depth maps whole images cost ~10x more for the same verdict.
    """
    n = min(len(real), len(other)) // 2
    if n < 2:
        raise ValueError(f"the visual Turing test needs at least 4 images per set, got {len(real)} and {len(other)}")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = RealnessClassifier(spec.channels).to(real.device)
    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=1e-3, **fused_option(params))
    half = max(1, min(batch_size // 2, n))  # no bigger than the training half
    model.train()
    for _ in range(steps):
        i, j = torch.randint(n, (half,), generator=g), torch.randint(n, (half,), generator=g)
        x = torch.cat([real[:n][i.to(real.device)], other[:n][j.to(other.device)]])
        if crop:
            x = random_crops(x, crop, g)
        y = torch.cat([torch.ones(half), torch.zeros(half)]).to(x.device)
        loss = F.binary_cross_entropy_with_logits(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        test_real, test_other = real[n : 2 * n], other[n : 2 * n]
        if crop:
            test_real, test_other = random_crops(test_real, crop, g), random_crops(test_other, crop, g)
        correct = (model(test_real) > 0).sum() + (model(test_other) <= 0).sum()
    return float(correct) / (2 * n) * 100


# ---------------------------------------------------------------- self-check

#: What the self-check expects (held-out accuracy, %, inclusive bounds): target images against
#: constant images are trivially told apart; two samples of the target are not told apart at all.
SELF_CHECK_BOUNDS: dict[str, tuple[float, float]] = {"constant": (90.0, 100.0), "second_target": (40.0, 60.0)}


def constant_images(images: Tensor) -> Tensor:
    """Images of one flat value per channel, that channel's mean over ``images``: (N, C, H, W)
    -> same shape. Same brightness as the target on average, no structure or texture at all."""
    return images.mean(dim=(0, 2, 3), keepdim=True).expand_as(images).contiguous()


def judge_self_check(constant: TuringResult, second_target: TuringResult) -> dict[str, Any]:
    """Whether the test itself works, from its results on two known answers.

    ``constant``: target vs :func:`constant_images` (must be ~100 %); ``second_target``: target
    vs a second labelled-target sample (must be ~50 %). Returns the medians, the individual
    accuracies, the bounds of :data:`SELF_CHECK_BOUNDS` and ``passed`` (both medians within).
    """
    out: dict[str, Any] = {"bounds": {k: list(v) for k, v in SELF_CHECK_BOUNDS.items()}}
    passed = True
    for name, result in (("constant", constant), ("second_target", second_target)):
        low, high = SELF_CHECK_BOUNDS[name]
        out[name] = result.to_json()
        passed = passed and low <= result.accuracy <= high
    out["passed"] = passed
    return out
