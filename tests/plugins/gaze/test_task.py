"""The gaze task: metrics against hand-computed values, label check, data contract, profiles."""

from __future__ import annotations

import math

import pytest
import torch

from simgan_gaze.label_check import pupil_centroid, pupil_shift
from simgan_gaze.task import GazeTask
from simgan_toolkit.config import build_config
from simgan_toolkit.task import LabelledImages

CPU = torch.device("cpu")


def _unit(v):
    v = torch.tensor(v, dtype=torch.float32)
    return v / v.norm(dim=-1, keepdim=True)


def test_metrics_hand_computed():
    task = GazeTask()
    truth = _unit([[0.0, 0.0, -1.0]] * 4)
    # rotations of (0,0,-1) by 0, 5, 10 and 90 degrees about the y axis
    angles = [0.0, 5.0, 10.0, 90.0]
    pred = torch.stack([torch.tensor([-math.sin(math.radians(a)), 0.0, -math.cos(math.radians(a))]) for a in angles])
    metrics = task.estimator_metrics(pred * 3.0, {"gaze": truth})  # scale must not matter
    assert metrics["angular_error_deg"] == pytest.approx(sum(angles) / 4, abs=1e-3)
    assert metrics["within_7deg_pct"] == pytest.approx(50.0)
    per_image = task.primary_metric_per_image(pred * 3.0, {"gaze": truth})
    torch.testing.assert_close(per_image, torch.tensor(angles), atol=1e-3, rtol=0)


def test_loss_is_l2_on_gaze_vector():
    task = GazeTask()
    truth = torch.tensor([[0.0, 0.0, -1.0]])
    pred = torch.tensor([[0.3, 0.0, -1.0]])
    assert float(task.estimator_loss(pred, {"gaze": truth})) == pytest.approx(0.09 / 3)


@pytest.mark.parametrize("rgb,channels", [(False, 1), (True, 3)])
def test_sources_follow_the_image_spec_and_seeds(rgb, channels):
    task = GazeTask(rgb=rgb)
    assert task.image_spec.channels == channels
    syn = task.synthetic(6, seed=1, device=CPU)
    task.image_spec.check(syn.images, "synthetic")
    assert set(syn.labels) == {"gaze", "pitch_yaw", "pupil_centre"}
    real = task.target(6, seed=2, device=CPU)
    task.image_spec.check(real, "real")
    assert torch.equal(real, task.target(6, seed=2, device=CPU))
    assert not torch.equal(real, task.target(6, seed=3, device=CPU))
    assert isinstance(task.target_labelled(3, seed=4, device=CPU), LabelledImages)


def test_pupil_centroid_finds_a_dark_disc():
    images = torch.ones(2, 1, 35, 55)
    yy, xx = torch.meshgrid(torch.arange(35.0), torch.arange(55.0), indexing="ij")
    for i, (cx, cy) in enumerate([(20.0, 15.0), (30.5, 18.0)]):
        images[i, 0][(xx - cx) ** 2 + (yy - cy) ** 2 <= 4.0] = -1.0
    found = pupil_centroid(images, torch.tensor([[21.0, 16.0], [29.0, 17.0]]))
    assert torch.allclose(found, torch.tensor([[20.0, 15.0], [30.5, 18.0]]), atol=0.3)


def test_pupil_shift_measures_a_translation():
    task = GazeTask()
    syn = task.synthetic(64, seed=0, device=CPU)
    moved = torch.roll(syn.images, shifts=2, dims=3)  # 2 px to the right
    shift = pupil_shift(syn.images, moved, syn.labels["pupil_centre"])
    assert shift.median() == pytest.approx(2.0, abs=0.3)
    assert pupil_shift(syn.images, syn.images, syn.labels["pupil_centre"]).abs().max() == 0


def test_label_preservation_of_identity_is_zero():
    task = GazeTask()
    syn = task.synthetic(16, seed=0, device=CPU)
    result = task.label_preservation(syn, syn.images.clone())
    assert result["pupil_shift_px_mean"] == 0 and result["mean_abs_pixel_change"] == 0


@pytest.mark.parametrize("profile", ["smoke", "default", "paper"])
def test_profiles_validate(profile):
    task = GazeTask()
    config = build_config("gaze", profile, task.profiles())
    assert config.profile == profile
    if profile == "paper":
        assert config.train.batch_size == 512
        assert (config.refiner.width, config.refiner.blocks, config.refiner.kernel_size) == (64, 4, 3)
        assert config.refiner.noise_channels == 0 and config.refiner.output == "tanh"
        assert config.train.refiner_pretrain_steps == 1000 and config.train.discriminator_pretrain_steps == 200


@pytest.mark.parametrize("name,camera,rgb", [
    ("gaze_nir", "simgan_gaze.nir:simulate_nir_eyes", False),
    ("gaze_nir_rgb", "simgan_gaze.nir:simulate_nir_eyes", True),
    ("gaze_webcam", "simgan_gaze.webcam:simulate_webcam_eyes", False),
    ("gaze_webcam_rgb", "simgan_gaze.webcam:simulate_webcam_eyes", True),
])
def test_other_cameras_are_the_gaze_task_with_only_the_target_replaced(registry, name, camera, rgb):
    """Derived tasks: the camera's own output for a generator seeded with the data set's seed."""
    import importlib

    module, function = camera.split(":")
    simulate = getattr(importlib.import_module(module), function)
    task, base = registry.create("task", name), GazeTask(rgb=rgb)
    assert task.name == name and task.profiles() == base.profiles() and task.image_spec == base.image_spec
    images, labels = simulate(3, torch.Generator().manual_seed(7), rgb=rgb, device=CPU)
    got = task.target_labelled(3, 7, CPU)
    assert torch.equal(got.images, images) and got.labels.keys() == labels.keys()
    assert all(torch.equal(got.labels[k], labels[k]) for k in labels)
    assert torch.equal(task.target(3, 7, CPU), images)
    assert torch.equal(task.synthetic(3, 7, CPU).images, base.synthetic(3, 7, CPU).images)


def test_gaze_tasks_name_themselves():
    assert (GazeTask().name, GazeTask(rgb=True).name) == ("gaze", "gaze_rgb")
