"""training.optim: the configured optimiser, fused where the device allows."""

from __future__ import annotations

import pytest
import torch

from simgan_toolkit.config import OptimizerConfig
from simgan_toolkit.training.optim import build_optimizer, fused_option


def test_cpu_float_parameters_get_the_fused_kernels():
    assert fused_option(list(torch.nn.Linear(3, 2).parameters())) == {"fused": True}


@pytest.mark.parametrize(
    "params",
    [
        [],  # torch rejects an empty parameter list anyway; fused must not be what fails
        [torch.nn.Parameter(torch.zeros(2, device="meta"))],
        [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2, device="meta"))],
    ],
    ids=["empty", "meta", "mixed"],
)
def test_other_devices_get_the_loop(params):
    assert fused_option(params) == {}


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_fused_step_matches_the_loop(name):
    """One step from the same start and gradient: fused and loop agree to float rounding."""
    cfg = OptimizerConfig(name=name, lr=0.1)
    results = []
    for fused in (True, False):
        torch.manual_seed(0)
        layer = torch.nn.Linear(4, 3)
        opt = build_optimizer(layer.parameters(), cfg)
        if not fused:
            opt = type(opt)(layer.parameters(), **{k: v for k, v in opt.defaults.items() if k != "fused"})
        assert bool(opt.defaults.get("fused")) == fused
        for _ in range(2):
            layer(torch.ones(5, 4)).pow(2).sum().backward()
            opt.step()
            opt.zero_grad()
        results.append(layer.weight.detach().clone())
    torch.manual_seed(0)
    start = torch.nn.Linear(4, 3).weight.detach()
    assert (results[0] - start).abs().min() > 1e-3  # both steps moved every weight
    torch.testing.assert_close(results[0], results[1], rtol=1e-6, atol=1e-6)
