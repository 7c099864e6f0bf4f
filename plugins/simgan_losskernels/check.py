"""Compare the Triton losses with the PyTorch reference on fresh random inputs.

Used by the tests in two ways:

- on CPU through Triton's interpreter, in a subprocess started with ``TRITON_INTERPRET=1``
  (``python -m simgan_losskernels.check`` prints the report as JSON);
- on CUDA in-process (``run_checks(torch.device("cuda"), dtype)``).

Every entry of the report records the relative error of the value (|v - v_ref| / |v_ref|) and of
each gradient (||g - g_ref|| / ||g_ref||, norm-wise), plus the ``grad_fn`` name of the kernel
result, which proves that the Triton path (not the fallback) produced it. For fp16/bf16 the
inputs are drawn in fp32, rounded to the low precision dtype, and the reference runs in fp32 on
those rounded values (see :mod:`simgan_losskernels.loss` for the bounds).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from simgan_toolkit.features import ChannelMean, ImageGradients
from simgan_toolkit.losses import REAL, SimGANLoss, local_adversarial_loss

#: Shapes of the checks: tiny for the interpreter, realistic for a GPU.
SHAPES: dict[str, dict[str, list[tuple[int, ...]]]] = {
    "tiny": {
        "logits": [(2, 2, 3, 4), (1, 2, 1, 1)],
        "logits_real": [(3, 2, 3, 4), (2, 2, 2, 3)],
        "images": [(2, 2, 5, 7), (1, 1, 1, 5), (1, 1, 2, 1), (1, 3, 1, 1), (1, 1, 2, 2)],
    },
    "large": {
        "logits": [(64, 2, 9, 14), (5, 2, 1, 1)],
        "logits_real": [(128, 2, 9, 14), (3, 2, 1, 1)],
        "images": [(64, 1, 35, 55), (16, 3, 224, 224), (3, 2, 1, 67), (2, 3, 67, 1), (1, 1, 1, 1)],
    },
}

_LAYOUTS = ("contiguous", "channels_last", "strided")


def _rel(x: Tensor, ref: Tensor, floor: float = 0.0) -> float:
    """||x - ref|| / max(||ref||, floor) (norm-wise; for scalars |x - ref| / max(|ref|, floor))."""
    x, ref = x.detach().double().cpu(), ref.detach().double().cpu()
    denom = max(ref.norm().item(), floor)
    err = (x - ref).norm().item()
    return err / denom if denom > 0 else err


def _layout(x: Tensor, layout: str) -> Tensor:
    """Same values as ``x`` (4-D) in another memory layout; a leaf tensor."""
    if layout == "channels_last":
        return x.detach().contiguous(memory_format=torch.channels_last)
    if layout == "strided":  # every other column of a twice-as-wide buffer
        wide = torch.zeros(*x.shape[:-1], 2 * x.shape[-1], dtype=x.dtype, device=x.device)
        wide[..., ::2] = x.detach()
        return wide[..., ::2]
    return x.detach().clone()


def _pair(x32: Tensor, dtype: torch.dtype, layout: str, grad: bool = True) -> tuple[Tensor, Tensor]:
    """(kernel input in ``dtype``/``layout``, fp32 reference input with the same values), both leaves."""
    low = _layout(x32.to(dtype), layout).requires_grad_(grad)
    ref = low.detach().float().contiguous().requires_grad_(grad)
    return low, ref


def _grad_fn(t: Tensor) -> str:
    return type(t.grad_fn).__name__ if t.grad_fn is not None else "None"


def _mean_abs(*pairs: tuple[Tensor, Tensor]) -> float:
    return sum(r.detach().abs().mean().item() for _, r in pairs)


def _compare(
    kernel: Callable[..., Tensor],
    reference: Callable[..., Tensor],
    inputs: list[tuple[Tensor, Tensor]],
    grad_of: list[int],
    value_floor: float = 0.0,
    grad_floor: dict[int, float] | None = None,
) -> dict[str, Any]:
    """Run both, backpropagate a scale of 0.7, compare the values and the gradients of ``grad_of``.

    Floors: errors are relative to max(|reference|, floor). ``value_floor`` is the magnitude of
    the terms the loss sums (rounding of *any* fp32 implementation is eps times that), so the
    error is a plain relative error except for a loss that is a near-total cancellation (e.g.
    the gradient of a 1x1 image, exactly 0 in the kernel and ~1e-9 in kornia's convolution).
    ``grad_floor`` likewise: 1e-2 times the norm of a gradient with every element at its bound.
    """
    grad_floor = grad_floor or {}
    out_k = kernel(*[k for k, _ in inputs])
    out_r = reference(*[r for _, r in inputs])
    (out_k * 0.7).backward()
    (out_r * 0.7).backward()
    entry: dict[str, Any] = {
        "value": _rel(out_k, out_r, value_floor),
        "value_plain": _rel(out_k, out_r),
        "path": _grad_fn(out_k),
        "fp32_scalar": out_k.dtype == torch.float32 and out_k.ndim == 0,
    }
    for i in grad_of:
        k, r = inputs[i]
        entry[f"grad{i}"] = _rel(k.grad, r.grad, grad_floor.get(i, 0.0)) if k.grad is not None else float("inf")
        entry[f"grad{i}_dtype_shape_ok"] = bool(k.grad is not None and k.grad.dtype == k.dtype and k.grad.shape == k.shape)
    for i in sorted(set(range(len(inputs))) - set(grad_of)):
        entry[f"grad{i}_is_none"] = inputs[i][0].grad is None
    return entry


@contextlib.contextmanager
def ieee_fp32_convolutions() -> Any:
    """cuDNN convolutions in true fp32 (no TF32) while the reference runs: by default PyTorch lets
    cuDNN use TF32 for fp32 convolutions (10-bit mantissa), which would make kornia's psi, not the
    kernel, the inexact side of an fp32 comparison."""
    cudnn = torch.backends.cudnn
    conv = getattr(cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):  # torch >= 2.9 API
        saved = conv.fp32_precision
        conv.fp32_precision = "ieee"
        try:
            yield
        finally:
            conv.fp32_precision = saved
    else:
        saved = cudnn.allow_tf32
        cudnn.allow_tf32 = False
        try:
            yield
        finally:
            cudnn.allow_tf32 = saved


def run_checks(device: torch.device, dtype: torch.dtype = torch.float32, size: str = "tiny", seed: int = 0) -> dict[str, dict[str, Any]]:
    """Every kernel against the reference on random inputs; see the module docstring.

    Returns ``{case: {"value": rel err, "grad0": rel err, ..., "path": grad_fn name, ...}}``; the
    boolean entries must all be true. The first shape of each list runs in every memory layout
    and psi option, the others (edge cases) only contiguous. The reference's convolutions run
    without TF32 (:func:`ieee_fp32_convolutions`).
    """
    with ieee_fp32_convolutions():
        return _run_checks(device, dtype, size, seed)


def _run_checks(device: torch.device, dtype: torch.dtype, size: str, seed: int) -> dict[str, dict[str, Any]]:
    from simgan_losskernels.loss import TritonSimGANLoss, fused_gradient_options

    g = torch.Generator(device="cpu").manual_seed(seed)

    def randn(*shape: int, scale: float = 1.0) -> Tensor:
        return (torch.randn(*shape, generator=g) * scale).to(device)

    fused, ref = TritonSimGANLoss(), SimGANLoss()
    report: dict[str, dict[str, Any]] = {}
    shapes = SHAPES[size]

    def grad_bound_norm(bound: float, numel: int) -> float:
        return 1e-2 * 0.7 * bound * numel**0.5

    for si, shape in enumerate(shapes["logits"]):
        p = shape[0] * shape[2] * shape[3]
        for layout in _LAYOUTS if si == 0 else _LAYOUTS[:1]:
            logits = _pair(randn(*shape, scale=3.0), dtype, layout)
            report[f"refiner_ce/{si}/{layout}"] = _compare(
                lambda x: fused.adversarial(x, REAL), lambda x: local_adversarial_loss(x, REAL), [logits], [0],
                grad_floor={0: grad_bound_norm(1 / p, 2 * p)},
            )
        shape_real = shapes["logits_real"][si]
        pr = shape_real[0] * shape_real[2] * shape_real[3]
        a = _pair(randn(*shape, scale=3.0), dtype, "contiguous")
        b = _pair(randn(*shape_real, scale=3.0), dtype, "channels_last")
        report[f"discriminator_ce/{si}"] = _compare(
            fused.discriminator_loss, ref.discriminator_loss, [a, b], [0, 1],
            grad_floor={0: grad_bound_norm(1 / p, 2 * p), 1: grad_bound_norm(1 / pr, 2 * pr)},
        )

    for si, shape in enumerate(shapes["images"]):
        e = math.prod(shape)
        for layout in _LAYOUTS if si == 0 else _LAYOUTS[:1]:
            r = _pair(randn(*shape), dtype, layout)
            s = _pair(randn(*shape), dtype, layout, grad=False)
            report[f"l1/{si}/{layout}"] = _compare(
                fused.regularization, ref.regularization, [r, s], [0],
                value_floor=_mean_abs(r, s), grad_floor={0: grad_bound_norm(1 / e, e)},
            )
            options = [(m, n) for m in ("sobel", "diff") for n in (True, False)]
            for mode, normalized in options if si == 0 and layout == "contiguous" else options[::3]:
                psi = ImageGradients(mode=mode, normalized=normalized)  # type: ignore[arg-type]
                r = _pair(randn(*shape), dtype, layout)
                s = _pair(randn(*shape), dtype, layout)  # requires grad: must receive none
                taps = 1.0 if normalized else (8.0 if mode == "sobel" else 2.0)  # sum |kernel|
                report[f"gradient_l1/{mode}/{normalized}/{si}/{layout}"] = _compare(
                    lambda x, y, psi=psi: fused.regularization_from_images(x, y, psi),
                    lambda x, y, psi=psi: ref.regularization_from_images(x, y, psi),
                    [r, s], [0],
                    value_floor=taps * _mean_abs(r, s), grad_floor={0: grad_bound_norm(2 * taps / (2 * e), e)},
                )

    if dtype != torch.float32:  # autocast: refined in low precision, synthetic images in fp32
        shape = shapes["images"][0]
        r = _pair(randn(*shape), dtype, "contiguous")
        s = _pair(randn(*shape), torch.float32, "contiguous", grad=False)
        report["gradient_l1/mixed_dtypes"] = _compare(
            lambda x, y: fused.regularization_from_images(x, y, ImageGradients()),
            lambda x, y: ref.regularization_from_images(x, y, ImageGradients()),
            [r, s], [0], value_floor=_mean_abs(r, s),
        )

    # Whole refiner loss: fused gradient psi, and a psi the kernels do not fuse (-> L1 kernel).
    shape, lshape = shapes["images"][0], shapes["logits"][0]
    for name, psi in (("gradients", ImageGradients()), ("channel_mean", ChannelMean())):
        logits = _pair(randn(*lshape, scale=3.0), dtype, "contiguous")
        r = _pair(randn(*shape), dtype, "contiguous")
        s = _pair(randn(*shape), dtype, "contiguous", grad=False)
        # An unfused psi runs in the images' dtype on the kernel side (as PyTorch does on bf16
        # images), so the reference takes psi's values in that dtype too: rounded in fp32
        # instead, a difference psi(r) - psi(s) within one rounding of 0 flips the L1 sign
        # gradient, and a few flips among thousands of elements exceeded the bound (seed
        # 1746219890, bf16: 0.12).
        ref_psi = psi if fused_gradient_options(psi) is not None else (lambda t, psi=psi: psi(t.to(dtype)).float())
        entry = _compare(
            lambda lg, x, y, psi=psi: fused.refiner_loss_from_images(lg, x, y, psi, 0.3).total,
            lambda lg, x, y, psi=ref_psi: ref.refiner_loss_from_images(lg, x, y, psi, 0.3).total,
            [logits, r, s], [0, 1],
        )
        parts = fused.refiner_loss_from_images(logits[0].detach().requires_grad_(), r[0].detach().requires_grad_(), s[0], psi, 0.3)
        entry["path"] = f"{_grad_fn(parts.adversarial)}+{_grad_fn(parts.regularization)}"
        report[f"refiner_loss_from_images/{name}"] = entry
    return report


def hand_cases(device: torch.device) -> dict[str, Any]:
    """Kernel outputs on tiny hand-computable inputs (the tests hold the expected numbers)."""
    from simgan_losskernels.loss import TritonSimGANLoss

    loss = TritonSimGANLoss()
    out: dict[str, Any] = {}
    # 1x2x1x1 logits (real, refined) = (0, ln 3).
    logits = torch.tensor([0.0, math.log(3.0)], device=device).reshape(1, 2, 1, 1).requires_grad_(True)
    ce = loss.adversarial(logits, REAL)
    ce.backward()
    out["ce_real"] = {"value": ce.item(), "grad": logits.grad.flatten().tolist(), "path": _grad_fn(ce)}
    logits.grad = None
    ce = loss.adversarial(logits, 1)
    ce.backward()
    out["ce_refined"] = {"value": ce.item(), "grad": logits.grad.flatten().tolist(), "path": _grad_fn(ce)}
    real = torch.tensor([math.log(3.0), 0.0], device=device).reshape(1, 2, 1, 1)
    d = loss.discriminator_loss(logits.detach(), real)
    out["discriminator"] = {"value": d.item(), "path": _grad_fn(loss.discriminator_loss(logits, real))}
    # 2-pixel L1: a = (1, -2), b = (0.5, 1).
    a = torch.tensor([1.0, -2.0], device=device).reshape(1, 1, 1, 2).requires_grad_(True)
    b = torch.tensor([0.5, 1.0], device=device).reshape(1, 1, 1, 2)
    l1 = loss.regularization(a, b)
    l1.backward()
    out["l1"] = {"value": l1.item(), "grad": a.grad.flatten().tolist(), "path": _grad_fn(l1)}
    # 1x1x1x2 image r = (0, 1), s = 0, normalized sobel.
    r = torch.tensor([0.0, 1.0], device=device).reshape(1, 1, 1, 2).requires_grad_(True)
    gl = loss.regularization_from_images(r, torch.zeros_like(r), ImageGradients())
    gl.backward()
    out["gradient_l1"] = {"value": gl.item(), "grad": r.grad.flatten().tolist(), "path": _grad_fn(gl)}
    return out


def main(argv: list[str] | None = None) -> int:
    """Print ``{"interpreted": bool, "checks": run_checks(...), "hand": hand_cases(...)}`` as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--size", default="tiny", choices=sorted(SHAPES))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    from simgan_losskernels.loss import kernels_module

    k = kernels_module()
    device = torch.device(args.device)
    report = {
        "interpreted": bool(k is not None and k.INTERPRETED),
        "checks": run_checks(device, getattr(torch, args.dtype), args.size),
        "hand": hand_cases(device),
    }
    json.dump(report, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
