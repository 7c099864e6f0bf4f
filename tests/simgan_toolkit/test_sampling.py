"""Public helpers for batched simulators."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from simgan_toolkit.sampling import TensorBatch, check_count, check_generator


@dataclass
class Params(TensorBatch):
    a: torch.Tensor
    b: torch.Tensor


def test_tensor_batch_len_device_index_and_to():
    p = Params(torch.arange(4.0), torch.arange(8.0).view(4, 2))
    assert len(p) == 4 and p.device == torch.device("cpu")
    sub = p[torch.tensor([True, False, True, False])]
    assert isinstance(sub, Params) and torch.equal(sub.a, torch.tensor([0.0, 2.0]))
    assert torch.equal(sub.b, torch.tensor([[0.0, 1.0], [4.0, 5.0]]))
    assert torch.equal(p[1:3].a, torch.tensor([1.0, 2.0]))
    assert torch.equal(p.to("cpu").b, p.b)


@pytest.mark.parametrize("n", [0, -3, 2.0, True, "5"])
def test_check_count_rejects(n):
    with pytest.raises(ValueError, match="positive integer"):
        check_count(n)


def test_check_generator():
    assert check_generator(torch.Generator(), "cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="torch.Generator"):
        check_generator(42, "cpu")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="requested on cuda"):
        check_generator(torch.Generator(), "cuda")
