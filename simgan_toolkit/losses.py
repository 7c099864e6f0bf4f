"""The SimGAN losses, in plain PyTorch (the reference every accelerated version must match).

Notation (paper): D(.) is the probability that an image (patch) is *refined*. The
discriminator emits two-class logits per patch, class 1 = refined, class 0 = real.

- L_D = -sum log D(x~) - sum log(1 - D(y))
- L_R = -sum log(1 - D(R(x))) + lambda * ||psi(R(x)) - psi(x)||_1

Normalisation (the paper gives none): both sums are averaged, the adversarial terms over
images and patches, the L1 term over every feature element. lambda is therefore independent
of image size and patch-map size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

REAL = 0
REFINED = 1


def local_adversarial_loss(logits: Tensor, target: int) -> Tensor:
    """Mean cross-entropy of every patch's logits against one class.

    Args:
        logits: (N, 2, h, w) discriminator output.
        target: :data:`REAL` or :data:`REFINED`.

    Returns:
        Scalar mean over N * h * w patches.
    """
    if logits.ndim != 4 or logits.shape[1] != 2:
        raise ValueError(f"discriminator logits must be (N, 2, h, w), got {tuple(logits.shape)}")
    n, _, h, w = logits.shape
    labels = torch.full((n, h, w), target, dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits.float(), labels)


def self_regularization_loss(psi_refined: Tensor, psi_synthetic: Tensor) -> Tensor:
    """Mean absolute difference of two feature tensors of the same shape (scalar)."""
    if psi_refined.shape != psi_synthetic.shape:
        raise ValueError(f"feature shapes differ: {tuple(psi_refined.shape)} vs {tuple(psi_synthetic.shape)}")
    return (psi_refined.float() - psi_synthetic.float()).abs().mean()


@dataclass
class RefinerLoss:
    """The refiner loss and its parts (all scalar tensors)."""

    total: Tensor
    adversarial: Tensor
    regularization: Tensor


class SimGANLoss:
    """Reference implementation of both SimGAN losses.

    Accelerated implementations (registered through ``simgan_register_losses``) subclass
    this and must return the same values within a documented tolerance.
    """

    def regularization(self, psi_refined: Tensor, psi_synthetic: Tensor) -> Tensor:
        """The self-regularisation term alone (refiner pretraining): mean |psi_refined - psi_synthetic|."""
        return self_regularization_loss(psi_refined, psi_synthetic)

    def refiner_loss(self, logits_refined: Tensor, psi_refined: Tensor, psi_synthetic: Tensor, lam: float) -> RefinerLoss:
        """L_R: fool D on every patch while staying close to the input in feature space.

        Args:
            logits_refined: (N, 2, h, w) D's logits on R(x).
            psi_refined: psi(R(x)); psi_synthetic: psi(x), same shape.
            lam: weight of the self-regularisation term.
        """
        adversarial = local_adversarial_loss(logits_refined, REAL)
        regularization = self.regularization(psi_refined, psi_synthetic)
        return RefinerLoss(adversarial + lam * regularization, adversarial, regularization)

    def regularization_from_images(self, refined: Tensor, synthetic: Tensor, psi: Callable[[Tensor], Tensor]) -> Tensor:
        """The self-regularisation term from images (N, C, H, W): ``psi`` is applied here, so an
        implementation may fuse a known psi (e.g. image gradients) into its kernel. The default
        computes ``psi(synthetic)`` without gradient and calls :meth:`regularization`."""
        with torch.no_grad():
            psi_synthetic = psi(synthetic)
        return self.regularization(psi(refined), psi_synthetic)

    def refiner_loss_from_images(
        self, logits_refined: Tensor, refined: Tensor, synthetic: Tensor, psi: Callable[[Tensor], Tensor], lam: float,
    ) -> RefinerLoss:
        """L_R from D's logits and the images (N, C, H, W); see :meth:`regularization_from_images`."""
        with torch.no_grad():
            psi_synthetic = psi(synthetic)
        return self.refiner_loss(logits_refined, psi(refined), psi_synthetic, lam)

    def discriminator_loss(self, logits_refined: Tensor, logits_real: Tensor) -> Tensor:
        """L_D: refined patches are class 1, real patches class 0. Scalar.

        The two halves are averaged separately and summed, as the paper's two sums.
        """
        return local_adversarial_loss(logits_refined, REFINED) + local_adversarial_loss(logits_real, REAL)
