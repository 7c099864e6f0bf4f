"""Other gaze target cameras (NIR eye tracker, low-light webcam): layout, labels, each effect."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from simgan_gaze.eye_model import sample_eye_params
from simgan_gaze.nir import (
    add_led_glints,
    add_nir_sensor_noise,
    bright_or_dark_pupil,
    iris_texture,
    led_glint_positions,
    motion_blur,
    nir_reflectance,
    simulate_nir_eyes,
)
from simgan_gaze.simulator import eye_layers, simulate_eyes
from simgan_gaze.webcam import add_screen_reflection, auto_exposure, isp_denoise, low_light_noise, simulate_webcam_eyes

H, W = 35, 55
CAMERAS = [simulate_nir_eyes, simulate_webcam_eyes]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _straight_open_eyes(n: int):
    """Eyes looking at the camera with wide-open lids (every corneal reflection visible)."""
    p = sample_eye_params(n, _gen(3))
    zeros = torch.zeros(n)
    return dataclasses.replace(p, pitch=zeros, yaw=zeros, upper_lid_height=torch.full((n,), 8.0))


@pytest.mark.parametrize("camera", CAMERAS)
@pytest.mark.parametrize("rgb", [False, True])
def test_shapes_range_8bit_and_labels(camera, rgb) -> None:
    images, labels = camera(12, _gen(1), rgb=rgb)
    _, sim_labels = simulate_eyes(12, _gen(1), rgb=rgb)
    assert images.shape == (12, 3 if rgb else 1, H, W) and images.dtype == torch.float32
    assert images.min() >= -1.0 and images.max() <= 1.0
    levels = (images + 1.0) * 127.5
    assert (levels - levels.round()).abs().max() < 1e-3
    assert set(labels) == set(sim_labels)
    for key in labels:
        assert torch.equal(labels[key], sim_labels[key])


@pytest.mark.parametrize("camera", CAMERAS)
def test_deterministic_per_seed(camera) -> None:
    a, _ = camera(6, _gen(2))
    b, _ = camera(6, _gen(2))
    c, _ = camera(6, _gen(3))
    assert torch.equal(a, b) and not torch.equal(a, c)


# --------------------------------------------------------------------------------------------
# NIR eye tracker
# --------------------------------------------------------------------------------------------


def test_nir_reflectances_are_grey_and_the_pupil_sometimes_bright() -> None:
    params = sample_eye_params(400, _gen())
    nir = bright_or_dark_pupil(nir_reflectance(params, _gen(1)), _gen(2))
    assert torch.equal(nir.iris_colour[:, 0], nir.iris_colour[:, 2])  # no colour in NIR
    # Brown and black irises in visible light, medium grey in NIR.
    assert nir.iris_colour.min() >= 0.25 and params.iris_colour.amin(1).min() < 0.1
    bright = (nir.pupil_brightness > 0.3).float().mean().item()
    assert bright == pytest.approx(0.3, abs=0.08)
    assert torch.equal(nir.pitch, params.pitch) and torch.equal(nir.centre, params.centre)


def test_nir_has_exactly_two_glints() -> None:
    n = 16
    params = _straight_open_eyes(n)
    layers = eye_layers(params)
    pos, visible = led_glint_positions(params, _gen())
    assert pos.shape == (n, 2, 2) and visible.all()
    # One LED on each side: the two glints sit left and right of each other on the same row,
    # more than twice the largest spot sigma apart (resolvable before blur).
    assert (pos[:, 1, 0] - pos[:, 0, 0] > 1.0).all()
    assert torch.allclose(pos[:, 0, 1], pos[:, 1, 1])
    lit = add_led_glints(torch.zeros(n, 1, H, W), params, layers, _gen())
    # The light added is exactly two sampled Gaussian spots, each summing to
    # peak * (sum over columns of its row profile) * (sum over rows of its column profile),
    # recomputed from the same random draws (the lids are wide open around the glints).
    g = _gen()
    led_glint_positions(params, g)
    sigma = (0.35 + 0.15 * torch.rand((n, 2, 1, 1), generator=g)).view(n, 2, 1)
    peak = (2.0 + 2.0 * torch.rand((n, 2, 1, 1), generator=g)).view(n, 2)
    xs, ys = torch.arange(W).view(1, 1, W), torch.arange(H).view(1, 1, H)
    sum_x = torch.exp(-((xs - pos[..., :1]) ** 2) / (2 * sigma**2)).sum(-1)
    sum_y = torch.exp(-((ys - pos[..., 1:]) ** 2) / (2 * sigma**2)).sum(-1)
    expected = (peak * sum_x * sum_y).sum(1)
    assert torch.allclose(lit.sum((1, 2, 3)), expected, rtol=0.02)


def test_iris_texture_only_inside_the_iris() -> None:
    params = _straight_open_eyes(8)
    layers = eye_layers(params)
    image = torch.full((8, 1, H, W), 0.5)
    out = iris_texture(image, params, layers, _gen())
    changed = (out - image).abs() > 1e-4
    assert changed.any()
    assert not changed[layers.iris < 1e-3].any()
    assert out[layers.iris > 0.99].std() > 0.02


def test_column_noise_is_shared_down_each_column() -> None:
    flat = torch.full((32, 1, 200, W), 0.5)
    noisy = add_nir_sensor_noise(flat, _gen()) - flat
    # Per-pixel noise averages out over 200 rows; fixed column offsets do not.
    column_means = noisy.mean(dim=2)
    pixel_std = noisy.std().item()
    assert column_means.std().item() > 3.0 * pixel_std / 200**0.5


def test_motion_blur_keeps_the_mean_and_length_zero_is_identity() -> None:
    image = torch.rand(4, 1, H, W, generator=_gen())
    assert torch.allclose(motion_blur(image, _gen(), (0.0, 0.0)), image, atol=1e-6)
    blurred = motion_blur(image, _gen(), (3.0, 3.0))
    assert torch.allclose(blurred[..., 4:-4, 4:-4].mean(), image[..., 4:-4, 4:-4].mean(), atol=0.01)
    assert blurred.std() < 0.8 * image.std()


# --------------------------------------------------------------------------------------------
# Low-light webcam
# --------------------------------------------------------------------------------------------


def test_webcam_noise_variance_grows_with_intensity() -> None:
    # Poisson-Gaussian: var(x) = x / e + (read / e)^2 in units of the white level.
    levels = torch.tensor([0.05, 0.2, 0.8]).view(3, 1, 1, 1).expand(3, 1, 100, 100)
    g = _gen()
    noisy = low_light_noise(levels.contiguous(), g)
    g = _gen()
    electrons = 60.0 + 240.0 * torch.rand((3, 1, 1, 1), generator=g)
    read = 1.5 + 1.5 * torch.rand((3, 1, 1, 1), generator=g)
    expected = levels[:, 0, 0, 0] / electrons.flatten() + (read.flatten() / electrons.flatten()) ** 2
    var = noisy.flatten(1).var(dim=1)
    assert torch.allclose(var, expected, rtol=0.1)
    assert noisy.flatten(1).mean(1).tolist() == pytest.approx([0.05, 0.2, 0.8], abs=0.01)


def test_screen_reflection_is_a_small_patch_below_the_pupil() -> None:
    params = _straight_open_eyes(16)
    layers = eye_layers(params)
    base = torch.zeros(16, 3, H, W)
    out = add_screen_reflection(base, params, layers, _gen())
    added = out[:, 0]
    has = added.amax((1, 2)) > 0.1
    assert has.float().mean() > 0.8
    rows = torch.arange(H, dtype=torch.float32).view(1, H, 1)
    centroid_y = (added * rows).sum((1, 2)) / added.sum((1, 2)).clamp_min(1e-6)
    pupil_y = params.centre[:, 1]  # straight gaze: the pupil centre is the eyeball centre
    assert (centroid_y[has] > pupil_y[has]).all()  # image y down: below the pupil centre
    assert ((added > 0.05).sum((1, 2))[has] < 20).all()


def test_auto_exposure_reaches_its_target_and_denoiser_smooths() -> None:
    dark = torch.full((4, 1, H, W), 0.01) + 0.002 * torch.rand(4, 1, H, W, generator=_gen())
    exposed = auto_exposure(dark, _gen())
    assert (exposed.mean((1, 2, 3)) > 0.07).all()  # gain up to 8x: 0.011 -> ~0.09
    noisy = 0.5 + 0.05 * torch.randn(4, 3, H, W, generator=_gen())
    assert isp_denoise(noisy, _gen()).std() < 0.6 * noisy.std()
