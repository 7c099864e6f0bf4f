"""Helpers for batched, seeded simulators (public API for domain plugins).

A simulator draws per-image parameters as a dataclass of (N, ...) tensors and renders them;
:class:`TensorBatch` gives such a dataclass ``len``, ``.device``, ``.to`` and sub-batch
indexing, and the two checks turn the usual caller mistakes into clear ``ValueError``s.
"""

from __future__ import annotations

from dataclasses import fields
from typing import TypeVar

import torch

_B = TypeVar("_B", bound="TensorBatch")


class TensorBatch:
    """Mixin for dataclasses whose every field is a tensor with the batch in dimension 0."""

    def _tensors(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]

    def __len__(self) -> int:
        return int(next(iter(self._tensors().values())).shape[0])

    @property
    def device(self) -> torch.device:
        """Device all fields live on."""
        return next(iter(self._tensors().values())).device

    def to(self: _B, device: torch.device | str) -> _B:
        """A copy with every field moved to ``device``."""
        return type(self)(**{k: v.to(device) for k, v in self._tensors().items()})

    def __getitem__(self: _B, index: slice | torch.Tensor) -> _B:
        """A sub-batch (slice, index tensor or boolean mask) of every field."""
        return type(self)(**{k: v[index] for k, v in self._tensors().items()})


def check_count(n: int) -> None:
    """Raise ValueError unless ``n`` is a positive integer."""
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ValueError(f"number of images must be a positive integer, got {n!r}")


def check_generator(generator: torch.Generator, device: torch.device | str) -> torch.device:
    """Raise ValueError unless ``generator`` lives on ``device``; return ``device`` normalised.

    torch only draws from a generator on its own device, and silently drawing on another
    device would break the determinism callers rely on, so a mismatch is an input error.
    """
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    dev = torch.device(device)
    gdev = generator.device
    same = dev.type == gdev.type
    if same and dev.type != "cpu":
        # "cuda" without an index means the current device.
        cur = torch.cuda.current_device() if dev.type == "cuda" else 0
        same = (dev.index if dev.index is not None else cur) == (gdev.index if gdev.index is not None else cur)
    if not same:
        raise ValueError(
            f"generator is on device {gdev} but images are requested on {dev}; "
            f"create it with torch.Generator(device={str(dev)!r})"
        )
    return dev
