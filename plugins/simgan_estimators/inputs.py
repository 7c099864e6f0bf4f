"""Input resizing shared by the estimators that work at a fixed square input size."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def resize_square(x: Tensor, size: int) -> Tensor:
    """(N, C, H, W) -> (N, C, size, size), bilinear and antialiased; ``x`` itself at that size.

    The estimators' ``resize_input``: the training loop applies it once to the training set and
    the model to every evaluation batch, so both sides see exactly the same resizing.
    """
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
