"""``TritonSimGANLoss``: the reference SimGAN losses with every term computed by a Triton kernel.

Design: each method checks whether its inputs can go to the kernels (same device, CUDA -- or
CPU when the kernels were imported with ``TRITON_INTERPRET=1`` --, dtype fp32/fp16/bf16,
non-empty, the shapes the reference accepts); if not, it calls the reference
:class:`~simgan_toolkit.losses.SimGANLoss` method (``super()``), so values, errors and gradients
are then exactly the reference's. Dispatch is per term: a refiner loss may use the CE kernel and
fall back for psi.

- adversarial terms: :class:`~simgan_losskernels.kernels.AdversarialCE`; ``discriminator_loss``
  computes CE(refined, 1) + CE(real, 0), each half averaged over its own patches, in one launch.
- ``regularization``: :class:`~simgan_losskernels.kernels.L1Mean`.
- ``*_from_images`` with psi an :class:`~simgan_toolkit.features.ImageGradients` (not a subclass
  overriding ``forward``; mode sobel or diff, any ``normalized``):
  :class:`~simgan_losskernels.kernels.GradientL1`, which never materialises psi. Any other psi
  is applied in PyTorch (psi(synthetic) without gradient, as the reference) and fed to the L1
  kernel.

Accuracy (relative error against the reference, values and gradients):

- fp32 inputs: < 1e-5 (in practice ~1e-7: both accumulate in fp32, only the summation order
  and, for the gradient psi, evaluating psi(r - s) instead of psi(r) - psi(s) differ). Where a
  loss is a near-total cancellation (e.g. the gradient of a 1x1 image: 0 here, ~1e-9 in kornia)
  the error is taken relative to the magnitude of the summed terms instead; see
  :func:`simgan_losskernels.check._compare`. fp64 inputs fall back to the reference.
- fp16/bf16 inputs: the kernels read them and compute in fp32, so the loss values agree with the
  fp32 reference evaluated on the same (upcast) inputs to < 1e-5; gradients are rounded once to
  the input dtype (bf16: relative error <= 2**-8 ~ 4e-3 per element), bound used in the tests:
  < 1e-2. The reference itself on bf16 images computes psi in bf16, so for the gradient psi the
  kernel is the more accurate of the two (compare with the fp32 reference, not the bf16 one).
- On CUDA, PyTorch by default lets cuDNN run fp32 convolutions in TF32, so kornia's psi in the
  reference is then accurate to ~1e-3 only; the bounds above are against the reference with
  TF32 off (:func:`simgan_losskernels.check.ieee_fp32_convolutions`). The kernel is always
  true fp32.

Layouts: logits and images are addressed through their strides (NCHW, channels_last, slices;
no copy). The plain L1 reads both tensors as one flat buffer when they are dense with equal
strides (contiguous or channels_last) and otherwise copies them contiguous first.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import ModuleType

import torch
from torch import Tensor

from simgan_toolkit.losses import REAL, REFINED, RefinerLoss, SimGANLoss

__all__ = ["TritonSimGANLoss", "kernels_module"]


@functools.lru_cache(maxsize=1)
def kernels_module() -> ModuleType | None:
    """:mod:`simgan_losskernels.kernels`, imported on first use; ``None`` when Triton is unusable."""
    try:
        from simgan_losskernels import kernels
    except Exception:  # noqa: BLE001 - ImportError, or a broken Triton install failing at import
        return None
    return kernels


def _kernel_device(*tensors: Tensor) -> bool:
    """Whether tensors (all on one device) can go to the kernels: CUDA, or CPU in interpreter mode."""
    k = kernels_module()
    if k is None:
        return False
    device = tensors[0].device
    if any(t.device != device for t in tensors):
        return False
    if device.type == "cuda":
        return not k.INTERPRETED
    return device.type == "cpu" and k.INTERPRETED


def _kernel_ready(*tensors: Tensor) -> bool:
    k = kernels_module()
    return (
        _kernel_device(*tensors)
        and all(t.dtype in k.SUPPORTED_DTYPES and t.numel() > 0 for t in tensors)  # type: ignore[union-attr]
    )


def _logits_ok(logits: Tensor) -> bool:
    return logits.ndim == 4 and logits.shape[1] == 2 and _kernel_ready(logits)


def fused_gradient_options(psi: object) -> tuple[str, bool] | None:
    """``(mode, normalized)`` if ``psi`` is exactly the toolkit's ``ImageGradients`` transform, else ``None``."""
    from simgan_toolkit.features import ImageGradients

    if not isinstance(psi, ImageGradients) or type(psi).forward is not ImageGradients.forward:
        return None
    mode = str(psi.mode).lower()
    if mode not in ("sobel", "diff") or not isinstance(psi.normalized, bool):
        return None
    return mode, psi.normalized


class TritonSimGANLoss(SimGANLoss):
    """The SimGAN losses with Triton kernels (forward and backward); see the module docstring.

    Every method takes and returns what :class:`~simgan_toolkit.losses.SimGANLoss` does:
    logits (N, 2, h, w), features or images (N, C, H, W) of equal shapes; scalar fp32 results.
    """

    # ------------------------------------------------------------------ adversarial
    def adversarial(self, logits: Tensor, target: int) -> Tensor:
        """Mean CE of every patch of ``logits`` (N, 2, h, w) against ``target`` (REAL or REFINED)."""
        if _logits_ok(logits):
            k = kernels_module()
            return k.AdversarialCE.apply(logits, None, int(target), int(target))  # type: ignore[union-attr]
        from simgan_toolkit.losses import local_adversarial_loss

        return local_adversarial_loss(logits, target)

    def discriminator_loss(self, logits_refined: Tensor, logits_real: Tensor) -> Tensor:
        """L_D = CE(refined, 1) + CE(real, 0): (N_f, 2, h, w) and (N_r, 2, h', w') logits, one launch."""
        if _logits_ok(logits_refined) and _logits_ok(logits_real) and _kernel_device(logits_refined, logits_real):
            k = kernels_module()
            return k.AdversarialCE.apply(logits_refined, logits_real, REFINED, REAL)  # type: ignore[union-attr]
        return super().discriminator_loss(logits_refined, logits_real)

    # ------------------------------------------------------------------ self-regularisation
    def regularization(self, psi_refined: Tensor, psi_synthetic: Tensor) -> Tensor:
        """mean |psi_refined - psi_synthetic| (same shape, any rank); gradient to ``psi_refined`` only
        through the kernel (the reference also differentiates ``psi_synthetic`` if it requires grad,
        so the kernel is used only when it does not)."""
        if (
            psi_refined.shape == psi_synthetic.shape
            and not psi_synthetic.requires_grad
            and _kernel_ready(psi_refined, psi_synthetic)
        ):
            k = kernels_module()
            return k.L1Mean.apply(psi_refined, psi_synthetic)  # type: ignore[union-attr]
        return super().regularization(psi_refined, psi_synthetic)

    def regularization_from_images(self, refined: Tensor, synthetic: Tensor, psi: Callable[[Tensor], Tensor]) -> Tensor:
        """mean |psi(refined) - psi(synthetic)| from images (N, C, H, W); no gradient to ``synthetic``."""
        options = fused_gradient_options(psi)
        if (
            options is not None
            and refined.ndim == 4
            and refined.shape == synthetic.shape
            and _kernel_ready(refined, synthetic)
        ):
            k = kernels_module()
            return k.GradientL1.apply(refined, synthetic.detach(), *options)  # type: ignore[union-attr]
        with torch.no_grad():
            psi_synthetic = psi(synthetic)
        return self.regularization(psi(refined), psi_synthetic)

    # ------------------------------------------------------------------ refiner
    def refiner_loss(self, logits_refined: Tensor, psi_refined: Tensor, psi_synthetic: Tensor, lam: float) -> RefinerLoss:
        """L_R from D's logits (N, 2, h, w) on R(x) and the features psi(R(x)), psi(x)."""
        adversarial = self.adversarial(logits_refined, REAL)
        regularization = self.regularization(psi_refined, psi_synthetic)
        return RefinerLoss(adversarial + lam * regularization, adversarial, regularization)

    def refiner_loss_from_images(
        self, logits_refined: Tensor, refined: Tensor, synthetic: Tensor, psi: Callable[[Tensor], Tensor], lam: float,
    ) -> RefinerLoss:
        """L_R from D's logits (N, 2, h, w) and the images (N, C, H, W); psi fused when possible."""
        adversarial = self.adversarial(logits_refined, REAL)
        regularization = self.regularization_from_images(refined, synthetic, psi)
        return RefinerLoss(adversarial + lam * regularization, adversarial, regularization)
