"""Triton kernels of the SimGAN losses and their ``torch.autograd.Function`` wrappers.

Imported lazily (it imports ``triton``): by :mod:`simgan_losskernels.loss` on first use, never by
the plugin's entry-point module. With ``TRITON_INTERPRET=1`` set *before* this module is first
imported, every kernel is a Triton ``InterpretedFunction`` that runs on CPU tensors (numpy); see
:data:`INTERPRETED`.

Kernels (all accumulate in fp32 whatever the input dtype; inputs may be fp32, fp16 or bf16):

- ``_ce_fwd_kernel`` / ``_ce_bwd_kernel``: two-class cross-entropy of every patch of one or two
  (N, 2, h, w) logit maps against a fixed class, each map averaged over its own N*h*w patches.
  Arbitrary strides (NCHW, channels_last, slices) are addressed directly, no copy.
- ``_l1_fwd_kernel`` / ``_l1_bwd_kernel``: mean |a - b| over a flat dense buffer. Tensors that are
  not dense in the same layout are made contiguous first (a copy).
- ``_grad_l1_fwd_kernel`` / ``_grad_l1_bwd_kernel``: mean |psi(r) - psi(s)| with psi the toolkit's
  ``ImageGradients`` (kornia ``spatial_gradient``, order 1, replicate border, sobel or diff,
  normalized or not) computed from the images' 3x3 neighbourhoods; psi is linear, so the kernel
  evaluates psi(r - s). Arbitrary (N, C, H, W) strides are addressed directly.
- ``_sum_kernel``: one program sums the per-program partials (deterministic order, no atomics).

Reductions are deterministic: every forward writes one fp32 partial per program (already
divided by the element count) and ``_sum_kernel`` adds them in a fixed order, so a loss is
bit-identical from run to run. A forward costs two launches.

Backward passes: when an input needs a gradient, the L1 forwards also write an int8 sign code
per element (1 byte; for the gradient L1 both signs of (d/dx, d/dy) in one byte), which the
backward reads instead of re-reading both images. No gradient feature tensor is materialised.
sign(0) = 0 as in PyTorch's ``abs`` backward; a NaN difference gives sign 0 (PyTorch: NaN).
The gradients are not themselves differentiable (``once_differentiable``).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor
from torch.autograd.function import once_differentiable

#: Input dtypes the kernels read (converted to fp32 in registers).
SUPPORTED_DTYPES: frozenset[torch.dtype] = frozenset({torch.float32, torch.float16, torch.bfloat16})

_CE_BLOCK = 1024
_L1_BLOCK = 2048
_SUM_BLOCK = 1024
# Code of "both signs zero" in the packed gradient sign byte: (sx + 1) * 3 + (sy + 1).
_ZERO_CODE = 4


# ----------------------------------------------------------------------------- reductions
@triton.jit
def _sum_kernel(partial_ptr, n, out_ptr, BLOCK: tl.constexpr):
    """out[0] = sum(partial[0:n]) in a fixed order (one program)."""
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for start in range(0, n, BLOCK):
        i = start + tl.arange(0, BLOCK)
        acc += tl.load(partial_ptr + i, mask=i < n, other=0.0)
    tl.store(out_ptr, tl.sum(acc, axis=0))


def _finish(partials: Tensor) -> Tensor:
    out = torch.empty((), dtype=torch.float32, device=partials.device)
    _sum_kernel[(1,)](partials, partials.numel(), out, BLOCK=_SUM_BLOCK)
    return out


# ----------------------------------------------------------------------------- cross-entropy
@triton.jit
def _ce_patch_offsets(pid, P, hw, w, sn, sc, sh, sw, BLOCK: tl.constexpr):
    """Offsets of class-0 logits of the BLOCK patches of program ``pid``, the class stride, and the mask."""
    i = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = i < P
    n = i // hw
    rem = i - n * hw
    y = rem // w
    x = rem - y * w
    return n * sn + y * sh + x * sw, mask


@triton.jit
def _ce_margin(ptr, off, sc, mask, TARGET: tl.constexpr):
    """x = logit(other class) - logit(target class), in fp32; CE = softplus(x)."""
    l0 = tl.load(ptr + off, mask=mask, other=0.0).to(tl.float32)
    l1 = tl.load(ptr + off + sc, mask=mask, other=0.0).to(tl.float32)
    if TARGET == 0:
        x = l1 - l0
    else:
        x = l0 - l1
    return x


@triton.jit
def _ce_fwd_kernel(
    a_ptr, Pa, hwa, wa, sna, sca, sha, swa, inv_a,
    b_ptr, Pb, hwb, wb, snb, scb, shb, swb, inv_b,
    nblocks_a, partial_ptr,
    TARGET_A: tl.constexpr, TARGET_B: tl.constexpr, BLOCK: tl.constexpr,
):
    """partial[pid] = sum over this program's patches of CE / P (map a for pid < nblocks_a, else map b).

    CE(x) = max(x, 0) + log(1 + exp(-|x|)), the value ``log_softmax`` gives (same rounding near 0).
    """
    pid = tl.program_id(0)
    if pid < nblocks_a:
        off, mask = _ce_patch_offsets(pid, Pa, hwa, wa, sna, sca, sha, swa, BLOCK)
        x = _ce_margin(a_ptr, off, sca, mask, TARGET_A)
        scale = inv_a
    else:
        off, mask = _ce_patch_offsets(pid - nblocks_a, Pb, hwb, wb, snb, scb, shb, swb, BLOCK)
        x = _ce_margin(b_ptr, off, scb, mask, TARGET_B)
        scale = inv_b
    ce = tl.maximum(x, 0.0) + tl.log(1.0 + tl.exp(-tl.abs(x)))
    ce = tl.where(mask, ce, 0.0)
    tl.store(partial_ptr + pid, tl.sum(ce, axis=0) * scale)


@triton.jit
def _ce_store_grad(ptr, gptr, off, goff, sc, gsc, mask, g, TARGET: tl.constexpr):
    x = _ce_margin(ptr, off, sc, mask, TARGET)
    s = tl.sigmoid(x) * g  # d CE / d logit(other); d CE / d logit(target) = -s
    if TARGET == 0:
        g0 = -s
        g1 = s
    else:
        g0 = s
        g1 = -s
    tl.store(gptr + goff, g0.to(gptr.dtype.element_ty), mask=mask)
    tl.store(gptr + goff + gsc, g1.to(gptr.dtype.element_ty), mask=mask)


@triton.jit
def _ce_bwd_kernel(
    a_ptr, ga_ptr, Pa, hwa, wa, sna, sca, sha, swa, gsna, gsca, gsha, gswa, inv_a,
    b_ptr, gb_ptr, Pb, hwb, wb, snb, scb, shb, swb, gsnb, gscb, gshb, gswb, inv_b,
    nblocks_a, gout_ptr,
    TARGET_A: tl.constexpr, TARGET_B: tl.constexpr, BLOCK: tl.constexpr,
):
    """grad logits = gout / P * (sigmoid(x) for the other class, -sigmoid(x) for the target)."""
    pid = tl.program_id(0)
    gout = tl.load(gout_ptr).to(tl.float32)
    if pid < nblocks_a:
        off, mask = _ce_patch_offsets(pid, Pa, hwa, wa, sna, sca, sha, swa, BLOCK)
        goff, _ = _ce_patch_offsets(pid, Pa, hwa, wa, gsna, gsca, gsha, gswa, BLOCK)
        _ce_store_grad(a_ptr, ga_ptr, off, goff, sca, gsca, mask, gout * inv_a, TARGET_A)
    else:
        off, mask = _ce_patch_offsets(pid - nblocks_a, Pb, hwb, wb, snb, scb, shb, swb, BLOCK)
        goff, _ = _ce_patch_offsets(pid - nblocks_a, Pb, hwb, wb, gsnb, gscb, gshb, gswb, BLOCK)
        _ce_store_grad(b_ptr, gb_ptr, off, goff, scb, gscb, mask, gout * inv_b, TARGET_B)


def _ce_geometry(logits: Tensor) -> tuple[int, int, int, int, int, int, int]:
    n, _, h, w = logits.shape
    sn, sc, sh, sw = logits.stride()
    return n * h * w, h * w, w, sn, sc, sh, sw


class AdversarialCE(torch.autograd.Function):
    """CE(a, target_a) [+ CE(b, target_b)], each the mean over its N*h*w patches, in one launch.

    ``a``, ``b``: (N, 2, h, w) logits (any strides, fp32/fp16/bf16; ``b`` may be ``None``).
    Returns a 0-dim fp32 tensor. Gradients have the logits' dtype and layout.
    """

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor | None, target_a: int, target_b: int) -> Tensor:  # type: ignore[override]
        geo_a = _ce_geometry(a)
        geo_b = _ce_geometry(b) if b is not None else (0, 1, 1, 0, 0, 0, 0)
        nblocks_a = triton.cdiv(geo_a[0], _CE_BLOCK)
        nblocks = nblocks_a + (triton.cdiv(geo_b[0], _CE_BLOCK) if b is not None else 0)
        partials = torch.empty(nblocks, dtype=torch.float32, device=a.device)
        _ce_fwd_kernel[(nblocks,)](
            a, *geo_a, 1.0 / geo_a[0],
            b if b is not None else a, *geo_b, 1.0 / max(geo_b[0], 1),
            nblocks_a, partials,
            TARGET_A=target_a, TARGET_B=target_b, BLOCK=_CE_BLOCK,
        )
        ctx.save_for_backward(a, b)
        ctx.targets = (target_a, target_b)
        ctx.has_b = b is not None
        return _finish(partials)

    @staticmethod
    @once_differentiable
    def backward(ctx, gout: Tensor):  # type: ignore[override]
        a, b = ctx.saved_tensors
        need_a = ctx.needs_input_grad[0]
        need_b = ctx.has_b and ctx.needs_input_grad[1]
        if not (need_a or need_b):
            return None, None, None, None
        gout = gout.detach().to(torch.float32).reshape(())
        # A map whose gradient is not needed is skipped (zero programs), never written.
        geo_a = _ce_geometry(a)
        geo_b = _ce_geometry(b) if need_b else (0, 1, 1, 0, 0, 0, 0)
        ga = torch.empty_like(a) if need_a else None
        gb = torch.empty_like(b) if need_b else None
        nblocks_a = triton.cdiv(geo_a[0], _CE_BLOCK) if need_a else 0
        nblocks = nblocks_a + (triton.cdiv(geo_b[0], _CE_BLOCK) if need_b else 0)
        dummy_a, dummy_ga = (a, ga) if need_a else (b, gb)
        dummy_b, dummy_gb = (b, gb) if need_b else (dummy_a, dummy_ga)
        _ce_bwd_kernel[(nblocks,)](
            dummy_a, dummy_ga, *geo_a, *dummy_ga.stride(), 1.0 / geo_a[0],
            dummy_b, dummy_gb, *geo_b, *dummy_gb.stride(), 1.0 / max(geo_b[0], 1),
            nblocks_a, gout,
            TARGET_A=ctx.targets[0], TARGET_B=ctx.targets[1], BLOCK=_CE_BLOCK,
        )
        return ga, gb, None, None


# ----------------------------------------------------------------------------- plain L1
@triton.jit
def _l1_fwd_kernel(a_ptr, b_ptr, sign_ptr, E, inv_e, partial_ptr, STORE_SIGN: tl.constexpr, BLOCK: tl.constexpr):
    """partial[pid] = sum |a - b| / E over this program's elements; optionally sign(a - b) as int8."""
    pid = tl.program_id(0)
    i = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = i < E
    d = tl.load(a_ptr + i, mask=mask, other=0.0).to(tl.float32) - tl.load(b_ptr + i, mask=mask, other=0.0).to(tl.float32)
    if STORE_SIGN:
        sgn = tl.where(d > 0, 1, tl.where(d < 0, -1, 0)).to(tl.int8)
        tl.store(sign_ptr + i, sgn, mask=mask)
    tl.store(partial_ptr + pid, tl.sum(tl.abs(d), axis=0) * inv_e)


@triton.jit
def _l1_bwd_kernel(sign_ptr, grad_ptr, E, inv_e, gout_ptr, BLOCK: tl.constexpr):
    """grad_a = sign(a - b) * gout / E."""
    pid = tl.program_id(0)
    i = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = i < E
    g = tl.load(gout_ptr).to(tl.float32) * inv_e
    sgn = tl.load(sign_ptr + i, mask=mask, other=0).to(tl.float32)
    tl.store(grad_ptr + i, (sgn * g).to(grad_ptr.dtype.element_ty), mask=mask)


def _same_dense_layout(a: Tensor, b: Tensor) -> bool:
    """True when a and b are both dense (NCHW- or channels_last-contiguous) with identical strides,
    so that element k of one flat buffer pairs with element k of the other."""
    if a.stride() != b.stride():
        return False
    if a.is_contiguous():
        return True
    return a.ndim == 4 and a.is_contiguous(memory_format=torch.channels_last)


class L1Mean(torch.autograd.Function):
    """mean |a - b| over all elements (fp32 scalar); gradient with respect to ``a`` only.

    ``a``, ``b``: same shape, any dtype in :data:`SUPPORTED_DTYPES`. Both dense in the same
    layout (contiguous or channels_last) are read in place; otherwise both are copied contiguous.
    """

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor) -> Tensor:  # type: ignore[override]
        if not _same_dense_layout(a, b):
            a, b = a.contiguous(), b.contiguous()
        e = a.numel()
        nblocks = triton.cdiv(e, _L1_BLOCK)
        store = bool(ctx.needs_input_grad[0])
        sign = torch.empty_like(a, dtype=torch.int8) if store else a  # empty_like keeps a's strides
        partials = torch.empty(nblocks, dtype=torch.float32, device=a.device)
        _l1_fwd_kernel[(nblocks,)](a, b, sign, e, 1.0 / e, partials, STORE_SIGN=store, BLOCK=_L1_BLOCK)
        if store:
            ctx.save_for_backward(sign)
            ctx.grad_dtype = a.dtype
        return _finish(partials)

    @staticmethod
    @once_differentiable
    def backward(ctx, gout: Tensor):  # type: ignore[override]
        if not ctx.needs_input_grad[0]:
            return None, None
        (sign,) = ctx.saved_tensors
        grad = torch.empty_like(sign, dtype=ctx.grad_dtype)
        e = sign.numel()
        gout = gout.detach().to(torch.float32).reshape(())
        _l1_bwd_kernel[(triton.cdiv(e, _L1_BLOCK),)](sign, grad, e, 1.0 / e, gout, BLOCK=_L1_BLOCK)
        return grad, None


# ----------------------------------------------------------------------------- gradient-psi L1
@triton.jit
def _tap(r_ptr, s_ptr, rbase, sbase, rows, cols, H, W, rsh, rsw, ssh, ssw, DI: tl.constexpr, DJ: tl.constexpr):
    """d = r - s at (clamp(row + DI), clamp(col + DJ)): the replicate-padded neighbour, fp32."""
    ri = tl.minimum(tl.maximum(rows + DI, 0), H - 1)
    cj = tl.minimum(tl.maximum(cols + DJ, 0), W - 1)
    r = tl.load(r_ptr + rbase + ri[:, None] * rsh + cj[None, :] * rsw).to(tl.float32)
    s = tl.load(s_ptr + sbase + ri[:, None] * ssh + cj[None, :] * ssw).to(tl.float32)
    return r - s


@triton.jit
def _tile_coords(pid, C, H, W, BH: tl.constexpr, BW: tl.constexpr):
    tiles_w = tl.cdiv(W, BW)
    tiles = tl.cdiv(H, BH) * tiles_w
    plane = pid // tiles
    t = pid - plane * tiles
    th = t // tiles_w
    tw = t - th * tiles_w
    n = (plane // C).to(tl.int64)
    c = (plane % C).to(tl.int64)
    rows = (th * BH + tl.arange(0, BH)).to(tl.int64)
    cols = (tw * BW + tl.arange(0, BW)).to(tl.int64)
    return plane.to(tl.int64), n, c, rows, cols


@triton.jit
def _grad_l1_fwd_kernel(
    r_ptr, s_ptr, code_ptr, partial_ptr, C, H, W,
    rsn, rsc, rsh, rsw, ssn, ssc, ssh, ssw, inv_m, scale,
    SOBEL: tl.constexpr, STORE_SIGN: tl.constexpr, BH: tl.constexpr, BW: tl.constexpr,
):
    """partial[pid] = sum over this (n, c) tile of |gx| + |gy|, divided by M = N*2C*H*W.

    gx, gy: kornia's first-order spatial gradient of d = r - s (correlation, replicate border):
    Kx[ti, tj] = scale * a[ti] * b[tj], Ky = Kx^T, a = (1, 2, 1) (sobel) or (0, 1, 0) (diff),
    b = (-1, 0, 1); scale = 1/8, 1/2 (normalized) or 1.
    """
    pid = tl.program_id(0)
    plane, n, c, rows, cols = _tile_coords(pid, C, H, W, BH, BW)
    rbase = n * rsn + c * rsc
    sbase = n * ssn + c * ssc
    # Row-wise neighbours (DI = 0) carry the x derivative, column-wise (DJ = 0) the y derivative.
    d0m = _tap(r_ptr, s_ptr, rbase, sbase, rows, cols, H, W, rsh, rsw, ssh, ssw, 0, -1)
    d0p = _tap(r_ptr, s_ptr, rbase, sbase, rows, cols, H, W, rsh, rsw, ssh, ssw, 0, 1)
    dm0 = _tap(r_ptr, s_ptr, rbase, sbase, rows, cols, H, W, rsh, rsw, ssh, ssw, -1, 0)
    dp0 = _tap(r_ptr, s_ptr, rbase, sbase, rows, cols, H, W, rsh, rsw, ssh, ssw, 1, 0)
    if SOBEL:
        dmm = _tap(r_ptr, s_ptr, rbase, sbase, rows, cols, H, W, rsh, rsw, ssh, ssw, -1, -1)
        dmp = _tap(r_ptr, s_ptr, rbase, sbase, rows, cols, H, W, rsh, rsw, ssh, ssw, -1, 1)
        dpm = _tap(r_ptr, s_ptr, rbase, sbase, rows, cols, H, W, rsh, rsw, ssh, ssw, 1, -1)
        dpp = _tap(r_ptr, s_ptr, rbase, sbase, rows, cols, H, W, rsh, rsw, ssh, ssw, 1, 1)
        gx = ((dmp - dmm) + 2.0 * (d0p - d0m) + (dpp - dpm)) * scale
        gy = ((dpm - dmm) + 2.0 * (dp0 - dm0) + (dpp - dmp)) * scale
    else:
        gx = (d0p - d0m) * scale
        gy = (dp0 - dm0) * scale
    valid = (rows < H)[:, None] & (cols < W)[None, :]
    total = tl.where(valid, tl.abs(gx) + tl.abs(gy), 0.0)
    tl.store(partial_ptr + pid, tl.sum(tl.sum(total, axis=1), axis=0) * inv_m)
    if STORE_SIGN:
        sx = tl.where(gx > 0, 1, tl.where(gx < 0, -1, 0))
        sy = tl.where(gy > 0, 1, tl.where(gy < 0, -1, 0))
        code = ((sx + 1) * 3 + (sy + 1)).to(tl.int8)
        tl.store(code_ptr + plane * H * W + rows[:, None] * W + cols[None, :], code, mask=valid)


@triton.jit
def _fold_weight(pos, L, D: tl.constexpr, W_M: tl.constexpr, W_0: tl.constexpr, W_P: tl.constexpr):
    """Weight with which the neighbour q = pos + D reaches pos through the replicate-padded 3-tap
    stencil w = (W_M, W_0, W_P) (taps at -1, 0, +1), i.e.
    sum_t w[t] * [clamp(q + t, 0, L - 1) == pos] * [0 <= q < L]. The tap t = -D always lands on
    pos; the only other one is the padding tap of q = pos itself on a border (t = -1 at pos = 0,
    t = +1 at pos = L - 1), which the clamp folds back onto pos."""
    q = pos + D
    ok = (q >= 0) & (q < L)
    if D == 0:
        w = W_0 + tl.where(pos == 0, W_M, 0.0) + tl.where(pos == L - 1, W_P, 0.0)
    elif D == 1:
        w = tl.where(ok, W_M, 0.0)
    else:
        w = tl.where(ok, W_P, 0.0)
    return w


@triton.jit
def _grad_l1_bwd_kernel(
    code_ptr, grad_ptr, gout_ptr, C, H, W, gsn, gsc, gsh, gsw, inv_m_scale,
    A_M: tl.constexpr, A_0: tl.constexpr, BH: tl.constexpr, BW: tl.constexpr,
):
    """grad_r[p] = gout * scale / M * sum_k sum_q sign_k[q] * sum_t K_k[t] [clamp(q + t) == p].

    The stencils are separable (K_x = a x b, K_y = b x a, a = (A_M, A_0, A_M) the smoothing taps,
    b = (-1, 0, 1)) and so is the replicate clamp, so the inner sum is R_k(p_i, q_i) * C_k(p_j, q_j)
    with q within one pixel of p: 9 sign-code loads per pixel. ``inv_m_scale`` = scale / M.
    """
    pid = tl.program_id(0)
    plane, n, c, rows, cols = _tile_coords(pid, C, H, W, BH, BW)
    g = tl.load(gout_ptr).to(tl.float32) * inv_m_scale
    acc = tl.zeros([BH, BW], dtype=tl.float32)
    code_base = plane * H * W
    for DI in tl.static_range(-1, 2):
        ra = _fold_weight(rows, H, DI, A_M, A_0, A_M)      # smoothing along rows (x derivative)
        rb = _fold_weight(rows, H, DI, -1.0, 0.0, 1.0)     # derivative along rows (y derivative)
        qi = rows + DI
        for DJ in tl.static_range(-1, 2):
            cb = _fold_weight(cols, W, DJ, -1.0, 0.0, 1.0)
            ca = _fold_weight(cols, W, DJ, A_M, A_0, A_M)
            qj = cols + DJ
            ok = ((qi >= 0) & (qi < H))[:, None] & ((qj >= 0) & (qj < W))[None, :]
            code = tl.load(code_ptr + code_base + qi[:, None] * W + qj[None, :], mask=ok, other=4).to(tl.int32)
            sx = (code // 3 - 1).to(tl.float32)
            sy = (code % 3 - 1).to(tl.float32)
            acc += sx * (ra[:, None] * cb[None, :]) + sy * (rb[:, None] * ca[None, :])
    valid = (rows < H)[:, None] & (cols < W)[None, :]
    offs = n * gsn + c * gsc + rows[:, None] * gsh + cols[None, :] * gsw
    tl.store(grad_ptr + offs, (acc * g).to(grad_ptr.dtype.element_ty), mask=valid)


def _memory_format(x: Tensor) -> torch.memory_format:
    if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def _tile(h: int, w: int) -> tuple[int, int]:
    bw = min(triton.next_power_of_2(w), 64)
    bh = min(triton.next_power_of_2(h), max(1024 // bw, 1))
    return bh, bw


def gradient_scale(mode: str, normalized: bool) -> float:
    """The factor kornia's normalisation applies: 1 / sum |kernel| (8 for sobel, 2 for diff)."""
    if not normalized:
        return 1.0
    return 1.0 / 8.0 if mode == "sobel" else 1.0 / 2.0


class GradientL1(torch.autograd.Function):
    """mean |psi(refined) - psi(synthetic)| with psi = ``ImageGradients(mode, normalized)``, fused.

    ``refined``, ``synthetic``: (N, C, H, W), same shape, any strides, fp32/fp16/bf16.
    The mean runs over the N*2C*H*W feature elements psi would have produced (none is stored).
    Returns a 0-dim fp32 tensor; gradient with respect to ``refined`` only.
    """

    @staticmethod
    def forward(ctx, refined: Tensor, synthetic: Tensor, mode: str, normalized: bool) -> Tensor:  # type: ignore[override]
        n, c, h, w = refined.shape
        bh, bw = _tile(h, w)
        nprog = n * c * triton.cdiv(h, bh) * triton.cdiv(w, bw)
        store = bool(ctx.needs_input_grad[0])
        code = torch.empty((n, c, h, w), dtype=torch.int8, device=refined.device) if store else refined
        partials = torch.empty(nprog, dtype=torch.float32, device=refined.device)
        scale = gradient_scale(mode, normalized)
        m = n * 2 * c * h * w
        _grad_l1_fwd_kernel[(nprog,)](
            refined, synthetic, code, partials, c, h, w,
            *refined.stride(), *synthetic.stride(), 1.0 / m, scale,
            SOBEL=(mode == "sobel"), STORE_SIGN=store, BH=bh, BW=bw,
        )
        if store:
            ctx.save_for_backward(code)
            ctx.setup = (mode, scale / m, bh, bw, nprog, refined.dtype, _memory_format(refined))
        return _finish(partials)

    @staticmethod
    @once_differentiable
    def backward(ctx, gout: Tensor):  # type: ignore[override]
        if not ctx.needs_input_grad[0]:
            return None, None, None, None
        (code,) = ctx.saved_tensors
        mode, scale_m, bh, bw, nprog, dtype, memory_format = ctx.setup
        # refined's dtype and layout (dense NCHW or channels_last; any other strides -> NCHW).
        grad = torch.empty(code.shape, dtype=dtype, device=code.device, memory_format=memory_format)
        _, c, h, w = grad.shape
        gout = gout.detach().to(torch.float32).reshape(())
        _grad_l1_bwd_kernel[(nprog,)](
            code, grad, gout, c, h, w, *grad.stride(), scale_m,
            A_M=1.0 if mode == "sobel" else 0.0, A_0=2.0 if mode == "sobel" else 1.0, BH=bh, BW=bw,
        )
        return grad, None, None, None


def _is_interpreted() -> bool:
    try:
        from triton.runtime.interpreter import InterpretedFunction
    except ImportError:  # pragma: no cover - layout of older tritons
        return False
    return isinstance(_l1_fwd_kernel, InterpretedFunction)


#: True when this module was imported with ``TRITON_INTERPRET=1``: the kernels run on CPU tensors.
INTERPRETED: bool = _is_interpreted()
