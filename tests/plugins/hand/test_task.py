"""The hand-depth task: loss, metrics, augmentation and label check against hand-computed values."""

from __future__ import annotations

import pytest
import torch

from simgan_hand.augment import rescale_affine, rotation_matrix, warp_sample
from simgan_hand.heatmaps import crop_to_heatmap, gaussian_heatmaps
from simgan_hand.skeleton import DEFAULT_CUBE_MM as CUBE_MM
from simgan_hand.task import NUM_JOINTS, SIZE, HandDepthTask
from simgan_toolkit.config import build_config
from simgan_toolkit.task import LabelledImages


def _labels(uv):
    return {"joints_uvd": torch.cat([uv, torch.zeros(*uv.shape[:-1], 1)], dim=-1)}


def _perfect_heatmaps(uv, size=24):
    """Logits = log of Gaussians at the joints: their soft-argmax is the joints."""
    return gaussian_heatmaps(crop_to_heatmap(uv, SIZE, size), size, 1.0).clamp(min=1e-38).log()


def test_loss_is_zero_for_peaks_at_the_joints_and_counts_every_stack():
    task = HandDepthTask()
    # joints (and joints + 22.4 px) stay away from the border, where a peak is cut off
    uv = torch.rand(2, NUM_JOINTS, 2, generator=torch.Generator().manual_seed(0)) * 150 + 30
    perfect = _perfect_heatmaps(uv)
    assert float(task.estimator_loss(perfect, _labels(uv))) == pytest.approx(0.0, abs=1e-3)
    shifted = _perfect_heatmaps(uv + torch.tensor([22.4, 0.0]))
    # every joint 22.4 px off in u: mean L1 over (u, v) is 11.2 px -> 11.2 / 224 * 10 = 0.5
    assert float(task.estimator_loss(shifted, _labels(uv))) == pytest.approx(0.5, abs=0.01)
    stacked = torch.stack([perfect, torch.zeros_like(perfect)], dim=1)  # second stack wrong
    assert float(task.estimator_loss(stacked, _labels(uv))) > 0


def test_metrics_hand_computed():
    task = HandDepthTask()
    uv = torch.full((1, NUM_JOINTS, 2), 100.0)
    predicted = uv.clone()
    predicted[0, :7, 0] += 3.0  # 7 joints 3 px off, 7 joints 8 px off
    predicted[0, 7:, 1] += 8.0
    metrics = task.estimator_metrics(_perfect_heatmaps(predicted, size=224), _labels(uv))
    assert metrics["pck_5"] == pytest.approx(50.0)
    assert metrics["mean_px_error"] == pytest.approx(5.5, abs=0.01)
    assert metrics["curve/pck_2"] == pytest.approx(0.0)
    assert metrics["curve/pck_8"] == pytest.approx(100.0)


def test_per_image_pck_hand_computed_and_its_mean_is_pck_5():
    task = HandDepthTask()
    uv = torch.full((2, NUM_JOINTS, 2), 100.0)
    predicted = uv.clone()
    predicted[0, :7, 0] += 3.0  # image 0: 7 joints 3 px off, 7 joints 8 px off: 50 % within 5 px
    predicted[0, 7:, 1] += 8.0
    predicted[1, :, 1] += 8.0  # image 1: every joint 8 px off: none
    heatmaps, labels = _perfect_heatmaps(predicted, size=224), _labels(uv)
    per_image = task.primary_metric_per_image(heatmaps, labels)
    torch.testing.assert_close(per_image, torch.tensor([50.0, 0.0]), atol=1e-4, rtol=0)
    assert float(per_image.mean()) == pytest.approx(task.estimator_metrics(heatmaps, labels)["pck_5"])


def test_augment_moves_joints_with_the_image():
    images = torch.ones(1, 1, SIZE, SIZE)
    images[0, 0, 40, 150] = -1.0  # a marker at (u=150, v=40)
    joints = torch.zeros(1, NUM_JOINTS, 3)
    joints[0, :, 0], joints[0, :, 1] = 150.0, 40.0
    warped, moved = warp_sample(images, joints, rotation_matrix(30.0, SIZE))
    v, u = divmod(int(warped[0, 0].argmin()), SIZE)
    assert abs(u - float(moved[0, 0, 0])) <= 1 and abs(v - float(moved[0, 0, 1])) <= 1
    assert torch.equal(moved[..., 2], joints[..., 2])
    task = HandDepthTask()
    aug_images, aug_labels = task.augment(images, {"joints_uvd": joints}, torch.Generator().manual_seed(0))
    v, u = divmod(int(aug_images[0, 0].argmin()), SIZE)
    assert abs(u - float(aug_labels["joints_uvd"][0, 0, 0])) <= 1.5 and abs(v - float(aug_labels["joints_uvd"][0, 0, 1])) <= 1.5


def test_augment_on_a_resized_crop_moves_joints_in_full_crop_pixels():
    # A 64-px copy of a 224-px crop, as the estimator loop hands it over; joints stay in 224 px.
    small = 64
    images = torch.ones(1, 1, small, small)
    images[0, 0, 12, 43] = -1.0  # marker at small (43, 12) = crop ((43 + .5) * 3.5 - .5, (12 + .5) * 3.5 - .5)
    joints = torch.zeros(1, NUM_JOINTS, 3)
    joints[0, :, 0], joints[0, :, 1] = (43 + 0.5) * SIZE / small - 0.5, (12 + 0.5) * SIZE / small - 0.5
    warped, moved = warp_sample(images, joints, rotation_matrix(30.0, SIZE), crop_size=SIZE)
    assert warped.shape == images.shape
    v, u = divmod(int(warped[0, 0].argmin()), small)
    u_crop, v_crop = (u + 0.5) * SIZE / small - 0.5, (v + 0.5) * SIZE / small - 0.5
    # Within one small pixel (3.5 crop px) of where the joint label went.
    assert abs(u_crop - float(moved[0, 0, 0])) <= 3.5 and abs(v_crop - float(moved[0, 0, 1])) <= 3.5
    # The same matrix on the full crop moves the same joint to the same place.
    _, full_moved = warp_sample(torch.ones(1, 1, SIZE, SIZE), joints, rotation_matrix(30.0, SIZE))
    torch.testing.assert_close(moved, full_moved)


def test_rescale_affine_is_the_identity_at_factor_one_and_keeps_the_centre_fixed():
    matrix = rotation_matrix(25.0, SIZE)
    torch.testing.assert_close(rescale_affine(matrix, 1.0), matrix)
    small = rescale_affine(matrix, 64 / SIZE)
    centre = torch.tensor([31.5, 31.5, 1.0])  # the 64-px crop's centre is a fixed point of the rotation
    torch.testing.assert_close(small[0] @ centre, centre[:2])


def test_label_preservation_hand_computed():
    task = HandDepthTask()
    syn = torch.ones(1, 1, SIZE, SIZE)
    syn[0, 0, 50:150, 50:150] = 0.0  # a 100x100 hand at the cube centre
    joints = torch.zeros(1, NUM_JOINTS, 3)
    joints[0, :, :2] = 75.0  # inside the half of the hand that stays
    refined = syn.clone()
    refined[0, 0, 50:150, 50:150] = 0.1  # pushed back by 0.1 normalised units
    refined[0, 0, 50:150, 100:150] = 1.0  # and half the hand erased
    result = task.label_preservation(LabelledImages(syn, {"joints_uvd": joints}), refined)
    assert result["joint_depth_change_mm"] == pytest.approx(0.1 * CUBE_MM / 2, rel=1e-4)
    assert result["silhouette_iou"] == pytest.approx(0.5)
    assert result["hand_depth_change_mm"] == pytest.approx((0.1 + 1.0) / 2 * CUBE_MM / 2, rel=1e-4)


def test_pck_curve_figure_is_written(tmp_path):
    metrics = {f"curve/pck_{d}": float(5 * d) for d in range(21)}
    paths = HandDepthTask().save_figures({"synthetic": metrics, "refined": metrics}, tmp_path)
    assert paths == [tmp_path / "pck_curve.png"] and paths[0].stat().st_size > 1000


@pytest.mark.parametrize("profile", ["smoke", "default", "paper"])
def test_profiles_validate(profile):
    config = build_config("hand_depth", profile, HandDepthTask().profiles())
    if profile == "paper":
        assert (config.refiner.kernel_size, config.refiner.blocks) == (7, 10)
        assert config.discriminator.layers[0] == "conv7s4-96"
        assert config.estimator.options["heatmap_size"] == 64 and config.estimator.options["stacks"] == 2


@pytest.mark.parametrize("name,camera", [
    ("hand_depth_tof", "simgan_hand.tof:simulate_tof_hands"),
    ("hand_depth_stereo", "simgan_hand.stereo:simulate_stereo_hands"),
])
def test_other_cameras_are_the_hand_task_with_only_the_target_replaced(registry, name, camera):
    """Derived tasks: the camera's own output for a generator seeded with the data set's seed."""
    import importlib

    module, function = camera.split(":")
    simulate = getattr(importlib.import_module(module), function)
    task, base = registry.create("task", name), HandDepthTask()
    assert task.name == name and task.profiles() == base.profiles() and task.full_effect_profile == "long"
    cpu = torch.device("cpu")
    images, labels = simulate(2, torch.Generator().manual_seed(3), device=cpu, size=SIZE)
    got = task.target_labelled(2, 3, cpu)
    assert torch.equal(got.images, images) and all(torch.equal(got.labels[k], labels[k]) for k in labels)
    assert torch.equal(task.target(2, 3, cpu), images)
    # Members the task adds beyond Task are read through from the base.
    assert task.predict_joints(torch.zeros(1, NUM_JOINTS, 8, 8)).shape == (1, NUM_JOINTS, 2)


def test_hand_tasks_name_themselves_after_their_scene():
    assert (HandDepthTask().name, HandDepthTask(scene="hand_arm_wall").name, HandDepthTask(scene="hand").name) == (
        "hand_depth", "hand_depth_wall", "hand_depth_bare")


def test_hand_depth_is_versioned_and_its_older_scenes_are_not(registry):
    """hand_depth's simulator changed in place (randomised scene): its run folders from before must not resume."""
    assert registry.create("task", "hand_depth").data_version == "randomised scene 1"
    assert registry.create("task", "hand_depth_tof").data_version == "randomised scene 1"
    assert registry.create("task", "hand_depth_wall").data_version == ""
