"""Run in a subprocess with TRITON_INTERPRET=1 by test_losskernels.py: the Triton kernels on CPU.

Prints one JSON object: whether the kernels are interpreted, the kernel-vs-reference reports
(:func:`simgan_losskernels.check.run_checks`, fp32 and bf16), the hand-computed cases and a benchmark smoke run.
"""

from __future__ import annotations

import json
import os
import sys

assert os.environ.get("TRITON_INTERPRET") == "1", "run with TRITON_INTERPRET=1"

import torch
from simgan_losskernels.bench import time_losses
from simgan_losskernels.check import hand_cases, run_checks
from simgan_losskernels.loss import kernels_module

torch.set_num_threads(1)
seed = int(sys.argv[1]) if len(sys.argv) > 1 else 0
cpu = torch.device("cpu")
kernels = kernels_module()
report = {
    "interpreted": bool(kernels is not None and kernels.INTERPRETED),
    "checks": run_checks(cpu, torch.float32, "tiny", seed=seed),
    "checks_bf16": run_checks(cpu, torch.bfloat16, "tiny", seed=seed + 1),
    "hand": hand_cases(cpu),
    "bench": time_losses((1, 1, 4, 5), torch.float32, cpu, logits_shape=(1, 2, 2, 2), iters=1, warmup=0, peak=1e9),
}
json.dump(report, sys.stdout)
