"""How the training steps run R and D: plain, DDP-wrapped and/or ``torch.compile``-d.

- ``refiner_train``: R in the refiner step (gradients flow; DDP averages them).
- ``refiner_plain``: R in the discriminator step, under ``no_grad``: the underlying module,
  since nothing is to be synchronised there.
- ``disc_train``: D in the discriminator step (DDP averages its gradients).
- ``disc_frozen``: D in the refiner step, where its parameters are frozen: the underlying
  module, because DDP must not expect gradients for them.

DDP keeps its default ``broadcast_buffers=True``: at every discriminator step rank 0's buffers
(batch-norm running statistics of a ``norm = "batch"`` discriminator) are copied to the other
ranks. D always trains in train mode, where batch norm uses the statistics of each rank's own
batch, so this only keeps the buffers (and rank 0's checkpoint) alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel


@dataclass
class Forwards:
    """The callables the steps run R (``(x, noise) -> refined``) and D (``x -> logits``) through."""

    refiner_train: Callable[..., Tensor]
    refiner_plain: Callable[..., Tensor]
    disc_train: Callable[[Tensor], Tensor]
    disc_frozen: Callable[[Tensor], Tensor]


def build_forwards(
    refiner: nn.Module, discriminator: nn.Module, device: torch.device, *, distributed: bool, compile_mode: str | None,
) -> Forwards:
    """The forwards of ``refiner`` and ``discriminator`` on ``device``: DDP-wrapped when
    ``distributed``, compiled with ``compile_mode`` unless it is None."""
    r_train: nn.Module = refiner
    d_train: nn.Module = discriminator
    if distributed:
        ddp_args: dict[str, Any] = {}
        if device.type == "cuda":
            index = device.index if device.index is not None else torch.cuda.current_device()
            ddp_args["device_ids"] = [index]
        r_train = DistributedDataParallel(refiner, **ddp_args)
        d_train = DistributedDataParallel(discriminator, **ddp_args)
    r_plain: nn.Module = refiner
    d_plain: nn.Module = discriminator
    if compile_mode is not None:
        # torch.compile(DDP(m)) is the supported order: dynamo splits the graph at DDP's
        # gradient buckets so communication overlaps the backward pass.
        r_train = torch.compile(r_train, mode=compile_mode)
        d_train = torch.compile(d_train, mode=compile_mode)
        r_plain = torch.compile(refiner, mode=compile_mode) if distributed else r_train
        d_plain = torch.compile(discriminator, mode=compile_mode) if distributed else d_train
    return Forwards(r_train, r_plain, d_train, d_plain)
