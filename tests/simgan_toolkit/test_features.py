"""Feature transforms psi: hand-computed values, gradients, frozen learned features, bad inputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from simgan_toolkit.errors import ConfigError, PluginError
from simgan_toolkit.features import (
    ChannelMean,
    Identity,
    ImageGradients,
    Learned,
    channel_mean,
    image_gradients,
    load_learned,
)
from simgan_toolkit.task import ImageSpec


@pytest.fixture
def registry(spot):
    """The tests' own registry (the spot task, its estimator and the built-ins; no entry-point
    plugins): core needs no domain plugin."""
    return spot.registry()


def test_identity_returns_input():
    x = torch.randn(2, 3, 4, 5)
    assert Identity()(x) is x


def test_channel_mean_hand_values():
    x = torch.zeros(1, 3, 2, 2)
    x[0, 0] = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    x[0, 1] = torch.tensor([[2.0, 2.0], [0.0, -4.0]])
    x[0, 2] = torch.tensor([[6.0, -1.0], [0.0, 9.0]])
    expected = torch.tensor([[[[3.0, 1.0], [1.0, 3.0]]]])
    assert torch.equal(channel_mean(x), expected)
    assert torch.equal(ChannelMean()(x), expected)


def test_image_gradients_of_horizontal_ramp():
    # x[..., i, j] = j. Sobel-x [[-1,0,1],[-2,0,2],[-1,0,1]] gives (1+2+1) * 2 = 8 inside;
    # kornia's normalised kernel is divided by 8, so d/dx = 1. At the replicated borders
    # the difference spans one column instead of two: 0.5. d/dy = 0 everywhere.
    x = torch.arange(7.0).expand(2, 1, 5, 7).clone()
    g = image_gradients(x)
    assert g.shape == (2, 2, 5, 7)
    dx, dy = g[:, 0], g[:, 1]
    assert torch.allclose(dx[..., 1:-1], torch.ones_like(dx[..., 1:-1]))
    assert torch.allclose(dx[..., 0], torch.full_like(dx[..., 0], 0.5))
    assert torch.allclose(dx[..., -1], torch.full_like(dx[..., -1], 0.5))
    assert torch.equal(dy, torch.zeros_like(dy))


def test_image_gradients_of_vertical_ramp_times_three():
    x = (3 * torch.arange(6.0)).reshape(1, 1, 6, 1).expand(1, 1, 6, 4).clone()
    g = image_gradients(x)
    assert torch.equal(g[:, 0], torch.zeros(1, 6, 4))
    assert torch.allclose(g[:, 1, 1:-1], torch.full((1, 4, 4), 3.0))


def test_image_gradients_unnormalised_is_eight_times_larger():
    x = torch.arange(7.0).expand(1, 1, 5, 7).clone()
    raw = image_gradients(x, normalized=False)
    assert torch.allclose(raw[:, 0, :, 1:-1], torch.full((1, 5, 5), 8.0))


def test_image_gradients_of_constant_is_zero():
    x = torch.full((2, 3, 6, 8), 0.7)
    g = ImageGradients()(x)
    assert g.shape == (2, 6, 6, 8)
    assert torch.allclose(g, torch.zeros_like(g), atol=1e-7)


def test_image_gradients_channel_order_is_dx_dy_per_channel():
    ramp = torch.arange(5.0).expand(1, 1, 5, 5)
    x = torch.cat([ramp, ramp.transpose(-1, -2), torch.zeros_like(ramp)], dim=1)
    g = image_gradients(x)
    assert g.shape == (1, 6, 5, 5)
    centre = g[0, :, 2, 2]
    assert torch.allclose(centre, torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0]))


def test_image_gradients_gradcheck():
    x = torch.randn(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(image_gradients, (x,), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("fn", [Identity(), ChannelMean(), ImageGradients(), channel_mean, image_gradients])
@pytest.mark.parametrize("shape", [(3, 4, 5), (2, 1, 3, 4, 5)])
def test_bad_ndim_raises(fn, shape):
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        fn(torch.zeros(shape))


class _WithFeatures(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.drop = nn.Dropout(0.5)

    def features(self, x):
        return self.drop(self.bn(self.conv(x)))

    def forward(self, x):  # pragma: no cover - Learned must use features()
        raise AssertionError("Learned should call features()")


def test_learned_freezes_and_stays_in_eval():
    torch.manual_seed(0)
    net = _WithFeatures()
    psi = Learned(net)
    assert all(not p.requires_grad for p in psi.parameters())
    psi.train()
    assert psi.training is True
    assert not any(m.training for m in psi.network.modules())
    x = torch.randn(4, 1, 6, 6)
    # In eval mode dropout is off and batch norm uses running stats: deterministic.
    assert torch.equal(psi(x), psi(x))
    before = psi.network.bn.running_mean.clone()
    psi(x * 10 + 3)
    assert torch.equal(psi.network.bn.running_mean, before)


def test_learned_gradient_flows_to_input_not_params():
    torch.manual_seed(0)
    psi = Learned(_WithFeatures())
    x = torch.randn(2, 1, 6, 6, requires_grad=True)
    psi(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in psi.parameters())


def test_learned_needs_features():
    # One rule for every caller: an estimator has features(); a network without one is refused
    # when psi is built, not used through its forward.
    with pytest.raises(PluginError, match="Conv2d has no features"):
        Learned(nn.Conv2d(1, 2, 1))


def test_learned_rejects_non_images():
    with pytest.raises(ValueError):
        Learned(_WithFeatures())(torch.zeros(1, 6, 6))


def test_load_learned_round_trip(tmp_path, registry):
    from simgan_toolkit.estimation import save_estimator

    spec = ImageSpec(1, 12, 16)
    options = {"image_spec": spec, "output_dim": 2}
    torch.manual_seed(0)
    model = registry.create("estimator", "tiny_linear", **options)
    path = tmp_path / "est.pt"
    save_estimator(model, "tiny_linear", options, path)
    psi = load_learned(path, registry)
    x = torch.randn(2, 1, 12, 16)
    model.eval()
    assert torch.equal(psi(x), model.features(x))
    assert torch.equal(psi.network(x), model(x))  # the weights came back, not only the architecture


def test_load_learned_missing_file(tmp_path, registry):
    path = tmp_path / "nope.pt"
    with pytest.raises(ConfigError, match="nope.pt"):
        load_learned(path, registry)


def test_load_learned_wrong_payload_names_file(tmp_path, registry):
    path = tmp_path / "wrong.pt"
    torch.save({"format": "x", "state_dict": {}}, path)  # no 'estimator' key
    with pytest.raises(ConfigError, match="wrong.pt"):
        load_learned(path, registry)


@pytest.mark.parametrize("content", [b"certainly not a checkpoint", b""])
def test_load_learned_garbage_file_is_config_error(tmp_path, registry, content):
    path = tmp_path / "garbage.pt"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match="garbage.pt"):
        load_learned(path, registry)
