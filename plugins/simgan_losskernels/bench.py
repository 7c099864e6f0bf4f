"""Micro-benchmark: Triton losses vs the eager PyTorch reference, and the memory traffic of each.

Every loss term here is memory-bound, so the figure of merit is achieved bandwidth
(bytes moved / time) against the device's copy bandwidth (:func:`peak_bandwidth`).

Bytes per term (forward + backward; s = bytes per input element, E = image elements N*C*H*W,
P = patches N*h*w; partial sums and scalars ignored):

- fused (what the kernels read and write, by design; neighbour re-reads hit the cache):
  CE: fwd reads 2Ps, bwd reads 2Ps and writes 2Ps -> 6Ps.
  L1 and gradient L1: fwd reads 2Es and writes a 1-byte sign code per element, bwd reads the
  code and writes Es -> 3Es + 2E.
- eager (a model of the reference's op sequence, fp32 intermediates: each op reads its inputs
  and writes its output once; see ``_eager_bytes``). It is an estimate, not a measurement.

Timings use CUDA events (median of ``iters`` after ``warmup``); on CPU (only with the kernels in
Triton interpreter mode, for smoke tests) ``time.perf_counter``.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from simgan_toolkit.features import ImageGradients
from simgan_toolkit.losses import REAL, SimGANLoss

__all__ = ["peak_bandwidth", "time_losses"]


def _timer(device: torch.device) -> Callable[[Callable[[], Any], int, int], float]:
    """A function ``time(fn, iters, warmup) -> median seconds per call`` for ``device``."""

    def cuda_time(fn: Callable[[], Any], iters: int, warmup: int) -> float:
        for _ in range(warmup):
            fn()
        torch.cuda.synchronize(device)
        times = []
        for _ in range(iters):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        return statistics.median(times)

    def cpu_time(fn: Callable[[], Any], iters: int, warmup: int) -> float:
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    return cuda_time if device.type == "cuda" else cpu_time


def peak_bandwidth(device: torch.device | str = "cuda", nbytes: int = 1 << 30, iters: int = 20) -> float:
    """Measured copy bandwidth in bytes/s: ``dst.copy_(src)`` of ``nbytes`` moves 2 * nbytes."""
    device = torch.device(device)
    n = nbytes // 4
    src = torch.empty(n, dtype=torch.float32, device=device).fill_(1.0)
    dst = torch.empty_like(src)
    seconds = _timer(device)(lambda: dst.copy_(src), iters, 3)
    return 2 * n * 4 / seconds


def _fused_bytes(term: str, e: int, p: int, s: int) -> int:
    if term in ("refiner_ce", "discriminator_ce"):
        return 6 * p * s
    return 3 * e * s + 2 * e  # l1, gradient_l1


def _eager_bytes(term: str, e: int, p: int, s: int) -> int:
    """Model of the reference's traffic, fwd + bwd (fp32 intermediates, each op r/w once)."""
    cast = s != 4
    if term in ("refiner_ce", "discriminator_ce"):
        b = (2 * p * s + 8 * p) if cast else 0  # logits.float()
        b += 8 * p  # labels (int64) = full(...)
        b += 8 * p + 8 * p  # log_softmax r/w
        b += 4 * p + 8 * p  # nll_loss: gathered log-probs, labels
        b += 8 * p + 8 * p  # nll_loss backward: zero-fill + scatter grad, labels
        b += 3 * 8 * p  # log_softmax backward: reads grad and output, writes grad
        b += (8 * p + 2 * p * s) if cast else 0  # cast back
        return b

    def l1(n: int, es: int) -> int:  # mean |a - b| over n elements of size es, grad to a
        c = (2 * n * es + 8 * n) if es != 4 else 0  # .float() casts
        fwd = 12 * n + 8 * n + 4 * n  # sub, abs, mean
        bwd = 4 * n + 12 * n + ((4 * n + n * es) if es != 4 else 0)  # mean bwd (expand/div), abs bwd, cast
        return c + fwd + bwd

    if term == "l1":
        return l1(e, s)
    # gradient_l1 (kornia): per image pad (r Es, w ~Es) + conv (r ~Es, w 2Es) = 5Es, twice;
    # L1 over 2E features of size s; conv backward (r 2Es, w ~Es) and pad backward (r/w Es).
    return 2 * 5 * e * s + l1(2 * e, s) + 3 * e * s + 2 * e * s


def time_losses(
    shape: tuple[int, int, int, int] = (64, 3, 224, 224),
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cuda",
    logits_shape: tuple[int, int, int, int] | None = None,
    iters: int = 50,
    warmup: int = 5,
    peak: float | None = None,
) -> dict[str, Any]:
    """Fused (Triton) vs eager (reference) time of each loss term, forward + backward.

    Args:
        shape: (N, C, H, W) of the images (L1 and gradient-psi L1 terms).
        dtype: input dtype (fp32, fp16 or bf16).
        device: a CUDA device, or ``"cpu"`` with the kernels in Triton interpreter mode.
        logits_shape: (N, 2, h, w) of the discriminator's logits; default (N, 2, H//16, W//16).
        iters, warmup: timed and untimed calls per measurement.
        peak: copy bandwidth in bytes/s to report fractions of; measured when ``None`` on CUDA.

    Returns:
        ``{"skipped": reason}`` when the kernels cannot run on ``device``; else
        ``{"device", "dtype", "shape", "logits_shape", "peak_GBps", "terms": {term: {"fused_ms",
        "eager_ms", "speedup", "fused_bytes", "eager_bytes", "fused_GBps", "eager_GBps",
        "fused_peak_fraction"}}}`` for the terms refiner_ce, discriminator_ce, l1, gradient_l1.
    """
    from simgan_losskernels.loss import TritonSimGANLoss, kernels_module

    device = torch.device(device)
    k = kernels_module()
    if k is None:
        return {"skipped": "triton is not importable"}
    if device.type == "cuda" and (not torch.cuda.is_available() or k.INTERPRETED):
        return {"skipped": "CUDA unavailable or kernels imported in interpreter mode"}
    if device.type != "cuda" and not (device.type == "cpu" and k.INTERPRETED):
        return {"skipped": f"kernels need CUDA (or TRITON_INTERPRET=1 on CPU), got {device}"}

    n, _, h, w = shape
    logits_shape = logits_shape or (n, 2, max(h // 16, 1), max(w // 16, 1))
    g = torch.Generator(device="cpu").manual_seed(0)

    def leaf(*size: int, grad: bool = True, scale: float = 1.0) -> Tensor:
        return (torch.randn(*size, generator=g) * scale).to(device=device, dtype=dtype).requires_grad_(grad)

    refined, synthetic = leaf(*shape), leaf(*shape, grad=False)
    logits_f, logits_r = leaf(*logits_shape, scale=3.0), leaf(*logits_shape, scale=3.0)
    psi = ImageGradients()
    fused, eager = TritonSimGANLoss(), SimGANLoss()
    from simgan_toolkit.losses import local_adversarial_loss

    terms: dict[str, tuple[Callable[[], Tensor], Callable[[], Tensor], list[Tensor]]] = {
        "refiner_ce": (lambda: fused.adversarial(logits_f, REAL), lambda: local_adversarial_loss(logits_f, REAL), [logits_f]),
        "discriminator_ce": (
            lambda: fused.discriminator_loss(logits_f, logits_r), lambda: eager.discriminator_loss(logits_f, logits_r),
            [logits_f, logits_r],
        ),
        "l1": (lambda: fused.regularization(refined, synthetic), lambda: eager.regularization(refined, synthetic), [refined]),
        "gradient_l1": (
            lambda: fused.regularization_from_images(refined, synthetic, psi),
            lambda: eager.regularization_from_images(refined, synthetic, psi),
            [refined],
        ),
    }
    timer = _timer(device)
    if peak is None and device.type == "cuda":
        peak = peak_bandwidth(device)
    e = math.prod(shape)
    p = logits_shape[0] * logits_shape[2] * logits_shape[3]
    s = torch.empty((), dtype=dtype).element_size()
    out: dict[str, Any] = {}
    for term, (fused_fn, eager_fn, wrt) in terms.items():
        def step(fn: Callable[[], Tensor], wrt: list[Tensor] = wrt) -> None:
            torch.autograd.grad(fn(), wrt)

        p_term = 2 * p if term == "discriminator_ce" else p
        fused_s = timer(lambda fn=fused_fn: step(fn), iters, warmup)
        eager_s = timer(lambda fn=eager_fn: step(fn), iters, warmup)
        fb, eb = _fused_bytes(term, e, p_term, s), _eager_bytes(term, e, p_term, s)
        out[term] = {
            "fused_ms": fused_s * 1e3,
            "eager_ms": eager_s * 1e3,
            "speedup": eager_s / fused_s,
            "fused_bytes": fb,
            "eager_bytes": eb,
            "fused_GBps": fb / fused_s / 1e9,
            "eager_GBps": eb / eager_s / 1e9,
            "fused_peak_fraction": (fb / fused_s) / peak if peak else None,
        }
    return {
        "device": str(device),
        "dtype": str(dtype).removeprefix("torch."),
        "shape": list(shape),
        "logits_shape": list(logits_shape),
        "peak_GBps": peak / 1e9 if peak else None,
        "terms": out,
    }


if __name__ == "__main__":  # python -m simgan_losskernels.bench [fp32|bf16]
    import json
    import sys

    dt = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[sys.argv[1] if len(sys.argv) > 1 else "fp32"]
    print(json.dumps(time_losses(dtype=dt), indent=1))
