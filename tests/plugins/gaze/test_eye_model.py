"""Gaze-angle conventions and eye-parameter sampling, checked against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from simgan_gaze.eye_model import (
    PITCH_RANGE_DEG,
    YAW_RANGE_DEG,
    EyeParams,
    angular_error_degrees,
    lid_apex_heights,
    pitch_yaw_to_vector,
    pupil_centre_px,
    sample_eye_params,
    vector_to_pitch_yaw,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _deg(*values: float) -> torch.Tensor:
    return torch.deg2rad(torch.tensor([values], dtype=torch.float32))


def test_straight_gaze_points_at_camera() -> None:
    g = pitch_yaw_to_vector(torch.zeros(1, 2))
    assert torch.allclose(g, torch.tensor([[0.0, 0.0, -1.0]]), atol=1e-7)


def test_pitch_up_30_degrees() -> None:
    g = pitch_yaw_to_vector(_deg(30.0, 0.0))
    assert torch.allclose(g, torch.tensor([[0.0, -0.5, -math.sqrt(3) / 2]]), atol=1e-6)


def test_positive_yaw_looks_to_image_left() -> None:
    g = pitch_yaw_to_vector(_deg(0.0, 90.0))
    assert torch.allclose(g, torch.tensor([[-1.0, 0.0, 0.0]]), atol=1e-6)
    g = pitch_yaw_to_vector(_deg(0.0, 30.0))
    assert torch.allclose(g, torch.tensor([[-0.5, 0.0, -math.sqrt(3) / 2]]), atol=1e-6)


def test_vectors_are_unit_and_round_trip() -> None:
    gen = _gen(1)
    py = torch.stack(
        [
            torch.deg2rad(torch.rand(1000, generator=gen) * 160 - 80),
            torch.deg2rad(torch.rand(1000, generator=gen) * 340 - 170),
        ],
        dim=1,
    )
    g = pitch_yaw_to_vector(py)
    assert torch.allclose(g.norm(dim=1), torch.ones(1000), atol=1e-6)
    assert torch.allclose(vector_to_pitch_yaw(g), py, atol=1e-4)
    # The inverse normalises its input first.
    assert torch.allclose(vector_to_pitch_yaw(3.7 * g), py, atol=1e-4)
    assert torch.allclose(pitch_yaw_to_vector(vector_to_pitch_yaw(g)), g, atol=1e-5)


def test_angular_error_hand_values() -> None:
    a = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 2.0, 0.0], [0.3, 0.4, -0.5]])
    b = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 5.0, 0.0], [0.3, 0.4, -0.5]])
    err = angular_error_degrees(a, b)
    assert torch.allclose(err, torch.tensor([90.0, 180.0, 0.0, 0.0]), atol=1e-3)
    assert not torch.isnan(err).any()
    err = angular_error_degrees(pitch_yaw_to_vector(_deg(0.0, 0.0)), pitch_yaw_to_vector(_deg(10.0, 0.0)))
    assert err.item() == pytest.approx(10.0, abs=1e-3)


@pytest.mark.parametrize(
    "call",
    [
        lambda: pitch_yaw_to_vector(torch.zeros(3)),
        lambda: vector_to_pitch_yaw(torch.zeros(3, 2)),
        lambda: angular_error_degrees(torch.zeros(3, 3), torch.zeros(2, 3)),
    ],
)
def test_bad_shapes_raise(call) -> None:
    with pytest.raises(ValueError):
        call()


def test_sample_eye_params_shapes_ranges_and_determinism() -> None:
    p = sample_eye_params(500, _gen(3))
    assert isinstance(p, EyeParams) and len(p) == 500
    assert p.centre.shape == (500, 2) and p.iris_colour.shape == (500, 3)
    pitch, yaw = torch.rad2deg(p.pitch), torch.rad2deg(p.yaw)
    assert PITCH_RANGE_DEG[0] <= pitch.min() and pitch.max() <= PITCH_RANGE_DEG[1]
    assert YAW_RANGE_DEG[0] <= yaw.min() and yaw.max() <= YAW_RANGE_DEG[1]
    # The whole range is used, not a sliver of it.
    assert pitch.max() - pitch.min() > 35 and yaw.max() - yaw.min() > 60
    assert (p.pupil_radius < p.iris_radius).all() and (p.iris_radius < p.eyeball_radius).all()
    for colour in (p.iris_colour, p.skin_colour):
        assert colour.min() >= 0 and colour.max() <= 1
    q = sample_eye_params(500, _gen(3))
    assert torch.equal(p.pitch, q.pitch) and torch.equal(p.skin_colour, q.skin_colour)
    r = sample_eye_params(500, _gen(4))
    assert not torch.equal(p.pitch, r.pitch)


def test_params_to_index_and_len() -> None:
    p = sample_eye_params(10, _gen())
    q = p.to("cpu")
    assert len(q) == 10 and q.device.type == "cpu"
    sub = p[2:5]
    assert len(sub) == 3 and torch.equal(sub.yaw, p.yaw[2:5])
    assert torch.equal(p.pitch_yaw(), torch.stack([p.pitch, p.yaw], 1))


def test_pupil_centre_projection() -> None:
    p = sample_eye_params(4, _gen())
    p.pitch = torch.deg2rad(torch.tensor([0.0, 0.0, 20.0, -20.0]))
    p.yaw = torch.deg2rad(torch.tensor([0.0, 30.0, 0.0, 0.0]))
    c = pupil_centre_px(p)
    r = p.eyeball_radius
    assert torch.allclose(c[0], p.centre[0])
    # Positive yaw: image left by R sin(yaw); pitch up: up (smaller row) by R sin(pitch).
    assert c[1, 0].item() == pytest.approx((p.centre[1, 0] - r[1] * 0.5).item(), abs=1e-4)
    assert c[1, 1].item() == pytest.approx(p.centre[1, 1].item(), abs=1e-4)
    up = r[2] * math.sin(math.radians(20))
    assert c[2, 1].item() == pytest.approx((p.centre[2, 1] - up).item(), abs=1e-4)
    assert c[3, 1] > p.centre[3, 1]


def test_lids_follow_vertical_gaze() -> None:
    p = sample_eye_params(2, _gen())
    p.upper_lid_height = torch.full((2,), 7.0)
    p.lower_lid_height = torch.full((2,), 6.0)
    p.pitch = torch.deg2rad(torch.tensor([15.0, -15.0]))
    upper, lower = lid_apex_heights(p)
    assert upper[0] > upper[1]  # looking up opens the upper lid
    assert lower[0] < lower[1]  # looking down drags the lower lid down


@pytest.mark.parametrize("n", [0, -3, 2.5, True])
def test_bad_count_raises(n) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        sample_eye_params(n, _gen())


def test_generator_on_wrong_device_raises() -> None:
    with pytest.raises(ValueError, match="generator is on device cpu"):
        sample_eye_params(3, _gen(), device="meta")
    with pytest.raises(ValueError, match="torch.Generator"):
        sample_eye_params(3, 123)  # type: ignore[arg-type]
