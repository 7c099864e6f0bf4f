"""Clean synthetic eye renderer: layout, determinism, and that labels match the pixels."""

from __future__ import annotations

from collections.abc import Callable

import math

import kornia
import pytest
import torch

from simgan_gaze import simulator
from simgan_gaze.eye_model import pitch_yaw_to_vector, pupil_centre_px, sample_eye_params
from simgan_gaze.simulator import eye_layers, render_synthetic, simulate_eyes


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("rgb", [False, True])
def test_shapes_dtype_range(rgb: bool) -> None:
    images, labels = simulate_eyes(64, _gen(), rgb=rgb)
    assert images.shape == (64, 3 if rgb else 1, 35, 55)
    assert images.dtype == torch.float32
    assert images.min() >= -1.0 and images.max() <= 1.0
    # A real image, not a constant: dark pupil and bright sclera are both there.
    assert images.amin((1, 2, 3)).max() < -0.6 and images.amax((1, 2, 3)).min() > 0.2
    assert set(labels) == {"gaze", "pitch_yaw", "pupil_centre"}
    assert labels["gaze"].shape == (64, 3) and labels["pitch_yaw"].shape == (64, 2)
    assert labels["pupil_centre"].shape == (64, 2)
    assert torch.allclose(labels["gaze"].norm(dim=1), torch.ones(64), atol=1e-5)
    assert torch.allclose(pitch_yaw_to_vector(labels["pitch_yaw"]), labels["gaze"], atol=1e-6)


def test_grayscale_is_luminance_of_rgb() -> None:
    params = sample_eye_params(16, _gen())
    gray = render_synthetic(params)
    rgb = render_synthetic(params, rgb=True)
    assert torch.allclose(gray, kornia.color.rgb_to_grayscale(rgb * 0.5 + 0.5) * 2 - 1, atol=1e-5)


def test_deterministic_per_seed() -> None:
    a, la = simulate_eyes(32, _gen(7))
    b, lb = simulate_eyes(32, _gen(7))
    c, _ = simulate_eyes(32, _gen(8))
    assert torch.equal(a, b) and torch.equal(la["gaze"], lb["gaze"])
    assert not torch.equal(a, c)


def test_chunking_does_not_change_pixels(monkeypatch: pytest.MonkeyPatch) -> None:
    params = sample_eye_params(10, _gen())
    whole = render_synthetic(params)
    monkeypatch.setattr(simulator, "CHUNK_SIZE", 3)
    assert torch.allclose(render_synthetic(params), whole, atol=1e-6)


def test_pupil_centroid_matches_label(dark_centroid: Callable) -> None:
    images, labels = simulate_eyes(400, _gen(11))
    params = sample_eye_params(400, _gen(11))
    centroid, visible = dark_centroid(images, params)
    assert visible.float().mean() > 0.5  # most pupils are not cut by the lids
    err = (centroid - labels["pupil_centre"]).norm(dim=1)[visible]
    assert err.max() < 1.5, f"worst pupil centroid error {err.max():.2f} px"


def test_looking_up_moves_pupil_up_and_yaw_moves_it_left(dark_centroid: Callable) -> None:
    params = sample_eye_params(1, _gen(5))
    rows = {}
    for pitch in (-15.0, 0.0, 15.0):
        params.pitch = torch.tensor([math.radians(pitch)])
        params.yaw = torch.zeros(1)
        centroid, visible = dark_centroid(render_synthetic(params), params)
        assert visible.all()
        rows[pitch] = centroid[0, 1].item()
    assert rows[15.0] < rows[0.0] - 2 < rows[-15.0] - 4
    params.pitch = torch.zeros(1)
    cols = []
    for yaw in (-20.0, 20.0):
        params.yaw = torch.tensor([math.radians(yaw)])
        cols.append(dark_centroid(render_synthetic(params), params)[0][0, 0].item())
    assert cols[1] < cols[0] - 4  # positive yaw looks towards the image left


def test_iris_is_foreshortened_along_gaze_offset() -> None:
    params = sample_eye_params(2, _gen(2))
    params.pitch = torch.deg2rad(torch.tensor([0.0, 20.0]))
    params.yaw = torch.deg2rad(torch.tensor([35.0, 0.0]))
    iris = eye_layers(params).iris[:, 0]
    ys, xs = torch.meshgrid(torch.arange(35.0), torch.arange(55.0), indexing="ij")
    mass = iris.sum((1, 2))
    mx, my = (iris * xs).sum((1, 2)) / mass, (iris * ys).sum((1, 2)) / mass
    sx = ((iris * (xs - mx[:, None, None]) ** 2).sum((1, 2)) / mass).sqrt()
    sy = ((iris * (ys - my[:, None, None]) ** 2).sum((1, 2)) / mass).sqrt()
    # Minor axis along the gaze offset, shortened by cos(angle to the camera axis).
    assert (sx[0] / sy[0]).item() == pytest.approx(math.cos(math.radians(35.0)), abs=0.04)
    assert (sy[1] / sx[1]).item() == pytest.approx(math.cos(math.radians(20.0)), abs=0.04)


def test_label_centre_is_inside_pupil_mask() -> None:
    params = sample_eye_params(200, _gen(4))
    layers = eye_layers(params)
    centre = pupil_centre_px(params).round().long()
    at_centre = layers.pupil[torch.arange(200), 0, centre[:, 1], centre[:, 0]]
    assert (at_centre > 0.5).all()


def test_other_image_size_scales_geometry() -> None:
    images, labels = simulate_eyes(8, _gen(), height=70, width=110)
    assert images.shape == (8, 1, 70, 110)
    assert (labels["pupil_centre"][:, 0] > 30).all() and (labels["pupil_centre"][:, 0] < 80).all()


@pytest.mark.parametrize("n", [0, -1])
def test_bad_count_raises(n: int) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        simulate_eyes(n, _gen())


def test_generator_on_wrong_device_raises() -> None:
    with pytest.raises(ValueError, match="generator is on device"):
        simulate_eyes(4, _gen(), device="meta")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_render_is_deterministic() -> None:
    a, la = simulate_eyes(64, torch.Generator(device="cuda").manual_seed(0), device="cuda")
    b, _ = simulate_eyes(64, torch.Generator(device="cuda").manual_seed(0), device="cuda")
    assert a.is_cuda and la["gaze"].is_cuda and torch.equal(a, b)
    with pytest.raises(ValueError):
        simulate_eyes(4, _gen(), device="cuda")
