"""benchmarks.realism: unbiased MMD^2 by hand, KID, the visual Turing test and pooled features."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from benchmarks.realism import (
    RealnessClassifier,
    TuringResult,
    classifier_accuracy,
    constant_images,
    judge_self_check,
    kid,
    median,
    mmd2_unbiased,
    pooled_features,
    visual_turing_test,
)
from simgan_toolkit.task import ImageSpec


def _t(rows):
    return torch.tensor(rows, dtype=torch.float64)


# ---------------------------------------------------------------- mmd2_unbiased


def test_mmd2_unbiased_1d_by_hand():
    # d = 1, k(a, b) = (a b + 1)^3.  x = {0, 1}, y = {2, 3}.
    # xx off-diagonal: k(0,1) = 1 (twice)                 -> 2 / (2*1) = 1
    # yy off-diagonal: k(2,3) = 7^3 = 343 (twice)          -> 686 / 2 = 343
    # xy: k(0,2)=1, k(0,3)=1, k(1,2)=27, k(1,3)=64 = 93    -> mean 93/4 = 23.25
    # MMD^2 = 1 + 343 - 2 * 23.25 = 297.5
    assert mmd2_unbiased(_t([[0.0], [1.0]]), _t([[2.0], [3.0]])).item() == pytest.approx(297.5)


def test_mmd2_unbiased_2d_unequal_sizes_by_hand():
    # d = 2, k(a, b) = (a.b / 2 + 1)^3.  x = {(1,0), (0,1)}, y = {(1,1), (0,0), (2,0)}.
    # xx: x1.x2 = 0 -> 1, twice                            -> 2 / (2*1) = 1
    # yy: y1.y2 = 0 -> 1, y1.y3 = 2 -> 8, y2.y3 = 0 -> 1   -> 2 * 10 / (3*2) = 10/3
    # xy: x1: 1 -> 1.5^3 = 3.375, 0 -> 1, 2 -> 8; x2: 1 -> 3.375, 0 -> 1, 0 -> 1; sum 17.75 -> mean 17.75/6
    # MMD^2 = 1 + 10/3 - 2 * 17.75 / 6 = -1.58333...  (unbiased: it can be negative)
    value = mmd2_unbiased(_t([[1, 0], [0, 1]]), _t([[1, 1], [0, 0], [2, 0]])).item()
    assert value == pytest.approx(1 + 10 / 3 - 2 * 17.75 / 6)
    assert value < 0


def test_mmd2_unbiased_excludes_the_diagonal():
    # identical two-point samples: biased MMD^2 would be 0; the unbiased one is
    # k(0,1) + k(0,1) - 2 * mean(k(0,0), k(0,1), k(1,0), k(1,1)) = 1 + 1 - 2 * (1 + 1 + 1 + 8) / 4 = -3.5
    x = _t([[0.0], [1.0]])
    assert mmd2_unbiased(x, x.clone()).item() == pytest.approx(-3.5)


def test_mmd2_unbiased_is_symmetric():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(7, 3, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g, dtype=torch.float64) + 0.5
    assert mmd2_unbiased(x, y).item() == pytest.approx(mmd2_unbiased(y, x).item())


# ---------------------------------------------------------------- kid


def test_kid_with_subsets_capped_at_both_sets_is_1000_times_mmd2():
    # subset_size 100 is capped at 3 = both set sizes: every subset is a permutation of the whole
    # sets, MMD^2 is permutation invariant, so every subset gives the same value and std is 0
    x, y = _t([[0.0], [1.0], [0.5]]), _t([[2.0], [3.0], [2.5]])
    mean, std = kid(x, y, subsets=4, subset_size=100)
    assert mean == pytest.approx(1000 * mmd2_unbiased(x, y).item())
    assert std == pytest.approx(0.0, abs=1e-6)


def test_kid_caps_subsets_at_the_smaller_set():
    x, y = _t([[0.0], [1.0], [0.5]]), _t([[2.0], [3.0], [2.5], [9.0], [-4.0]])
    mean, std = kid(x, y, subsets=6, subset_size=100, seed=0)  # subsets of y of size 3
    g = torch.Generator().manual_seed(0)
    expected = []
    for _ in range(6):
        i, j = torch.randperm(3, generator=g)[:3], torch.randperm(5, generator=g)[:3]
        expected.append(1000 * mmd2_unbiased(x[i], y[j]).item())
    assert mean == pytest.approx(sum(expected) / 6)
    assert std == pytest.approx(torch.tensor(expected).std().item())
    assert std > 0


def test_kid_one_subset_has_zero_std():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(20, 4, generator=g), torch.randn(20, 4, generator=g)
    assert kid(x, y, subsets=1, subset_size=10)[1] == 0.0


def test_kid_near_zero_for_one_distribution_and_large_for_shifted_ones():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(500, 8, generator=g, dtype=torch.float64), torch.randn(500, 8, generator=g, dtype=torch.float64)
    same, _ = kid(x, y, subsets=10, subset_size=200)
    shifted, _ = kid(x, y + 1.0, subsets=10, subset_size=200)
    scaled, _ = kid(x, 2 * y, subsets=10, subset_size=200)
    # measured: |same| ~ 5-20 (noise), shifted ~ 8000, scaled ~ 3400
    assert abs(same) < 60
    assert shifted > 2000 and scaled > 1000
    assert shifted > 50 * abs(same)


def test_kid_is_deterministic_for_a_seed():
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(50, 4, generator=g), torch.randn(60, 4, generator=g)
    assert kid(x, y, subsets=5, subset_size=20, seed=3) == kid(x, y, subsets=5, subset_size=20, seed=3)
    assert kid(x, y, subsets=5, subset_size=20, seed=3) != kid(x, y, subsets=5, subset_size=20, seed=4)


@pytest.mark.parametrize(("n_real", "n_other"), [(1, 10), (10, 1), (0, 5)])
def test_kid_needs_two_samples_per_set(n_real, n_other):
    with pytest.raises(ValueError, match="at least 2"):
        kid(torch.randn(n_real, 3), torch.randn(n_other, 3))


def test_kid_with_two_samples_each_works():
    mean, _ = kid(_t([[0.0], [1.0]]), _t([[2.0], [3.0]]), subsets=2)
    assert mean == pytest.approx(297.5 * 1000)


# ---------------------------------------------------------------- visual_turing_test

SPEC8 = ImageSpec(channels=1, height=8, width=8)


def _noise(n: int, seed: int) -> torch.Tensor:
    """``n`` 1x8x8 images of clipped Gaussian noise, std 0.3."""
    g = torch.Generator().manual_seed(seed)
    return (0.3 * torch.randn(n, 1, 8, 8, generator=g)).clamp(-1, 1)


def test_visual_turing_test_separates_trivially_different_sets():
    g = torch.Generator().manual_seed(0)
    bright = 0.8 + 0.05 * torch.randn(200, 1, 8, 8, generator=g)
    dark = -0.8 + 0.05 * torch.randn(200, 1, 8, 8, generator=g)
    assert visual_turing_test(bright, dark, SPEC8, steps=50).accuracy >= 95.0


@pytest.mark.parametrize("seed", range(5))
def test_one_classifier_tells_noise_from_constant_images_for_every_seed(seed):
    """The case batch norm collapsed on (docs/benchmarks.md): target images against flat images
    of the target's mean value. Texture is the only difference, and it is total: >= 95 %
    (measured 100 % for all five seeds at 30 and 50 steps)."""
    noise = _noise(200, 7)
    assert classifier_accuracy(noise, constant_images(noise), SPEC8, steps=30, seed=seed) >= 95.0


@pytest.mark.parametrize("seed", [0, 1])
def test_visual_turing_test_is_near_chance_for_one_distribution(seed):
    a, b = _noise(200, 100 + seed), _noise(200, 200 + seed)
    result = visual_turing_test(a, b, SPEC8, steps=30, seed=seed)
    # 100 held-out images per class: chance is 50 % with a standard deviation of about 3.5 %
    assert 35.0 <= result.accuracy <= 65.0  # measured 47-56 %
    assert all(35.0 <= a <= 65.0 for a in result.accuracies)


def test_visual_turing_test_reports_the_median_of_its_classifiers_seeds():
    g = torch.Generator().manual_seed(3)
    a, b = torch.rand(10, 1, 8, 8, generator=g), -torch.rand(13, 1, 8, 8, generator=g)
    result = visual_turing_test(a, b, SPEC8, steps=3, seed=4, classifiers=3)
    each = [classifier_accuracy(a, b, SPEC8, steps=3, seed=s) for s in (4, 5, 6)]
    assert result.accuracies == tuple(each)
    assert result.accuracy == sorted(each)[1]
    assert result.to_json() == {"turing_accuracy": result.accuracy, "turing_accuracies": each}
    assert visual_turing_test(a, b, SPEC8, steps=3, seed=4, classifiers=1).accuracies == (each[0],)


def test_visual_turing_test_is_deterministic_and_on_the_held_out_halves():
    g = torch.Generator().manual_seed(3)
    a, b = torch.rand(10, 1, 8, 8, generator=g), -torch.rand(13, 1, 8, 8, generator=g)
    first = visual_turing_test(a, b, SPEC8, steps=5, seed=1)
    assert first == visual_turing_test(a, b, SPEC8, steps=5, seed=1)
    # n = min(10, 13) // 2 = 5 per class held out: each accuracy is a multiple of 1/10
    assert all(round(x / 10, 6) == round(x / 10) for x in first.accuracies)


@pytest.mark.parametrize(("n_real", "n_other"), [(3, 100), (100, 3), (1, 1)])
def test_visual_turing_test_needs_four_images_per_set(n_real, n_other):
    with pytest.raises(ValueError, match="at least 4 images per set, got"):
        visual_turing_test(torch.zeros(n_real, 1, 8, 8), torch.zeros(n_other, 1, 8, 8), SPEC8, steps=1)


@pytest.mark.parametrize("classifiers", [0, -1])
def test_visual_turing_test_needs_a_classifier(classifiers):
    with pytest.raises(ValueError, match="at least 1 classifier"):
        visual_turing_test(torch.zeros(8, 1, 8, 8), torch.zeros(8, 1, 8, 8), SPEC8, steps=1, classifiers=classifiers)


def test_visual_turing_test_with_four_images_each_works():
    result = visual_turing_test(torch.ones(4, 1, 8, 8), -torch.ones(4, 1, 8, 8), SPEC8, steps=1)
    assert set(result.accuracies) <= {0.0, 25.0, 50.0, 75.0, 100.0}


def test_realness_classifier_outputs_one_logit_per_image_and_has_no_batch_norm():
    model = RealnessClassifier(3, width=4)
    assert model(torch.zeros(5, 3, 35, 55)).shape == (5,)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    # group norm with 4 groups of the 4 first maps, 8 of the 8 later ones
    assert [m.num_groups for m in model.modules() if isinstance(m, nn.GroupNorm)] == [4, 8, 8]


def test_realness_classifier_output_of_an_image_does_not_depend_on_its_batch():
    """Group norm normalises each image on its own, in training mode too (batch norm did not)."""
    model = RealnessClassifier(1, width=8).train()
    x = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(model(x)[:2], model(x[:2]), atol=1e-6)


def test_classifier_adam_is_fused_on_the_cpu(monkeypatch):
    """Built through simgan_toolkit.training.optim.fused_option like the toolkit's own optimisers."""
    seen = []
    real_adam = torch.optim.Adam

    def spy(params, **kwargs):
        seen.append(kwargs)
        return real_adam(params, **kwargs)

    monkeypatch.setattr(torch.optim, "Adam", spy)
    classifier_accuracy(torch.zeros(4, 1, 8, 8), torch.ones(4, 1, 8, 8), SPEC8, steps=1)
    assert seen == [{"lr": 1e-3, "fused": True}]


# ---------------------------------------------------------------- median and the self-check


@pytest.mark.parametrize(("values", "expected"), [
    ([3.0], 3.0),
    ([50.0, 100.0, 75.0], 75.0),          # odd count: the middle one after sorting
    ([100.0, 50.0, 50.0, 99.0, 51.0], 51.0),
    ([4.0, 1.0], 2.5),                    # even count: the mean of the two middle ones
    ([10.0, 40.0, 20.0, 30.0], 25.0),
    ([50.0, 50.0, 100.0], 50.0),          # one collapsed classifier does not move it
])
def test_median_by_hand(values, expected):
    assert median(values) == expected


def test_median_of_nothing_is_an_error():
    with pytest.raises(ValueError, match="no values"):
        median([])


def test_constant_images_are_each_channels_mean():
    images = torch.tensor([[[[0.0, 2.0]], [[1.0, 1.0]]], [[[4.0, 6.0]], [[3.0, 3.0]]]])  # (2, 2, 1, 2)
    flat = constant_images(images)
    # channel 0: mean(0, 2, 4, 6) = 3; channel 1: mean(1, 1, 3, 3) = 2
    assert flat.shape == images.shape
    assert flat[:, 0].unique().tolist() == [3.0] and flat[:, 1].unique().tolist() == [2.0]


def _tr(*accuracies):
    return TuringResult(median(accuracies), accuracies)


@pytest.mark.parametrize(("constant", "second", "passed"), [
    (_tr(100.0, 99.0, 100.0), _tr(48.0, 52.0, 50.0), True),
    (_tr(90.0, 50.0, 95.0), _tr(40.0, 60.0, 61.0), True),    # bounds are inclusive; medians 90 and 60
    (_tr(50.0, 89.5, 100.0), _tr(50.0, 50.0, 50.0), False),  # median 89.5: the test failed to separate
    (_tr(100.0), _tr(70.0), False),                          # told two target samples apart
    (_tr(100.0), _tr(39.9), False),
])
def test_judge_self_check(constant, second, passed):
    check = judge_self_check(constant, second)
    assert check["passed"] is passed
    assert check["constant"] == constant.to_json() and check["second_target"] == second.to_json()
    assert check["bounds"] == {"constant": [90.0, 100.0], "second_target": [40.0, 60.0]}


# ---------------------------------------------------------------- pooled_features


class _Fake(nn.Module):
    """``features(x)`` = (x, 2x) stacked as channels: (N, 1, H, W) -> (N, 2, H, W)."""

    def __init__(self, flat: bool = False) -> None:
        super().__init__()
        self.flat = flat
        self.batches: list[int] = []

    def features(self, x):
        self.batches.append(len(x))
        f = torch.cat([x, 2 * x], dim=1)
        return f.flatten(1) if self.flat else f


def test_pooled_features_average_over_space_by_hand():
    images = torch.tensor([[[[1.0, 2.0], [3.0, 6.0]]], [[[0.0, 0.0], [0.0, -4.0]]], [[[5.0, 5.0], [5.0, 5.0]]]])
    extractor = _Fake().train()
    out = pooled_features(extractor, images, batch_size=2)
    # image 0: mean(1, 2, 3, 6) = 3 -> (3, 6); image 1: mean = -1 -> (-1, -2); image 2: 5 -> (5, 10)
    assert out.dtype == torch.float64 and out.shape == (3, 2)
    assert out.tolist() == [[3.0, 6.0], [-1.0, -2.0], [5.0, 10.0]]
    assert extractor.batches == [2, 1]  # batched
    assert not extractor.training  # features are taken in eval mode


def test_pooled_features_passes_flat_features_through():
    images = torch.arange(8, dtype=torch.float32).reshape(2, 1, 2, 2)
    out = pooled_features(_Fake(flat=True), images)
    assert out.shape == (2, 8)
    assert out[0].tolist() == [0.0, 1.0, 2.0, 3.0, 0.0, 2.0, 4.0, 6.0]


def test_pooled_features_take_no_gradient():
    images = torch.ones(2, 1, 2, 2, requires_grad=True)
    assert not pooled_features(_Fake(), images).requires_grad


def test_visual_turing_test_on_patches_separates_and_checks_the_size():
    """With ``crop`` the classifier sees 8x8 patches of 24x24 images: a local texture
    difference (noise of std 0.5 vs 0.05) is still told apart; a patch larger than the image
    is a clear error."""
    from simgan_toolkit.task import ImageSpec

    g = torch.Generator().manual_seed(0)
    real = torch.randn(64, 1, 24, 24, generator=g) * 0.5
    other = torch.randn(64, 1, 24, 24, generator=g) * 0.05
    assert visual_turing_test(real, other, ImageSpec(1, 24, 24), steps=60, crop=8, classifiers=1).accuracy >= 90
    with pytest.raises(ValueError, match="larger than the images"):
        visual_turing_test(real, other, ImageSpec(1, 24, 24), steps=1, crop=32)
