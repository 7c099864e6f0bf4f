"""The paper's refiner: a fully convolutional ResNet with no striding or pooling."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from simgan_toolkit.networks.base import Refiner


#: Initial log-odds of the dropout head ("no reading" nearly never at first).
DROPOUT_INIT_LOGIT = -9.0
#: Temperature of the relaxed draw whose gradient the straight-through estimator uses.
DROPOUT_TEMPERATURE = 0.5


def dropout_draw(logits: Tensor, normal_noise: Tensor, temperature: float = DROPOUT_TEMPERATURE) -> tuple[Tensor, Tensor]:
    """Bernoulli(sigmoid(logits)) draw with a straight-through gradient, per pixel.

    ``logits`` and ``normal_noise`` (standard normal) are (N, C, H, W). The noise becomes a
    uniform ``u = Phi(noise)`` and a logistic sample ``log u - log(1 - u)``; a pixel is dropped
    where ``logits`` plus that sample is positive, which happens with probability
    ``sigmoid(logits)``.

    Returns ``(dropped, surrogate)``: the bool draw, and a tensor that is exactly zero but has
    the gradient of the relaxed draw ``sigmoid((logits + sample) / temperature)`` (Maddison et
    al. 2017's binary concrete). Multiply the surrogate by the change a drop makes and add it
    to the hard result, so the forward value stays exact.
    """
    u = torch.special.ndtr(normal_noise).clamp(1e-6, 1.0 - 1e-6)
    z = logits + (torch.log(u) - torch.log1p(-u))
    soft = torch.sigmoid(z / temperature)
    return z > 0, soft - soft.detach()


class ResidualBlock(nn.Module):
    """Two ``kernel_size`` convolutions with ``width`` maps and an identity skip.

    (N, width, H, W) -> (N, width, H, W); padding keeps H and W.
    """

    def __init__(self, width: int, kernel_size: int = 3, padding_mode: str = "zeros") -> None:
        super().__init__()
        pad = kernel_size // 2
        self.conv1 = nn.Conv2d(width, width, kernel_size, padding=pad, padding_mode=padding_mode)
        self.conv2 = nn.Conv2d(width, width, kernel_size, padding=pad, padding_mode=padding_mode)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(x + self.conv2(self.act(self.conv1(x))))


class ResNetRefiner(Refiner):
    """Conv(k, width) -> ``blocks`` x ResidualBlock -> 1x1 conv to ``in_channels``.

    Eyes (paper): k=3, width=64, blocks=4. Hands: k=7, blocks=10.

    Args:
        in_channels: image channels C.
        width: feature maps in every layer.
        blocks: number of residual blocks.
        kernel_size: odd size of every spatial filter.
        output: ``"tanh"`` (the paper's layout: the 1x1 conv's output squashed to [-1, 1]) or
            ``"residual"`` (``clamp(x + 1x1conv(.))``, last layer zero-initialised, so the
            refiner starts as the identity and self-regularisation pretraining converges in
            far fewer steps; useful on a CPU budget).
        noise_channels: extra standard-normal input maps. The paper's refiner has none, which
            makes it deterministic: it cannot produce *random* sensor noise on flat synthetic
            regions. With K > 0 it can model a noise distribution (the paper's future work).
        residual_clamp: how ``"residual"`` output is clamped to [-1, 1]. ``"hard"``: a plain
            clamp, whose gradient is zero wherever it clamps, so a refiner that once pushed every
            pixel past the range (a white image) never receives a gradient again and stays
            saturated (seen with a group-norm discriminator, docs/gaze.md). ``"straight_through"``:
            the same forward values, gradients as if unclamped, so self-regularisation pulls
            it back. Off in every profile: in default gaze runs on two cameras the refiner then
            drifted into grey, label-losing images (docs/gaze.md).
        padding_mode: border padding of every spatial convolution (``zeros``, ``replicate``,
            ``reflect``). Zero padding tells the refiner where the border is, and adversarial
            training then paints frames along it that the target does not have.
        missing_value: the value a real sensor writes where it has no reading (depth cameras:
            the far value), or None. With a value the refiner gets a *dropout head*: one more
            1x1 conv gives a per-pixel log-odds map of "no reading", a Bernoulli draw from it
            (driven by one extra noise map) sets those pixels to exactly ``missing_value``.
            Real dropout is random and exact (a hole is the far value, not almost), which a
            residual cannot draw without painting speckle elsewhere. Training uses the
            straight-through estimator: the forward pass is the hard draw, gradients flow
            through the relaxed (logistic) draw. Experimental, off in every profile: on the
            hand targets it either drew speckle (with a noise input) or, without one, saturated
            at "drop everything" and never came back (docs/hand.md, "The dropout head").

    Shapes: (N, C, H, W) -> (N, C, H, W) for any H, W.
    """

    def __init__(
        self,
        in_channels: int,
        width: int = 64,
        blocks: int = 4,
        kernel_size: int = 3,
        output: Literal["tanh", "residual"] = "tanh",
        noise_channels: int = 0,
        padding_mode: Literal["zeros", "replicate", "reflect"] = "zeros",
        missing_value: float | None = None,
        residual_clamp: Literal["hard", "straight_through"] = "hard",
    ) -> None:
        super().__init__()
        if residual_clamp not in ("hard", "straight_through"):
            raise ValueError(f"refiner residual_clamp must be 'hard' or 'straight_through', got {residual_clamp!r}")
        if kernel_size % 2 != 1:
            raise ValueError(f"refiner kernel_size must be odd to keep H and W, got {kernel_size}")
        if output not in ("tanh", "residual"):
            raise ValueError(f"refiner output must be 'tanh' or 'residual', got {output!r}")
        self.in_channels = in_channels
        self.output = output
        self.residual_clamp = residual_clamp
        self.missing_value = missing_value
        # The dropout head's draw needs one uniform map per image channel; it arrives as extra
        # standard-normal noise maps so that `sample_noise` (and its generator) stays the one
        # source of randomness. They are not inputs of the convolutions.
        self.input_noise_channels = noise_channels
        self.noise_channels = noise_channels + (in_channels if missing_value is not None else 0)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels + noise_channels, width, kernel_size, padding=kernel_size // 2, padding_mode=padding_mode),
            nn.ReLU(inplace=True),
        )
        self.blocks = nn.Sequential(*[ResidualBlock(width, kernel_size, padding_mode) for _ in range(blocks)])
        self.head = nn.Conv2d(width, in_channels, 1)
        if output == "residual":
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)
        self.dropout_head: nn.Conv2d | None = None
        if missing_value is not None:
            self.dropout_head = nn.Conv2d(width, in_channels, 1)
            # Starts (nearly) the identity: no pixel dropped unless its draw is beyond 9 logits,
            # which a logistic draw is once in ~8000 pixels.
            nn.init.zeros_(self.dropout_head.weight)
            nn.init.constant_(self.dropout_head.bias, DROPOUT_INIT_LOGIT)

    def _clamp_residual(self, raw: Tensor) -> Tensor:
        """``raw`` clamped to [-1, 1]. ``hard``: no gradient where it clamps. ``straight_through``:
        the same values, but the gradient passes as if unclamped, so a refiner pushed past the
        range everywhere (a white or black image) still feels the self-regularisation pulling it
        back; with ``hard`` every gradient is zero there and it stays saturated for good."""
        clamped = raw.clamp(-1.0, 1.0)
        if self.residual_clamp == "hard":
            return clamped
        return raw + (clamped - raw).detach()

    def forward(self, x: Tensor, noise: Tensor | None = None) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"refiner expects (N, {self.in_channels}, H, W), got {tuple(x.shape)}")
        if self.noise_channels and noise is None:
            noise = self.sample_noise(x)
        conv_noise = noise[:, : self.input_noise_channels] if noise is not None else None
        inp = torch.cat([x, conv_noise], dim=1) if self.input_noise_channels else x
        features = self.blocks(self.stem(inp))
        out = self.head(features)
        refined = self._clamp_residual(x + out) if self.output == "residual" else torch.tanh(out)
        if self.dropout_head is None:
            return refined
        assert noise is not None and self.missing_value is not None
        dropped, surrogate = dropout_draw(self.dropout_head(features), noise[:, self.input_noise_channels :])
        missing = torch.full_like(refined, self.missing_value)
        return torch.where(dropped, missing, refined) + surrogate * (missing - refined)
