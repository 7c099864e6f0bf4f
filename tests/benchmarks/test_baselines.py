"""benchmarks.baselines: the Gaussian-noise and kornia baselines and the sigma choice."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from benchmarks import baselines
from benchmarks.baselines import choose_noise_sigma, gaussian_noise, kornia_photometric
from simgan_toolkit.errors import ConfigError
from simgan_toolkit.task import ImageSpec

SPEC = ImageSpec(channels=1, height=32, width=32)  # value range (-1, 1)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- gaussian_noise


@pytest.mark.parametrize(("sigma", "value_range", "level"), [(0.1, (-1.0, 1.0), 0.0), (0.03, (0.0, 1.0), 0.5), (2.0, (0.0, 100.0), 50.0)])
def test_gaussian_noise_adds_noise_of_std_sigma_in_image_units(sigma, value_range, level):
    spec = ImageSpec(1, 32, 32, value_range)
    images = torch.full((64, 1, 32, 32), level)  # 65536 pixels, mid-range: the clamp never bites
    noise = gaussian_noise(sigma, spec)(images, _gen()) - images
    # std of a std estimate ~ sigma / sqrt(2N) = 0.3 % of sigma; allow 3 %
    assert noise.std().item() == pytest.approx(sigma, rel=0.03)
    assert abs(noise.mean().item()) < 5 * sigma / 256  # 5 standard errors
    assert (noise != 0).float().mean() > 0.99  # every pixel gets its own draw


def test_gaussian_noise_is_clamped_to_the_value_range():
    spec = ImageSpec(1, 8, 8, (0.0, 2.0))
    images = torch.linspace(0.0, 2.0, 64 * 64).reshape(64, 1, 8, 8)
    out = gaussian_noise(3.0, spec)(images, _gen())
    assert out.min().item() == 0.0 and out.max().item() == 2.0
    assert (out == 0.0).float().mean() > 0.2 and (out == 2.0).float().mean() > 0.2  # sigma 3 >> range
    assert ((out > 0) & (out < 2)).any()


def test_gaussian_noise_is_deterministic_for_a_seeded_generator_and_keeps_dtype_and_shape():
    images = torch.zeros(4, 1, 32, 32, dtype=torch.float64)
    transform = gaussian_noise(0.05, SPEC)
    a, b, c = transform(images, _gen(3)), transform(images, _gen(3)), transform(images, _gen(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert a.dtype == torch.float64 and a.shape == images.shape
    assert torch.equal(images, torch.zeros_like(images))  # input untouched


def test_gaussian_noise_sigma_zero_is_identity_inside_the_range():
    images = torch.rand(3, 1, 32, 32) * 2 - 1
    assert torch.equal(gaussian_noise(0.0, SPEC)(images, _gen()), images)


# ---------------------------------------------------------------- kornia_photometric


@pytest.mark.parametrize("value_range", [(-1.0, 1.0), (0.0, 255.0)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kornia_photometric_keeps_shape_dtype_and_range_and_changes_images(value_range, dtype):
    low, high = value_range
    spec = ImageSpec(1, 16, 16, value_range)
    torch.manual_seed(0)
    images = (torch.rand(32, 1, 16, 16, dtype=dtype) * (high - low) + low)
    images[:, :, 0, 0], images[:, :, 0, 1] = low, high  # both ends of the range present
    out = kornia_photometric(spec)(images.clone(), _gen())
    assert out.shape == images.shape and out.dtype == dtype
    assert out.min().item() >= low and out.max().item() <= high
    changed = (out - images).abs().flatten(1).amax(1) > 1e-3 * (high - low)
    # each image is left alone with probability 0.5^5 * 0.7 ~ 2 %: most of 32 change
    assert changed.float().mean() > 0.5
    assert torch.isfinite(out).all()


def test_kornia_photometric_handles_three_channels():
    spec = ImageSpec(3, 16, 16)
    torch.manual_seed(1)
    images = torch.rand(8, 3, 16, 16) * 2 - 1
    out = kornia_photometric(spec)(images, _gen())
    assert out.shape == images.shape
    assert out.min() >= -1 and out.max() <= 1


def test_kornia_photometric_draws_from_the_global_rng():
    """Documented: the scorer seeds torch per estimator, which makes the augmentation reproducible."""
    transform = kornia_photometric(SPEC)
    images = torch.rand(16, 1, 32, 32) * 2 - 1
    torch.manual_seed(7)
    a = transform(images, _gen(0))
    torch.manual_seed(7)
    b = transform(images, _gen(1))
    assert torch.allclose(a, b)
    c = transform(images, _gen(0))  # RNG moved on
    assert not torch.allclose(a, c)


# ---------------------------------------------------------------- choose_noise_sigma


@pytest.fixture
def fake_sigma_training(monkeypatch):
    """gaussian_noise / train_one / evaluate_estimator replaced so that each candidate's
    validation score comes from a table; records what each step was given."""
    seen = {"train": [], "evaluate": []}

    monkeypatch.setattr(baselines, "gaussian_noise", lambda sigma, spec: ("noise", sigma))

    def train_one(ctx, train, seed, transform=None):
        seen["train"].append((train, seed, transform))
        return SimpleNamespace(sigma=transform[1])

    def evaluate_estimator(task, model, data):
        seen["evaluate"].append(data)
        return {task.primary_metric.name: seen["scores"][model.sigma], "other": -1.0}

    monkeypatch.setattr(baselines, "train_one", train_one)
    monkeypatch.setattr(baselines, "evaluate_estimator", evaluate_estimator)
    return seen


@pytest.mark.parametrize(
    ("lower", "scores", "expected"),
    [
        (True, {0.01: 5.0, 0.05: 3.0, 0.1: 4.0}, 0.05),
        (False, {0.01: 5.0, 0.05: 3.0, 0.1: 4.0}, 0.01),
        (True, {0.01: 9.0, 0.05: 8.0, 0.1: 7.0}, 0.1),   # best last
        (False, {0.01: 7.0, 0.05: 8.0, 0.1: 9.0}, 0.1),
        (True, {0.01: 3.0, 0.05: 3.0, 0.1: 4.0}, 0.01),  # a tie keeps the first candidate
    ],
)
def test_choose_noise_sigma_picks_the_best_validation_score(fake_ctx, fake_sigma_training, lower, scores, expected):
    fake_sigma_training["scores"] = scores
    ctx = fake_ctx(lower_is_better=lower, metric="m", seed=42, noise_sigmas=tuple(scores))
    out = choose_noise_sigma(ctx)
    assert out["sigma"] == expected
    assert out["validation"] == {str(k): v for k, v in scores.items()}
    # one model per candidate, first seed, on the base synthetic set, with that sigma's noise
    assert [(t[1], t[2]) for t in fake_sigma_training["train"]] == [(42, ("noise", s)) for s in scores]
    assert all(torch.equal(t[0].images, ctx.base_synthetic().images) for t in fake_sigma_training["train"])
    # scored on the validation split, never on the test split
    assert all(d is ctx.val for d in fake_sigma_training["evaluate"])
    assert len(ctx.said) == len(scores)


def test_choose_noise_sigma_with_one_candidate(fake_ctx, fake_sigma_training):
    fake_sigma_training["scores"] = {0.2: 1.0}
    assert choose_noise_sigma(fake_ctx(noise_sigmas=(0.2,)))["sigma"] == 0.2


def test_choose_noise_sigma_without_candidates_is_a_clear_error(fake_ctx, fake_sigma_training):
    fake_sigma_training["scores"] = {}
    with pytest.raises(ConfigError, match="lists no noise_sigmas"):
        choose_noise_sigma(fake_ctx(noise_sigmas=()))
