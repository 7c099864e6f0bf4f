"""Discriminators: patch-map sizes by hand, activations, layer-spec errors, receptive fields."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from simgan_toolkit.networks import GlobalDiscriminator, LocalDiscriminator, parse_layers


#: The paper's eye discriminator (35x55 input -> 7x12 patch map); the gaze plugin states its own copy.
EYE_LAYERS = ("conv3s2-96", "conv3s2-64", "pool3s1", "conv3-32", "conv1-32", "conv1-2")
#: The paper's hand discriminator (224x224 input -> 7x7 patch map); the hand plugin states its own copy.
HAND_LAYERS = ("conv7s4-96", "conv5s2-64", "pool3s2", "conv3s2-32", "conv1-32", "conv1-2")


def _out(size: int, k: int, s: int, p: int) -> int:
    return (size + 2 * p - k) // s + 1


def test_eye_layers_on_35x55_give_7x12():
    # conv3s2 (pad 1): H (35+2-3)//2+1 = 18,  W (55+2-3)//2+1 = 28
    # conv3s2 (pad 1): H (18+2-3)//2+1 = 9,   W (28+2-3)//2+1 = 14
    # pool3s1 (pad 0): H 9-3+1 = 7,           W 14-3+1 = 12
    # conv3 (pad 1), conv1, conv1 keep 7 x 12.
    h = _out(_out(35, 3, 2, 1), 3, 2, 1) - 2
    w = _out(_out(55, 3, 2, 1), 3, 2, 1) - 2
    assert (h, w) == (7, 12)
    torch.manual_seed(0)
    d = LocalDiscriminator(1, EYE_LAYERS, width_mult=0.25)
    assert d(torch.randn(2, 1, 35, 55)).shape == (2, 2, 7, 12)


def test_hand_layers_on_224x224_give_7x7():
    # conv7s4 (pad 3): (224+6-7)//4+1 = 56
    # conv5s2 (pad 2): (56+4-5)//2+1 = 28
    # pool3s2 (pad 0): (28-3)//2+1   = 13
    # conv3s2 (pad 1): (13+2-3)//2+1 = 7;  conv1, conv1 keep 7.
    assert _out(_out(_out(_out(224, 7, 4, 3), 5, 2, 2), 3, 2, 0), 3, 2, 1) == 7
    torch.manual_seed(0)
    d = LocalDiscriminator(3, HAND_LAYERS, width_mult=0.125)
    assert d(torch.randn(1, 3, 224, 224)).shape == (1, 2, 7, 7)


def test_leaky_relu_between_convs_and_none_after_last():
    d = LocalDiscriminator(1, EYE_LAYERS)
    mods = list(d.net)
    convs = [i for i, m in enumerate(mods) if isinstance(m, nn.Conv2d)]
    assert len(convs) == 5
    assert isinstance(mods[-1], nn.Conv2d) and mods[-1].out_channels == 2
    for i in convs[:-1]:
        assert isinstance(mods[i + 1], nn.LeakyReLU)
        assert mods[i + 1].negative_slope == pytest.approx(0.2)
    assert not any(isinstance(m, (nn.ReLU, nn.Sigmoid, nn.Tanh, nn.Softmax)) for m in mods)
    # Max-pool exactly where the spec puts it (after the second conv's activation).
    assert isinstance(mods[4], nn.MaxPool2d) and mods[4].stride == 1 and mods[4].kernel_size == 3


def test_logits_can_be_negative_and_network_is_nonlinear():
    torch.manual_seed(0)
    d = LocalDiscriminator(1, ["conv3-8", "conv3-8", "conv1-2"])
    x, y = torch.randn(2, 1, 9, 9), torch.randn(2, 1, 9, 9)
    with torch.no_grad():
        out = d(x)
        assert out.min() < 0 < out.max()
        zero = d(torch.zeros_like(x))
        # An affine map would satisfy f(x + y) - f(y) == f(x) - f(0).
        assert not torch.allclose(d(x + y) - d(y), out - zero, atol=1e-4)


def test_batch_norm_option_inserts_norm_before_activation():
    mods = list(LocalDiscriminator(1, ["conv3-8", "conv1-2"], norm="batch").net)
    assert [type(m) for m in mods] == [nn.Conv2d, nn.BatchNorm2d, nn.LeakyReLU, nn.Conv2d]


def test_width_mult_scales_hidden_layers_not_the_last():
    net = parse_layers(["conv3-32", "conv3s2-10", "conv1-2"], in_channels=3, width_mult=0.5)
    convs = [m for m in net if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(3, 16), (16, 5), (5, 2)]
    assert convs[1].stride == (2, 2) and convs[1].padding == (1, 1)
    assert [c.out_channels for c in parse_layers(["conv3-3", "conv1-2"], 1, width_mult=0.01) if isinstance(c, nn.Conv2d)] == [1, 2]


@pytest.mark.parametrize(
    "spec,match",
    [
        ([], "must not be empty"),
        (["conv3x-8", "conv1-2"], "cannot parse 'conv3x-8'"),
        (["conv3-8", "dense-2"], "layer 1: cannot parse 'dense-2'"),
        (["conv3-8", "conv1-3"], "2 maps"),
        (["conv3-8"], "2 maps"),
        (["conv3-2", "pool3s1"], "last layer must be a convolution"),
    ],
)
def test_parse_layers_errors(spec, match):
    with pytest.raises(ValueError, match=match):
        parse_layers(spec, in_channels=1)


def test_global_discriminator_shape_and_depends_on_far_pixel():
    torch.manual_seed(0)
    d = GlobalDiscriminator(1, 35, 55, EYE_LAYERS, width_mult=0.25)
    assert d.head.in_features == 2 * 7 * 12
    x = torch.randn(2, 1, 35, 55)
    with torch.no_grad():
        out = d(x)
        assert out.shape == (2, 2, 1, 1)
        x2 = x.clone()
        x2[:, :, 0, 0] += 50.0
        changed = d(x2)
    assert not torch.allclose(out, changed)


def test_local_discriminator_is_local():
    # Input rows/cols seen by output patch m, composing the layers of EYE_LAYERS:
    #   conv3s2 p1: out i  <- in [2i-1, 2i+1]
    #   conv3s2 p1: out j  <- in [4j-3, 4j+3]
    #   pool3s1:    out k  <- in [4k-3, 4k+11]
    #   conv3 p1:   out m  <- in [4m-7, 4m+15]  (1x1 convs add nothing): 23-pixel field, stride 4
    # Patch (6, 11) sees rows 17..34 and cols 37..54 only; pixel (0, 0) is outside it,
    # but inside patch (0, 0) (rows/cols -7..15).
    torch.manual_seed(0)
    d = LocalDiscriminator(1, EYE_LAYERS, width_mult=0.25)
    x = torch.randn(1, 1, 35, 55)
    x2 = x.clone()
    x2[:, :, 0, 0] += 50.0
    with torch.no_grad():
        a, b = d(x), d(x2)
    assert torch.equal(a[..., 6, 11], b[..., 6, 11])
    assert torch.equal(a[..., 4:, 5:], b[..., 4:, 5:])  # rows>=4 start at 9, cols>=5 start at 13
    assert not torch.equal(a[..., 0, 0], b[..., 0, 0])
    # Just inside patch (6, 11)'s field: row 17, col 37 does change it.
    x3 = x.clone()
    x3[:, :, 17, 37] += 50.0
    with torch.no_grad():
        c = d(x3)
    assert not torch.equal(a[..., 6, 11], c[..., 6, 11])


def test_local_discriminator_ignores_image_size_kwargs():
    d = LocalDiscriminator(1, ["conv3-4", "conv1-2"], image_height=5, image_width=7)
    assert d(torch.zeros(1, 1, 9, 11)).shape == (1, 2, 9, 11)


def test_global_discriminator_construction_leaves_batchnorm_stats_untouched():
    d = GlobalDiscriminator(1, 12, 16, ["conv3s2-8", "conv1-2"], norm="batch")
    bn = d.trunk[1]
    assert isinstance(bn, nn.BatchNorm2d)
    assert int(bn.num_batches_tracked) == 0
    assert torch.equal(bn.running_mean, torch.zeros(8))
    assert torch.equal(bn.running_var, torch.ones(8))


def test_group_norm_option_inserts_group_norm_with_groups_dividing_the_width():
    mods = list(LocalDiscriminator(1, ["conv3-12", "conv3-5", "conv1-2"], norm="group").net)
    norms = [m for m in mods if isinstance(m, torch.nn.GroupNorm)]
    assert [(n.num_groups, n.num_channels) for n in norms] == [(6, 12), (5, 5)]
    assert isinstance(mods[1], torch.nn.GroupNorm) and isinstance(mods[2], torch.nn.LeakyReLU)


@pytest.mark.parametrize("norm", ["none", "group"])
def test_per_image_norms_make_each_patch_map_independent_of_the_rest_of_the_batch(norm):
    # What batch norm lacks: a refined image must get the same logits whether D sees it among
    # refined images only (refiner step) or among refined and real ones (discriminator step).
    torch.manual_seed(0)
    d = LocalDiscriminator(1, ["conv3s2-8", "conv3-8", "conv1-2"], norm=norm)
    x, others = torch.randn(3, 1, 12, 16), torch.randn(5, 1, 12, 16) * 3 + 1
    torch.testing.assert_close(d(x), d(torch.cat([x, others]))[:3])


def test_batch_norm_makes_the_patch_map_depend_on_the_rest_of_the_batch():
    torch.manual_seed(0)
    d = LocalDiscriminator(1, ["conv3s2-8", "conv3-8", "conv1-2"], norm="batch")
    x, others = torch.randn(3, 1, 12, 16), torch.randn(5, 1, 12, 16) * 3 + 1
    assert not torch.allclose(d(x), d(torch.cat([x, others]))[:3])
