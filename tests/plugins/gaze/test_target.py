"""Target ("real eyes") generator: layout, each physical effect on its own, and label fidelity."""

from __future__ import annotations

from collections.abc import Callable

import kornia
import pytest
import torch

from simgan_gaze import target
from simgan_gaze.eye_model import EyeParams, sample_eye_params
from simgan_gaze.simulator import composite, eye_layers, render_synthetic
from simgan_gaze.target import (
    add_eyelashes,
    add_sensor_noise,
    add_specular_glints,
    apply_uneven_lighting,
    camera_response,
    dct_matrix,
    defocus_blur,
    eyelid_shading,
    illumination_field,
    jpeg_compress,
    quantise_8bit,
    render_target,
    simulate_target_eyes,
    skin_albedo_map,
    splat_bilinear,
)

H, W = 35, 55


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _params(n: int, seed: int = 0) -> EyeParams:
    return sample_eye_params(n, _gen(seed))


def _gradient_energy(x: torch.Tensor) -> torch.Tensor:
    """(N,) mean squared finite difference."""
    gx = x[..., :, 1:] - x[..., :, :-1]
    gy = x[..., 1:, :] - x[..., :-1, :]
    return gx.pow(2).mean((1, 2, 3)) + gy.pow(2).mean((1, 2, 3))


# --------------------------------------------------------------------------------------------
# Whole pipeline
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rgb", [False, True])
def test_shapes_range_and_8bit_levels(rgb: bool) -> None:
    images, labels = simulate_target_eyes(48, _gen(), rgb=rgb)
    assert images.shape == (48, 3 if rgb else 1, H, W) and images.dtype == torch.float32
    assert images.min() >= -1.0 and images.max() <= 1.0
    levels = (images + 1.0) * 127.5
    assert (levels - levels.round()).abs().max() < 1e-3
    assert set(labels) == {"gaze", "pitch_yaw", "pupil_centre"}
    assert labels["pupil_centre"].shape == (48, 2)


def test_deterministic_per_seed() -> None:
    a, la = simulate_target_eyes(16, _gen(3))
    b, lb = simulate_target_eyes(16, _gen(3))
    c, _ = simulate_target_eyes(16, _gen(4))
    assert torch.equal(a, b) and torch.equal(la["pupil_centre"], lb["pupil_centre"])
    assert not torch.equal(a, c)


def test_same_label_distribution_as_simulator() -> None:
    from simgan_gaze.simulator import simulate_eyes

    _, sim = simulate_eyes(20, _gen(9))
    _, tgt = simulate_target_eyes(20, _gen(9))
    # The same seed draws the same geometry first, so the labels coincide exactly.
    for key in sim:
        assert torch.equal(sim[key], tgt[key])


def test_target_differs_from_synthetic_render() -> None:
    params = _params(64, 1)
    synthetic = render_synthetic(params)
    real = render_target(params, _gen(2))
    diff = (synthetic - real).abs().mean((1, 2, 3))
    assert (diff > 0.02).all()
    # Flat skin away from the eye is flat in the simulator but textured and noisy here.
    skin = (eye_layers(params).opening_sd > 6.0).float()

    def local_var(x: torch.Tensor) -> torch.Tensor:
        return ((x - kornia.filters.box_blur(x, 3)).pow(2) * skin).sum((1, 2, 3)) / skin.sum((1, 2, 3))

    assert local_var(synthetic).max() < 1e-6
    assert (local_var(real) > 1e-5).all()


def test_pupil_centroid_still_matches_label(dark_centroid: Callable) -> None:
    params = _params(400, 5)
    images = render_target(params, _gen(6))
    centroid, visible = dark_centroid(images, params)
    from simgan_gaze.eye_model import pupil_centre_px

    err = (centroid - pupil_centre_px(params)).norm(dim=1)[visible]
    assert err.numel() > 200
    # Glints and blur can hide a pale iris's pupil in a few images, as in real data; the
    # bulk of pupils must still sit on their labels.
    assert err.median() < 1.0, f"median {err.median():.2f} px"
    assert torch.quantile(err, 0.95) < 2.0, f"95th percentile {torch.quantile(err, 0.95):.2f} px"


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="positive integer"):
        simulate_target_eyes(0, _gen())
    with pytest.raises(ValueError, match="generator is on device"):
        simulate_target_eyes(4, _gen(), device="meta")
    with pytest.raises(ValueError, match="generator is on device"):
        render_target(_params(2).to("meta"), _gen())


# --------------------------------------------------------------------------------------------
# Effects, one by one
# --------------------------------------------------------------------------------------------


def test_skin_texture_only_outside_the_opening() -> None:
    params = _params(16)
    layers = eye_layers(params)
    skin = skin_albedo_map(params.skin_colour, (H, W), _gen(1))
    flat = composite(params, layers)
    textured = composite(params, layers, skin)
    inside = layers.opening > 0.999
    outside = (layers.opening < 1e-3).expand_as(flat)
    assert torch.allclose(textured[inside.expand_as(flat)], flat[inside.expand_as(flat)], atol=1e-3)
    assert (textured - flat).abs()[outside].mean() > 0.01
    # Texture is a modulation of the base colour, not a different colour.
    mean_skin = skin.mean((2, 3))
    assert torch.allclose(mean_skin, params.skin_colour, atol=0.08)


def test_eyelid_shading_darkens_below_upper_lid_only() -> None:
    params = _params(16)
    layers = eye_layers(params)
    image = composite(params, layers)
    shaded = eyelid_shading(image, layers, _gen())
    assert (shaded <= image + 1e-6).all()
    just_below = (layers.upper_lid_sd < -0.5) & (layers.upper_lid_sd > -1.5) & (layers.opening > 0.9)
    deep = layers.opening_sd < -4.0
    ratio = shaded / image.clamp_min(1e-6)
    assert ratio[just_below.expand_as(ratio)].mean() < ratio[deep.expand_as(ratio)].mean() - 0.05


def test_eyelashes_are_dark_and_grow_from_the_upper_lid() -> None:
    params = _params(32)
    layers = eye_layers(params)
    image = composite(params, layers)
    lashed = add_eyelashes(image, params, _gen(3))
    assert (lashed <= image + 1e-6).all()
    changed = ((image - lashed).abs().amax(1, keepdim=True) > 0.05).float()
    assert changed.sum((1, 2, 3)).min() > 5  # every eye has lashes
    # Lashes live above and around the upper lid, not along the lower lid or below it.
    near_upper = (layers.upper_lid_sd > -1.5) & (layers.upper_lid_sd < 7.0)
    assert (changed * near_upper).sum() / changed.sum() > 0.95


def test_splat_conserves_mass_and_is_bilinear() -> None:
    x = torch.tensor([[10.25, 3.0, -5.0]])
    y = torch.tensor([[4.5, 0.0, 2.0]])
    weight = torch.tensor([[2.0, 1.0, 7.0]])
    density = splat_bilinear(x, y, weight, (8, 16))
    assert density.sum().item() == pytest.approx(3.0)  # the off-image point deposits nothing
    assert density[0, 4, 10].item() == pytest.approx(2.0 * 0.75 * 0.5)
    assert density[0, 5, 11].item() == pytest.approx(2.0 * 0.25 * 0.5)
    assert density[0, 0, 3].item() == pytest.approx(1.0)


def test_glints_are_small_bright_spots_inside_the_eye() -> None:
    params = _params(64, 2)
    layers = eye_layers(params)
    linear = composite(params, layers).pow(2.2)
    lit = add_specular_glints(linear, params, layers, _gen(4))
    added = (lit - linear)[:, 0]
    assert (added >= -1e-7).all()
    has_glint = added.amax((1, 2)) > 0.2
    assert has_glint.float().mean() > 0.5
    # Small: a glint covers a few pixels, not the eye.
    assert ((added > 0.05).sum((1, 2))[has_glint] < 20).all()
    assert (added * (layers.opening[:, 0] < 1e-3)).abs().max() < 1e-3


def test_illumination_is_smooth_positive_and_varies() -> None:
    field = illumination_field(32, (H, W), _gen(), torch.device("cpu"))
    assert (field > 0).all()
    assert field.std(dim=0).mean() > 0.05  # differs between images
    step = (field[..., :, 1:] - field[..., :, :-1]).abs().max()
    assert step < 0.05  # low-frequency: at most a few percent per pixel
    image = torch.full((32, 3, H, W), 0.5)
    assert torch.allclose(apply_uneven_lighting(image, _gen()), 0.5 * field.expand_as(image))


def test_defocus_blur_reduces_gradient_energy() -> None:
    params = _params(16)
    image = composite(params, eye_layers(params))
    blurred = defocus_blur(image, _gen())
    ratio = _gradient_energy(blurred) / _gradient_energy(image)
    assert (ratio < 0.9).all() and ratio.mean() < 0.7
    assert torch.allclose(blurred.mean((2, 3)), image.mean((2, 3)), atol=0.02)


def test_sensor_noise_is_signal_dependent() -> None:
    dark = torch.full((64, 1, H, W), 0.05)
    bright = torch.full((64, 1, H, W), 0.8)
    noisy_dark = add_sensor_noise(dark, _gen(1))
    noisy_bright = add_sensor_noise(bright, _gen(1))
    # Flat regions gain variance; brighter regions gain more (shot noise).
    assert noisy_dark.std() > 1e-3
    assert noisy_bright.std() > 2.0 * noisy_dark.std()
    assert (noisy_bright.mean() - 0.8).abs() < 1e-3


def test_camera_response_is_monotonic_and_in_range() -> None:
    ramp = torch.linspace(0.0, 1.0, W).view(1, 1, 1, W).expand(8, 3, H, W)
    out = camera_response(ramp, _gen())
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert (out[..., 1:] - out[..., :-1] >= -1e-6).all()


def test_dct_matrix_is_orthonormal() -> None:
    d = dct_matrix(8)
    assert torch.allclose(d @ d.T, torch.eye(8), atol=1e-5)


@pytest.mark.parametrize("channels", [1, 3])
def test_jpeg_quality_100_is_near_identity(channels: int) -> None:
    image = torch.rand(4, channels, H, W, generator=_gen())
    out = jpeg_compress(image, torch.full((4,), 100.0), chroma_subsampling=False)
    assert out.shape == image.shape
    assert (out - image).abs().max() < 3.0 / 255.0


def test_jpeg_low_quality_is_blocky() -> None:
    # A smooth image: its own pixel-to-pixel steps are small everywhere.
    smooth = target.smooth_noise(8, (5, 7), (H, W), _gen(), torch.device("cpu"))
    image = (0.5 + 0.15 * smooth).clamp(0, 1)
    low = jpeg_compress(image, torch.full((8,), 10.0))
    high = jpeg_compress(image, torch.full((8,), 90.0))
    err_low = (low - image).abs().mean()
    assert err_low > 2.0 * (high - image).abs().mean()
    # The error jumps at 8x8 block borders: compare column steps across and within blocks.
    step = (low - image)[..., :, 1:] - (low - image)[..., :, :-1]
    cols = torch.arange(W - 1)
    across = step[..., (cols % 8) == 7].abs().mean()
    within = step[..., (cols % 8) != 7].abs().mean()
    assert across > 1.5 * within


def test_jpeg_rejects_other_channel_counts() -> None:
    with pytest.raises(ValueError, match="1 or 3 channels"):
        jpeg_compress(torch.rand(1, 2, 8, 8), torch.full((1,), 50.0))


def test_quantise_8bit() -> None:
    x = torch.rand(2, 1, 5, 5, generator=_gen())
    q = quantise_8bit(x)
    assert torch.allclose(q * 255, (q * 255).round(), atol=1e-4)
    assert (q - x).abs().max() <= 0.5 / 255 + 1e-6
