"""SimGAN losses against hand-computed values and gradients."""

from __future__ import annotations

import math

import pytest
import torch

from simgan_toolkit.losses import REAL, REFINED, SimGANLoss, local_adversarial_loss, self_regularization_loss


def test_class_constants():
    assert (REAL, REFINED) == (0, 1)


@pytest.mark.parametrize("target", [REAL, REFINED])
def test_zero_logits_give_log2(target):
    loss = local_adversarial_loss(torch.zeros(3, 2, 4, 5), target)
    assert loss.item() == pytest.approx(math.log(2), rel=1e-6)


def test_confident_correct_logits_give_zero_and_wrong_give_large():
    logits = torch.zeros(2, 2, 3, 3)
    logits[:, REFINED] = 30.0
    assert local_adversarial_loss(logits, REFINED).item() == pytest.approx(0.0, abs=1e-10)
    assert local_adversarial_loss(logits, REAL).item() == pytest.approx(30.0, rel=1e-6)


def test_hand_computed_1x2x1x2():
    # Patch a: logits (real, refined) = (0, ln 3) -> p(real) = 1/4 -> CE_real = ln 4
    # Patch b: logits (ln 3, 0)                   -> p(real) = 3/4 -> CE_real = ln(4/3)
    # Mean over the two patches: (ln 4 + ln 4/3) / 2 = ln(16/3) / 2.
    ln3 = math.log(3.0)
    logits = torch.tensor([[[[0.0, ln3]], [[ln3, 0.0]]]])
    assert logits.shape == (1, 2, 1, 2)
    assert local_adversarial_loss(logits, REAL).item() == pytest.approx(math.log(16 / 3) / 2, rel=1e-6)
    # Symmetric for the other class: (ln 4/3 + ln 4) / 2.
    assert local_adversarial_loss(logits, REFINED).item() == pytest.approx(math.log(16 / 3) / 2, rel=1e-6)


def test_mean_over_images_and_patches():
    # One patch with CE ln 4, three with ln 2 -> mean (ln 4 + 3 ln 2) / 4 = 5 ln 2 / 4.
    logits = torch.zeros(2, 2, 1, 2)
    logits[0, REFINED, 0, 0] = math.log(3.0)
    assert local_adversarial_loss(logits, REAL).item() == pytest.approx(5 * math.log(2) / 4, rel=1e-6)


def test_adversarial_gradient_hand_value():
    # d CE / d logit_real = (p_real - 1)/P, with P = 4 patches and p_real = 1/2.
    logits = torch.zeros(1, 2, 2, 2, requires_grad=True)
    local_adversarial_loss(logits, REAL).backward()
    assert torch.allclose(logits.grad[:, REAL], torch.full((1, 2, 2), -0.125))
    assert torch.allclose(logits.grad[:, REFINED], torch.full((1, 2, 2), 0.125))


@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (2, 2, 4), (2, 1, 4, 4), (2,)])
def test_wrong_logit_shape(shape):
    with pytest.raises(ValueError, match=r"\(N, 2, h, w\)"):
        local_adversarial_loss(torch.zeros(shape), REAL)


def test_self_regularization_hand_value():
    a = torch.tensor([1.0, -2.0, 3.0, 0.5]).reshape(1, 1, 2, 2)
    b = torch.tensor([0.0, 1.0, 3.0, -0.5]).reshape(1, 1, 2, 2)
    # |1| + |-3| + 0 + |1| = 5, over 4 elements.
    assert self_regularization_loss(a, b).item() == pytest.approx(1.25)
    assert self_regularization_loss(a, a).item() == 0.0


def test_self_regularization_shape_mismatch():
    with pytest.raises(ValueError, match="feature shapes differ"):
        self_regularization_loss(torch.zeros(1, 1, 2, 2), torch.zeros(1, 2, 2, 2))


def test_l1_gradient_sign():
    refined = torch.tensor([2.0, -1.0, 0.5, -3.0]).reshape(1, 1, 2, 2).requires_grad_(True)
    synthetic = torch.tensor([1.0, 0.0, 1.0, -4.0]).reshape(1, 1, 2, 2)
    self_regularization_loss(refined, synthetic).backward()
    # sign(refined - synthetic) / 4 = (+, -, -, +) / 4
    assert torch.equal(refined.grad.flatten(), torch.tensor([0.25, -0.25, -0.25, 0.25]))


def test_refiner_loss_total_is_adv_plus_lambda_reg():
    ln3 = math.log(3.0)
    logits = torch.tensor([[[[0.0, ln3]], [[ln3, 0.0]]]])
    psi_r = torch.tensor([[[[1.0, 2.0]]]])
    psi_s = torch.tensor([[[[0.0, 0.0]]]])
    out = SimGANLoss().refiner_loss(logits, psi_r, psi_s, lam=0.25)
    adv = math.log(16 / 3) / 2
    assert out.adversarial.item() == pytest.approx(adv, rel=1e-6)
    assert out.regularization.item() == pytest.approx(1.5)
    assert out.total.item() == pytest.approx(adv + 0.25 * 1.5, rel=1e-6)
    assert SimGANLoss().regularization(psi_r, psi_s).item() == pytest.approx(1.5)


def test_refiner_loss_targets_real_class():
    # Refiner wants D to say "real": confident-real logits give ~0 adversarial loss.
    logits = torch.zeros(1, 2, 1, 1)
    logits[:, REAL] = 30.0
    out = SimGANLoss().refiner_loss(logits, torch.zeros(1, 1, 1, 1), torch.zeros(1, 1, 1, 1), lam=1.0)
    assert out.adversarial.item() == pytest.approx(0.0, abs=1e-10)


def test_discriminator_loss_sums_two_halves():
    ln3 = math.log(3.0)
    # Refined half: one patch (0, ln 3): p(refined) = 3/4 -> ln(4/3).
    refined = torch.tensor([0.0, ln3]).reshape(1, 2, 1, 1)
    # Real half: two patches, (ln 3, 0) -> p(real) = 3/4 -> ln(4/3); (0, 0) -> ln 2. Mean.
    real = torch.tensor([[[[ln3, 0.0]], [[0.0, 0.0]]]])
    expected = math.log(4 / 3) + (math.log(4 / 3) + math.log(2)) / 2
    assert SimGANLoss().discriminator_loss(refined, real).item() == pytest.approx(expected, rel=1e-6)


def test_discriminator_loss_halves_of_different_sizes_are_averaged_separately():
    # 1 refined image at loss ln 2 and 3 real images at ~0 sum to ln 2 (not ln 2 / 4).
    refined = torch.zeros(1, 2, 1, 1)
    real = torch.zeros(3, 2, 1, 1)
    real[:, REAL] = 40.0
    assert SimGANLoss().discriminator_loss(refined, real).item() == pytest.approx(math.log(2), rel=1e-6)


def test_image_level_api_applies_psi_and_matches_the_feature_level_losses():
    """The default ``*_from_images`` methods apply psi (no gradient through psi(synthetic)) and
    give exactly the feature-level values, so accelerated losses can fuse psi safely."""
    torch.manual_seed(0)
    loss = SimGANLoss()
    refined = torch.randn(2, 1, 6, 7, requires_grad=True)
    synthetic = torch.randn(2, 1, 6, 7, requires_grad=True)
    logits = torch.randn(2, 2, 3, 3)
    psi = lambda x: 2.0 * x  # noqa: E731
    parts = loss.refiner_loss_from_images(logits, refined, synthetic, psi, lam=0.5)
    expected = loss.refiner_loss(logits, psi(refined), psi(synthetic).detach(), lam=0.5)
    assert torch.equal(parts.total, expected.total)
    # Hand-computed regularisation: mean |2r - 2s| = 2 * mean |r - s|.
    reg = loss.regularization_from_images(refined, synthetic, psi)
    assert torch.allclose(reg, 2 * (refined - synthetic).abs().mean())
    reg.backward()
    assert refined.grad is not None and synthetic.grad is None
