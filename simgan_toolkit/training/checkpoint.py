"""Atomic checkpoints: written to a temporary file, then renamed over the old one.

A full disk is a one-line error naming the checkpoint ("no space left on device"), and the
previous checkpoint stays intact, so the run resumes from it once space is freed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from simgan_toolkit.errors import DataError
from simgan_toolkit.io import atomic_torch_save


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """``torch.save(state)`` to ``path`` atomically; a crash leaves the previous checkpoint intact.

    Raises:
        DataError: the filesystem refused the write (e.g. no space left), naming ``path``.
    """
    atomic_torch_save(state, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`, with a clear error if it is not one."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"checkpoint {str(p)!r} does not exist")
    try:
        state = torch.load(p, map_location=map_location, weights_only=False)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise DataError(f"checkpoint {str(p)!r} cannot be read ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or "format" not in state:
        raise DataError(f"checkpoint {str(p)!r} is not a simgan-toolkit checkpoint (no 'format' key)")
    return state
