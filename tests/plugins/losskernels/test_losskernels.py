"""The Triton loss plugin: registration, kernels vs the reference (CPU interpreter and CUDA),
hand-computed values, CPU fallback, GPU compilability and the benchmark helper."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from simgan_toolkit.features import ChannelMean, ImageGradients
from simgan_toolkit.losses import REFINED, SimGANLoss, local_adversarial_loss
from simgan_toolkit.training.build import select_loss

HERE = Path(__file__).parent
FP32_BOUND = 1e-5
LOW_PRECISION_BOUND = 1e-2  # bf16/fp16 inputs vs the fp32 reference on the same values
KERNEL_PATHS = {"AdversarialCEBackward", "L1MeanBackward", "GradientL1Backward"}

try:
    import triton  # noqa: F401

    HAS_TRITON = True
except Exception:  # noqa: BLE001 - a broken install counts as absent
    HAS_TRITON = False

needs_triton = pytest.mark.skipif(not HAS_TRITON, reason="triton not importable")


def _assert_report(checks: dict, bound: float, context: str) -> None:
    assert checks, "no checks ran"
    for case, entry in checks.items():
        # Every term came from a kernel's autograd Function (the reference gives e.g. NllLoss2DBackward0).
        assert all(p in KERNEL_PATHS for p in entry["path"].split("+")), (context, case, entry)
        for key, value in entry.items():
            if key == "value" or (key.startswith("grad") and isinstance(value, float)):
                assert value < bound, (context, case, key, value)
            elif isinstance(value, bool):
                assert value, (context, case, key)


# ----------------------------------------------------------------------------- (i) registration
def test_registered_with_priority_and_auto_picks_reference_on_cpu(registry):
    entry = registry.get("loss", "triton")
    assert entry.priority == 10 and entry.plugin == "losskernels"
    assert not entry.available(torch.device("cpu"))
    name, loss = select_loss(registry, "auto", torch.device("cpu"))
    assert name == "reference" and type(loss) is SimGANLoss


def test_available_on_cuda_when_triton_imports(registry):
    from simgan_losskernels import plugin

    entry = registry.get("loss", "triton")
    assert entry.available(torch.device("cuda")) is HAS_TRITON
    assert entry.available("cuda:1") is HAS_TRITON
    assert entry.available("cpu") is False
    if HAS_TRITON:
        # The highest-priority available entry for a CUDA device is this one.
        candidates = [e for e in registry.entries("loss") if e.available(torch.device("cuda"))]
        assert max(candidates, key=lambda e: e.priority).name == "triton"
    assert plugin.PRIORITY > registry.get("loss", "reference").priority


def test_entry_point_module_is_cheap():
    code = "import sys, simgan_losskernels.plugin; print('triton' in sys.modules, 'simgan_losskernels.kernels' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["False", "False"]


@needs_triton
def test_factory_builds_the_triton_loss(registry):
    from simgan_losskernels.loss import TritonSimGANLoss

    loss = registry.get("loss", "triton").factory()
    assert isinstance(loss, TritonSimGANLoss) and isinstance(loss, SimGANLoss)


# ----------------------------------------------------------------------------- (ii), (iv) interpreter
@pytest.fixture(scope="module")
def interpreted():
    """Kernels run by Triton's interpreter on CPU tensors, in one subprocess (TRITON_INTERPRET must
    be set before triton decorates the kernels). Fresh random inputs; the seed is in messages."""
    if not HAS_TRITON:
        pytest.skip("triton not importable")
    seed = int(os.environ.get("SIMGAN_TEST_SEED", random.randrange(2**31)))
    env = dict(os.environ, TRITON_INTERPRET="1", OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, str(HERE / "interpret_run.py"), str(seed)],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout)
    report["seed"] = seed
    return report


def test_interpreter_really_runs_the_triton_kernels(interpreted):
    assert interpreted["interpreted"] is True
    paths = {entry["path"] for entry in interpreted["checks"].values()}
    assert {"AdversarialCEBackward", "L1MeanBackward", "GradientL1Backward"} <= paths
    assert "AdversarialCEBackward+GradientL1Backward" in paths  # refiner loss from images, fused psi
    assert "AdversarialCEBackward+L1MeanBackward" in paths  # other psi -> L1 kernel


@pytest.mark.parametrize("family", ["refiner_ce", "discriminator_ce", "l1", "gradient_l1", "refiner_loss_from_images"])
def test_kernels_match_reference_fp32_interpreter(interpreted, family):
    checks = {k: v for k, v in interpreted["checks"].items() if k.split("/")[0] == family}
    _assert_report(checks, FP32_BOUND, f"seed={interpreted['seed']}")


def test_kernels_match_reference_bf16_interpreter(interpreted):
    """bf16 inputs, fp32 reference on the same values: values agree to fp32 rounding (except an
    unfused psi, which runs in bf16 as in the reference on bf16 images); gradients are rounded to
    bf16 (the interpreter truncates where a GPU rounds to nearest, so up to 2**-7 here)."""
    checks = interpreted["checks_bf16"]
    assert "gradient_l1/mixed_dtypes" in checks
    _assert_report(checks, LOW_PRECISION_BOUND, f"seed={interpreted['seed'] + 1} bf16")


def test_gradient_psi_covers_all_options_and_layouts(interpreted):
    cases = {k for k in interpreted["checks"] if k.startswith("gradient_l1/")}
    for mode in ("sobel", "diff"):
        for normalized in (True, False):
            assert f"gradient_l1/{mode}/{normalized}/0/contiguous" in cases
    assert {"gradient_l1/sobel/True/0/channels_last", "gradient_l1/sobel/True/0/strided"} <= cases
    # 1-pixel-wide, 1-pixel-high and 1x1 images exercise the replicate-border folding.
    assert {"gradient_l1/sobel/True/1/contiguous", "gradient_l1/sobel/True/2/contiguous", "gradient_l1/sobel/True/3/contiguous"} <= cases


def test_hand_computed_cross_entropy(interpreted):
    hand = interpreted["hand"]
    # Logits (real, refined) = (0, ln 3): p(real) = 1/4.
    assert hand["ce_real"]["value"] == pytest.approx(math.log(4), rel=1e-6)
    assert hand["ce_real"]["grad"] == pytest.approx([-0.75, 0.75], rel=1e-6)  # p - onehot(real)
    assert hand["ce_refined"]["value"] == pytest.approx(math.log(4 / 3), rel=1e-6)
    assert hand["ce_refined"]["grad"] == pytest.approx([0.25, -0.25], rel=1e-6)
    # L_D: refined map (0, ln 3) as class 1 -> ln 4/3; real map (ln 3, 0) as class 0 -> ln 4/3.
    assert hand["discriminator"]["value"] == pytest.approx(2 * math.log(4 / 3), rel=1e-6)
    assert {hand[k]["path"] for k in ("ce_real", "ce_refined", "discriminator")} == {"AdversarialCEBackward"}


def test_hand_computed_l1(interpreted):
    hand = interpreted["hand"]
    # a = (1, -2), b = (0.5, 1): (0.5 + 3) / 2; gradient sign(a - b) / 2.
    assert hand["l1"]["value"] == pytest.approx(1.75, rel=1e-7)
    assert hand["l1"]["grad"] == [0.5, -0.5]
    assert hand["l1"]["path"] == "L1MeanBackward"


def test_hand_computed_gradient_l1(interpreted):
    # r = (0, 1) in a 1x2 image, s = 0, normalized sobel, replicate border: d/dx = 4/8 * (1 - 0)
    # at both pixels, d/dy = 0; mean over 2C*H*W = 4 elements = 0.25. Gradient: each d/dx is
    # (r1 - r0) / 2, so dL/dr = (-1/2 - 1/2, 1/2 + 1/2) / 4 = (-0.25, 0.25).
    hand = interpreted["hand"]["gradient_l1"]
    assert hand["value"] == pytest.approx(0.25, rel=1e-7)
    assert hand["grad"] == pytest.approx([-0.25, 0.25], rel=1e-7)
    assert hand["path"] == "GradientL1Backward"


def test_benchmark_runs_in_interpreter_mode(interpreted):
    bench = interpreted["bench"]
    assert set(bench["terms"]) == {"refiner_ce", "discriminator_ce", "l1", "gradient_l1"}
    for term in bench["terms"].values():
        assert term["fused_ms"] > 0 and term["eager_ms"] > 0
        assert 0 < term["fused_bytes"] < term["eager_bytes"]


# ----------------------------------------------------------------------------- (v) CPU fallback
@needs_triton
def test_cpu_fallback_equals_reference_exactly():
    from simgan_losskernels.loss import TritonSimGANLoss, kernels_module

    kernels = kernels_module()
    assert kernels is not None and not kernels.INTERPRETED  # this process: compiled mode, CPU -> fallback
    g = torch.Generator().manual_seed(1)
    fused, ref = TritonSimGANLoss(), SimGANLoss()
    logits_f, logits_r = torch.randn(2, 2, 3, 3, generator=g), torch.randn(3, 2, 3, 3, generator=g)
    synthetic = torch.randn(2, 1, 6, 7, generator=g)
    refined = torch.randn(2, 1, 6, 7, generator=g)
    for psi in (ImageGradients(), ImageGradients("diff", False), ChannelMean()):
        results = []
        for loss in (fused, ref):
            r = refined.clone().requires_grad_(True)
            lg = logits_f.clone().requires_grad_(True)
            parts = loss.refiner_loss_from_images(lg, r, synthetic, psi, 0.5)
            parts.total.backward()
            results.append((parts.total, parts.adversarial, parts.regularization, r.grad, lg.grad))
        for got, expected in zip(*results):
            assert torch.equal(got, expected)
    assert torch.equal(fused.discriminator_loss(logits_f, logits_r), ref.discriminator_loss(logits_f, logits_r))
    assert torch.equal(fused.regularization(refined, synthetic), ref.regularization(refined, synthetic))
    assert torch.equal(
        fused.regularization_from_images(refined, synthetic, ImageGradients()),
        ref.regularization_from_images(refined, synthetic, ImageGradients()),
    )
    assert torch.equal(fused.adversarial(logits_f, REFINED), local_adversarial_loss(logits_f, REFINED))


@needs_triton
def test_fallback_keeps_reference_errors():
    from simgan_losskernels.loss import TritonSimGANLoss

    with pytest.raises(ValueError, match=r"\(N, 2, h, w\)"):
        TritonSimGANLoss().discriminator_loss(torch.zeros(1, 3, 2, 2), torch.zeros(1, 2, 2, 2))
    with pytest.raises(ValueError, match="feature shapes differ"):
        TritonSimGANLoss().regularization(torch.zeros(1, 1, 2, 2), torch.zeros(1, 2, 2, 2))


# ----------------------------------------------------------------------------- compiles for a GPU
@needs_triton
def test_kernels_compile_for_sm90_without_a_gpu():
    """Triton's full pipeline down to a cubin for sm_90 (H100/H200), which the interpreter skips."""
    pytest.importorskip("triton.backends.nvidia")
    import triton
    from simgan_losskernels import kernels as k
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    def compile_(fn, types: dict[str, str], consts: dict[str, object]) -> None:
        sig = {n: ("constexpr" if n in consts else types.get(n, "i32")) for n in fn.arg_names}
        src = ASTSource(fn, sig, constexprs={(fn.arg_names.index(n),): v for n, v in consts.items()})
        compiled = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": 4})
        assert compiled.asm["cubin"]

    try:
        compile_(k._sum_kernel, {"partial_ptr": "*fp32", "out_ptr": "*fp32"}, {"BLOCK": 1024})
    except Exception as exc:  # no ptxas / nvidia backend in this environment
        if "ptxas" in str(exc).lower():
            pytest.skip(f"cannot compile for CUDA here: {exc}")
        raise
    f32 = {"inv_a": "fp32", "inv_b": "fp32", "inv_e": "fp32", "inv_m": "fp32", "scale": "fp32", "inv_m_scale": "fp32"}
    compile_(k._ce_fwd_kernel, {**f32, "a_ptr": "*bf16", "b_ptr": "*bf16", "partial_ptr": "*fp32"}, {"TARGET_A": 1, "TARGET_B": 0, "BLOCK": 1024})
    compile_(k._ce_bwd_kernel, {**f32, "a_ptr": "*fp32", "b_ptr": "*fp32", "ga_ptr": "*fp32", "gb_ptr": "*fp32", "gout_ptr": "*fp32"},
             {"TARGET_A": 1, "TARGET_B": 0, "BLOCK": 1024})
    compile_(k._l1_fwd_kernel, {**f32, "a_ptr": "*bf16", "b_ptr": "*bf16", "sign_ptr": "*i8", "partial_ptr": "*fp32"}, {"STORE_SIGN": True, "BLOCK": 2048})
    compile_(k._l1_bwd_kernel, {**f32, "sign_ptr": "*i8", "grad_ptr": "*bf16", "gout_ptr": "*fp32"}, {"BLOCK": 2048})
    compile_(k._grad_l1_fwd_kernel, {**f32, "r_ptr": "*fp32", "s_ptr": "*bf16", "code_ptr": "*i8", "partial_ptr": "*fp32"},
             {"SOBEL": True, "STORE_SIGN": True, "BH": 16, "BW": 64})
    compile_(k._grad_l1_bwd_kernel, {**f32, "code_ptr": "*i8", "grad_ptr": "*fp32", "gout_ptr": "*fp32"}, {"A_M": 1.0, "A_0": 2.0, "BH": 16, "BW": 64})


# ----------------------------------------------------------------------------- benchmark helper
@needs_triton
def test_benchmark_skips_cleanly_without_kernels():
    from simgan_losskernels.bench import time_losses

    assert "skipped" in time_losses((1, 1, 4, 4), device="cpu", iters=1, warmup=0)
    if not torch.cuda.is_available():
        assert "skipped" in time_losses((1, 1, 4, 4), device="cuda", iters=1, warmup=0)


# ----------------------------------------------------------------------------- (iii) CUDA
cuda = pytest.mark.skipif(not (HAS_TRITON and torch.cuda.is_available()), reason="needs CUDA and triton")


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("dtype,bound", [(torch.float32, FP32_BOUND), (torch.bfloat16, LOW_PRECISION_BOUND), (torch.float16, LOW_PRECISION_BOUND)])
@pytest.mark.parametrize("size", ["tiny", "large"])
def test_kernels_match_reference_cuda(dtype, bound, size):
    from simgan_losskernels.check import run_checks

    seed = random.randrange(2**31)
    _assert_report(run_checks(torch.device("cuda"), dtype, size, seed=seed), bound, f"seed={seed} {dtype} {size}")


@pytest.mark.cuda
@cuda
def test_hand_computed_cuda_and_auto_picks_triton(registry):
    from simgan_losskernels.check import hand_cases
    from simgan_losskernels.loss import TritonSimGANLoss

    hand = hand_cases(torch.device("cuda"))
    assert hand["ce_real"]["value"] == pytest.approx(math.log(4), rel=1e-6)
    assert hand["l1"]["value"] == pytest.approx(1.75, rel=1e-7)
    assert hand["gradient_l1"]["grad"] == pytest.approx([-0.25, 0.25], rel=1e-7)
    name, loss = select_loss(registry, "auto", torch.device("cuda"))
    assert name == "triton" and isinstance(loss, TritonSimGANLoss)


@pytest.mark.cuda
@cuda
def test_losses_are_deterministic_cuda():
    from simgan_losskernels.loss import TritonSimGANLoss

    g = torch.Generator().manual_seed(0)
    r, s = torch.randn(32, 3, 64, 64, generator=g).cuda(), torch.randn(32, 3, 64, 64, generator=g).cuda()
    loss = TritonSimGANLoss()
    values = {loss.regularization_from_images(r, s, ImageGradients()).item() for _ in range(5)}
    assert len(values) == 1


@pytest.mark.cuda
@cuda
def test_benchmark_cuda_small():
    from simgan_losskernels.bench import time_losses

    out = time_losses((8, 3, 64, 64), torch.float32, "cuda", iters=3, warmup=1, peak=1e12)
    assert set(out["terms"]) == {"refiner_ce", "discriminator_ce", "l1", "gradient_l1"}
    assert all(t["fused_ms"] > 0 for t in out["terms"].values())

