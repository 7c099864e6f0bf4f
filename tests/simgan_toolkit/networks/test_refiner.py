"""ResNetRefiner: shape preservation, no striding/pooling, identity start, output range, noise, gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from simgan_toolkit.networks import Refiner, ResidualBlock, ResNetRefiner


@pytest.mark.parametrize("h,w", [(35, 55), (17, 23), (1, 1)])
@pytest.mark.parametrize("kernel_size", [3, 5])
def test_keeps_shape_for_odd_sizes(h, w, kernel_size):
    torch.manual_seed(0)
    r = ResNetRefiner(2, width=4, blocks=2, kernel_size=kernel_size)
    out = r(torch.randn(3, 2, h, w))
    assert out.shape == (3, 2, h, w)


def test_only_stride_one_convs_and_no_pooling():
    r = ResNetRefiner(1, width=4, blocks=3, kernel_size=7)
    convs = [m for m in r.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 + 2 * 3 + 1  # stem, two per block, 1x1 head
    for conv in convs:
        assert conv.stride == (1, 1)
        assert conv.dilation == (1, 1)
        assert conv.padding == (conv.kernel_size[0] // 2, conv.kernel_size[1] // 2)
    pooling = [m for m in r.modules() if "Pool" in type(m).__name__ or isinstance(m, nn.Upsample)]
    assert pooling == []
    assert r.head.kernel_size == (1, 1)


def test_residual_output_starts_as_identity_exactly():
    torch.manual_seed(0)
    r = ResNetRefiner(3, width=4, blocks=2, output="residual")
    x = torch.rand(2, 3, 9, 11) * 2 - 1
    assert torch.equal(r(x), x)


def test_residual_output_is_clamped():
    r = ResNetRefiner(1, width=4, blocks=1, output="residual")
    with torch.no_grad():
        r.head.bias.fill_(5.0)
    x = torch.zeros(1, 1, 4, 4)
    assert torch.equal(r(x), torch.ones_like(x))


def _saturated_refiner(residual_clamp):
    """A residual refiner whose head pushes every pixel 5 past the top of the range."""
    r = ResNetRefiner(1, width=4, blocks=1, output="residual", residual_clamp=residual_clamp)
    with torch.no_grad():
        r.head.bias.fill_(5.0)
    return r


def test_straight_through_clamp_gives_the_same_values_as_the_hard_one():
    torch.manual_seed(0)
    x = torch.rand(2, 1, 6, 7) * 2 - 1
    hard, straight = _saturated_refiner("hard"), _saturated_refiner("straight_through")
    straight.load_state_dict(hard.state_dict())
    assert torch.equal(hard(x), straight(x)) and torch.equal(straight(x), torch.ones_like(x))


def test_saturated_refiner_gets_no_gradient_behind_a_hard_clamp_and_one_toward_the_range_behind_straight_through():
    x = torch.zeros(1, 1, 4, 4)
    grads = {}
    for mode in ("hard", "straight_through"):
        r = _saturated_refiner(mode)
        (r(x) - x).abs().mean().backward()  # self-regularisation: |R(x) - x|
        grads[mode] = r.head.bias.grad.item()
    assert grads["hard"] == 0.0  # stuck at white for good
    # d/db mean|x + b - x| with every pixel above x: +1; gradient descent lowers the bias.
    assert grads["straight_through"] == pytest.approx(1.0)


def test_tanh_output_within_unit_range():
    torch.manual_seed(0)
    r = ResNetRefiner(1, width=4, blocks=1, output="tanh")
    with torch.no_grad():
        r.head.weight.mul_(100.0)
    out = r(torch.randn(4, 1, 8, 8) * 100)
    assert out.abs().max() <= 1.0
    assert out.abs().max() > 0.99  # saturated, i.e. the tanh really bounds it


def test_noise_changes_output_and_same_noise_is_deterministic():
    torch.manual_seed(0)
    r = ResNetRefiner(1, width=4, blocks=1, noise_channels=2)
    assert r.stem[0].in_channels == 3
    x = torch.randn(2, 1, 7, 9)
    g = torch.Generator().manual_seed(5)
    n1 = r.sample_noise(x, g)
    n2 = r.sample_noise(x, g)
    assert n1.shape == (2, 2, 7, 9)
    assert torch.equal(r(x, n1), r(x, n1.clone()))
    assert not torch.allclose(r(x, n1), r(x, n2))
    # A seeded generator reproduces the noise.
    assert torch.equal(n1, r.sample_noise(x, torch.Generator().manual_seed(5)))


def test_no_noise_refiner_samples_none():
    r = ResNetRefiner(1, width=4, blocks=1)
    assert r.noise_channels == 0
    assert r.sample_noise(torch.zeros(1, 1, 3, 3)) is None
    assert isinstance(r, Refiner)


def test_gradients_reach_first_conv():
    torch.manual_seed(0)
    r = ResNetRefiner(1, width=4, blocks=2)
    x = torch.randn(2, 1, 8, 8, requires_grad=True)
    r(x).square().sum().backward()
    first = r.stem[0]
    assert first.weight.grad is not None and first.weight.grad.abs().sum() > 0
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_residual_block_is_identity_plus_relu_when_convs_zero():
    block = ResidualBlock(3)
    for conv in (block.conv1, block.conv2):
        nn.init.zeros_(conv.weight)
        nn.init.zeros_(conv.bias)
    x = torch.tensor([-1.0, 0.5, 2.0]).reshape(1, 3, 1, 1).expand(1, 3, 4, 4).clone()
    assert torch.equal(block(x), torch.relu(x))


@pytest.mark.parametrize("kwargs,match", [({"kernel_size": 4}, "odd"), ({"output": "foo"}, "output"),
                                          ({"residual_clamp": "soft"}, "residual_clamp")])
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ResNetRefiner(1, width=4, blocks=1, **kwargs)


@pytest.mark.parametrize("shape", [(1, 2, 5, 5), (1, 5, 5), (5, 5)])
def test_wrong_input_shape(shape):
    r = ResNetRefiner(1, width=4, blocks=1)
    with pytest.raises(ValueError, match="refiner expects"):
        r(torch.zeros(shape))


@pytest.mark.parametrize("padding_mode", ["zeros", "replicate", "reflect"])
def test_padding_mode_reaches_every_spatial_conv(padding_mode):
    r = ResNetRefiner(1, width=4, blocks=2, padding_mode=padding_mode)
    modes = {m.padding_mode for m in r.modules() if isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1)}
    assert modes == {padding_mode}


def test_replicate_padding_gives_no_border_cue_on_a_flat_image():
    # A flat image looks the same at the border as inside when padding replicates it; zero
    # padding makes the border pixels differ, which is what lets a refiner draw frames.
    torch.manual_seed(0)
    flat = torch.full((1, 1, 9, 11), 0.3)
    for mode, flat_out in (("replicate", True), ("zeros", False)):
        r = ResNetRefiner(1, width=4, blocks=1, output="tanh", padding_mode=mode)
        out = r(flat)
        assert torch.allclose(out, out[0, 0, 4, 5].expand_as(out), atol=1e-6) == flat_out


def test_bad_padding_mode_is_a_config_error():
    from pydantic import ValidationError

    from simgan_toolkit.config import RefinerConfig

    with pytest.raises(ValidationError, match="padding_mode"):
        RefinerConfig(padding_mode="circle")


# ---------------------------------------------------------------- dropout head (missing_value)
from simgan_toolkit.networks.refiner import DROPOUT_INIT_LOGIT, dropout_draw  # noqa: E402


def test_dropout_draw_rate_matches_sigmoid_of_logits():
    g = torch.Generator().manual_seed(0)
    for logit in (-2.0, 0.0, 1.5):
        logits = torch.full((1, 1, 300, 300), logit)
        dropped, surrogate = dropout_draw(logits, torch.randn(1, 1, 300, 300, generator=g))
        assert dropped.dtype == torch.bool
        assert torch.all(surrogate == 0)
        rate = dropped.float().mean().item()
        assert abs(rate - torch.sigmoid(torch.tensor(logit)).item()) < 0.01


def test_dropout_draw_gradient_is_the_relaxed_draws():
    # One pixel, noise 0 -> u = 0.5 -> logistic sample 0: d/dl sigmoid(l / T) = sigmoid'(l/T) / T.
    logits = torch.tensor([[[[0.3]]]], requires_grad=True)
    _, surrogate = dropout_draw(logits, torch.zeros(1, 1, 1, 1), temperature=0.5)
    surrogate.sum().backward()
    s = torch.sigmoid(torch.tensor(0.6))
    assert logits.grad.item() == pytest.approx((s * (1 - s) / 0.5).item(), rel=1e-5)


def test_missing_value_refiner_starts_as_identity_and_takes_one_more_noise_map():
    torch.manual_seed(0)
    r = ResNetRefiner(1, width=4, blocks=1, output="residual", noise_channels=1, missing_value=1.0)
    x = torch.rand(2, 1, 9, 11) * 2 - 1
    noise = r.sample_noise(x, torch.Generator().manual_seed(1))
    assert noise.shape == (2, 2, 9, 11)  # one conv input map + one map for the draw
    assert DROPOUT_INIT_LOGIT < -8  # a logistic draw beyond it: about 1 pixel in 8000
    assert torch.equal(r(x, noise), x)


def test_dropped_pixels_are_exactly_the_missing_value_and_others_untouched():
    torch.manual_seed(0)
    r = ResNetRefiner(1, width=4, blocks=1, output="residual", noise_channels=0, missing_value=0.75)
    nn.init.constant_(r.dropout_head.bias, 0.0)  # drop half the pixels
    x = torch.rand(3, 1, 16, 16) * 2 - 1
    y = r(x, r.sample_noise(x, torch.Generator().manual_seed(2)))
    dropped = y == 0.75
    assert 0.3 < dropped.float().mean().item() < 0.7
    assert torch.equal(y[~dropped], x[~dropped])  # residual head is zero-initialised


def test_dropout_head_gets_gradient_toward_fewer_drops_when_drops_cost():
    torch.manual_seed(0)
    r = ResNetRefiner(1, width=4, blocks=1, output="residual", noise_channels=0, missing_value=1.0)
    nn.init.constant_(r.dropout_head.bias, 0.0)
    x = torch.full((2, 1, 8, 8), -0.5)
    y = r(x, r.sample_noise(x, torch.Generator().manual_seed(3)))
    (y - x).abs().mean().backward()  # the self-regularisation term alone
    assert r.dropout_head.bias.grad.item() > 0  # gradient descent lowers the drop log-odds


def test_missing_value_refiner_noise_is_reproducible_and_varies():
    torch.manual_seed(0)
    r = ResNetRefiner(1, width=4, blocks=1, output="residual", noise_channels=1, missing_value=1.0)
    nn.init.constant_(r.dropout_head.bias, -1.0)
    x = torch.zeros(1, 1, 12, 12)
    a = r(x, r.sample_noise(x, torch.Generator().manual_seed(5)))
    b = r(x, r.sample_noise(x, torch.Generator().manual_seed(5)))
    c = r(x, r.sample_noise(x, torch.Generator().manual_seed(6)))
    assert torch.equal(a, b) and not torch.equal(a, c)
