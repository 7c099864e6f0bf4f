"""Optimiser construction from :class:`~simgan_toolkit.config.OptimizerConfig`."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from simgan_toolkit.config import OptimizerConfig


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    """SGD (the paper's choice) or Adam, as configured."""
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum)
    return torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
