"""Entry-point module of the loss-kernels plugin: registers the ``"triton"`` loss.

Importing it is cheap: neither torch nor triton is imported here; ``available`` imports triton
once (cached), the factory imports the loss module.
"""

from __future__ import annotations

import functools
from typing import Any

from simgan_toolkit.plugin import Register, hookimpl

PRIORITY = 10


@functools.lru_cache(maxsize=1)
def triton_importable() -> bool:
    """Whether ``import triton`` succeeds (checked once)."""
    try:
        import triton  # noqa: F401
    except Exception:  # noqa: BLE001 - ImportError, or a broken install failing otherwise at import
        return False
    return True


def available(device: Any) -> bool:
    """The kernels run on CUDA devices (``torch.device`` or a name like ``"cuda:0"``) when Triton imports."""
    kind = getattr(device, "type", None) or str(device).split(":", 1)[0]
    return kind == "cuda" and triton_importable()


def _triton_loss() -> Any:
    from simgan_losskernels.loss import TritonSimGANLoss

    return TritonSimGANLoss()


@hookimpl
def simgan_register_losses(register: Register) -> None:
    register.loss(
        "triton",
        _triton_loss,
        priority=PRIORITY,
        available=available,
        description="Triton kernels (fused CE, L1, gradient-psi L1), fp32 accumulation; CUDA only",
    )
