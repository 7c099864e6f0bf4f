"""Gaze-vector conventions of the loaders, against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from simgan_gaze.datasets.conventions import (
    gaze_labels,
    intensities_to_unit_range,
    mirror_gaze,
    pose_pitch_yaw,
    resize_eyes,
    unity_to_camera,
)
from simgan_gaze.datasets.crop import eye_crop_matrix, transform_points
from simgan_gaze.eye_model import pitch_yaw_to_vector, vector_to_pitch_yaw
from simgan_toolkit.errors import DataError


def test_unityeyes_sample_look_vec_gives_documented_angles():
    # data-formats.md 1.4: look_vec (0.3404, 0.3879, -0.8566) -> pitch +22.8 deg (up), yaw -21.7 deg.
    labels = gaze_labels(unity_to_camera(torch.tensor([[0.3404, 0.3879, -0.8566, 0.0]])), "test")
    pitch, yaw = torch.rad2deg(labels["pitch_yaw"][0]).tolist()
    assert pitch == pytest.approx(22.8, abs=0.05)
    assert yaw == pytest.approx(-21.7, abs=0.05)
    norm = math.sqrt(0.3404**2 + 0.3879**2 + 0.8566**2)
    assert labels["gaze"][0].tolist() == pytest.approx([0.3404 / norm, -0.3879 / norm, -0.8566 / norm], abs=1e-6)


def test_unity_to_camera_only_flips_y_and_drops_w():
    v = torch.tensor([[0.1, 0.2, -0.9, 0.0], [0.3, -0.4, -0.5, 0.0]])
    assert torch.allclose(unity_to_camera(v), torch.tensor([[0.1, -0.2, -0.9], [0.3, 0.4, -0.5]], dtype=torch.float64))
    assert unity_to_camera(v[:, :3]).tolist() == unity_to_camera(v).tolist()


def test_labels_round_trip_through_the_task_conversions():
    pitch_yaw = torch.deg2rad(torch.tensor([[20.0, -30.0], [-15.0, 10.0], [0.0, 0.0]]))
    gaze = pitch_yaw_to_vector(pitch_yaw)
    labels = gaze_labels(gaze * 3.0, "test")  # any length: normalised
    assert torch.allclose(labels["pitch_yaw"], pitch_yaw.float(), atol=1e-6)
    assert torch.allclose(labels["gaze"], gaze.float(), atol=1e-6)
    assert torch.allclose(pitch_yaw_to_vector(vector_to_pitch_yaw(gaze)), gaze, atol=1e-6)


def test_mirror_negates_yaw_and_keeps_pitch():
    pitch_yaw = torch.deg2rad(torch.tensor([[12.0, 25.0]]))
    mirrored = vector_to_pitch_yaw(mirror_gaze(pitch_yaw_to_vector(pitch_yaw)))
    assert torch.rad2deg(mirrored)[0].tolist() == pytest.approx([12.0, -25.0], abs=1e-4)


def test_zero_gaze_is_a_data_error_naming_the_source():
    with pytest.raises(DataError, match="somefile.mat"):
        gaze_labels(torch.zeros(1, 3), "somefile.mat")


def test_pose_pitch_yaw_from_rodrigues_by_hand():
    # Rotation about y by 0.3 rad: third column (sin .3, 0, cos .3) -> yaw 0.3, pitch 0.
    # Rotation about x by 0.2 rad: third column (0, -sin .2, cos .2) -> pitch -0.2, yaw 0.
    out = pose_pitch_yaw(torch.tensor([[0.0, 0.3, 0.0], [0.2, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    assert torch.allclose(out, torch.tensor([[0.0, 0.3], [-0.2, 0.0], [0.0, 0.0]]), atol=1e-6)


def test_intensity_mapping():
    assert intensities_to_unit_range(torch.tensor([0, 127.5, 255])).tolist() == [-1.0, 0.0, 1.0]


def test_resize_eyes_keeps_a_flat_image_flat():
    out = resize_eyes(torch.full((2, 1, 36, 60), 0.25))
    assert out.shape == (2, 1, 35, 55)
    assert torch.allclose(out, torch.full_like(out, 0.25))


def test_crop_matrix_maps_box_edges_to_output_edges():
    # Corners 100 px apart -> box 150 px wide, 150*35/55 high, centred on (300, 200).
    m = eye_crop_matrix(torch.tensor([250.0, 200.0]), torch.tensor([350.0, 200.0]), torch.tensor([300.0, 200.0]), (35, 55))
    box_half_h = 150 * 35 / 55 / 2
    edges = torch.tensor([[225.0, 200.0 - box_half_h], [375.0, 200.0 + box_half_h], [300.0, 200.0]], dtype=torch.float64)
    # Pixel centres are integers, so the output's edges are at -0.5 and size - 0.5.
    expected = torch.tensor([[-0.5, -0.5], [54.5, 34.5], [27.0, 17.0]], dtype=torch.float64)
    assert torch.allclose(transform_points(edges, m), expected)
