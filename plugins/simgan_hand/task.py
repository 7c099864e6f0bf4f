"""The hand-depth task: 224x224 depth crops, 14 NYU joints, heatmap pose estimation.

Synthetic crops come from the clean simulator (:mod:`simgan_hand.simulator`; the task's
``scene`` says what it renders around the hand: ``hand_depth`` randomises the hand's flesh, a
bent forearm and a tilted wall or table, ``hand_depth_wall`` renders a straight forearm and an
occasional wall facing the camera, ``hand_depth_bare`` the bare hand model like NYU's
synthdepth); "real" crops
from the Kinect-like target generator (:mod:`simgan_hand.kinect`). Target labels are used
only to score (and train the oracle) estimators, never by the refiner.
"""

from __future__ import annotations

from collections.abc import Callable
import copy
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from simgan_hand.augment import random_affine, warp_sample
from simgan_hand.heatmaps import heatmap_to_crop, pck_curve, soft_argmax
from simgan_hand.kinect import simulate_kinect_hands
from simgan_hand.skeleton import DEFAULT_CUBE_MM as CUBE_MM
from simgan_hand.simulator import SCENES, Scene, simulate_hands
from simgan_toolkit.task import ImageSource, ImageSpec, LabelledImages, MetricSpec, Task, seeded_generator

SIZE = 224
NUM_JOINTS = 14
#: Normalised depth at or beyond which a pixel is background (far value +1; a margin for noise).
FOREGROUND_BELOW = 0.98
PCK_MAX_PX = 20
#: The task's name for each simulator scene.
TASK_NAMES: dict[str, str] = {"randomised": "hand_depth", "hand_arm_wall": "hand_depth_wall", "hand": "hand_depth_bare",
                              "hand_arm": "hand_depth_arm"}
#: A target ("real") depth camera: ``(n, generator, *, device, size) -> (images, labels)``.
TargetHands = Callable[..., tuple[Tensor, dict[str, Tensor]]]


def depth_camera(camera: TargetHands) -> ImageSource:
    """``camera`` (called like :func:`simulate_kinect_hands`) as a task's target image source:
    (n, 1, 224, 224) depth crops with their ``joints_uvd`` (n, 14, 3) and other labels.
    A partial of a module function, not a closure, so that a task holding it can be pickled."""
    return partial(_draw_hands, camera)


def _draw_hands(camera: TargetHands, n: int, generator: torch.Generator, device: torch.device) -> LabelledImages:
    images, labels = camera(n, generator, device=device, size=SIZE)
    return LabelledImages(images, labels)


class HandDepthTask(Task):
    """Hand pose from depth: 14 joints as heatmaps, scored by % of joints within d pixels."""

    #: The default CPU profile is too short for an estimator that places most joints within
    #: 5 px; ``long`` (under 20 minutes on 2 cores) is (docs/hand.md).
    full_effect_profile = "long"

    def __init__(self, scene: Scene = "randomised") -> None:
        """``scene``: what the simulator renders around the hand (:data:`simgan_hand.simulator.SCENES`);
        the task's name follows from it (:data:`TASK_NAMES`).
        The same task through another depth camera is
        ``HandDepthTask(scene).derive(name=..., target=depth_camera(camera))``."""
        if scene not in SCENES:
            raise ValueError(f"scene must be one of {SCENES}, got {scene!r}")
        self.scene = scene
        self.name = TASK_NAMES[scene]
        # The randomised scene replaced hand_depth's simulator in place: a hand_depth folder
        # made before it must not resume on the new images. The other scenes are unchanged.
        self.data_version = "randomised scene 1" if scene == "randomised" else ""
        self._target = depth_camera(simulate_kinect_hands)

    @property
    def image_spec(self) -> ImageSpec:
        return ImageSpec(channels=1, height=SIZE, width=SIZE)

    def synthetic(self, n: int, seed: int, device: torch.device) -> LabelledImages:
        images, labels = simulate_hands(n, seeded_generator(seed, device), device=device, size=SIZE, scene=self.scene)
        return LabelledImages(images, labels)

    def target(self, n: int, seed: int, device: torch.device) -> Tensor:
        return self.target_labelled(n, seed, device).images

    def target_labelled(self, n: int, seed: int, device: torch.device) -> LabelledImages:
        return self._target(n, seeded_generator(seed, device), device)

    def profiles(self) -> dict[str, dict[str, Any]]:
        return hand_profiles()

    # --- estimator ------------------------------------------------------------------------
    @property
    def estimator_output_dim(self) -> int:
        return NUM_JOINTS

    def estimator_loss(self, prediction: Tensor, labels: dict[str, Tensor]) -> Tensor:
        """Integral regression: L1 between soft-argmax joints and labels, summed over stacks.

        ``prediction``: heatmap logits (N, J, h, w), or (N, stacks, J, h, w) for intermediate
        supervision. The error is in crop pixels / 224 * 10 (so a 22-px error costs 1).
        """
        stacks = prediction if prediction.ndim == 5 else prediction.unsqueeze(1)
        target = labels["joints_uvd"][..., :2]
        losses = [F.l1_loss(self.predict_joints(stacks[:, i]), target) for i in range(stacks.shape[1])]
        return torch.stack(losses).sum() / SIZE * 10

    def predict_joints(self, prediction: Tensor) -> Tensor:
        """(N, J, h, w) heatmap logits -> (N, J, 2) (u, v) in crop pixels (soft-argmax)."""
        return heatmap_to_crop(soft_argmax(prediction), SIZE, prediction.shape[-1])

    def joint_errors(self, prediction: Tensor, labels: dict[str, Tensor]) -> Tensor:
        """(N, J) distance in crop pixels between each predicted and labelled joint."""
        return (self.predict_joints(prediction) - labels["joints_uvd"][..., :2].float()).norm(dim=-1)

    def estimator_metrics(self, prediction: Tensor, labels: dict[str, Tensor]) -> dict[str, float]:
        """``pck_5`` (% of joints within 5 px), ``mean_px_error``, and ``curve/pck_{d}`` for d = 0..20."""
        errors = self.joint_errors(prediction, labels)
        curve = pck_curve(errors, PCK_MAX_PX)
        metrics = {"pck_5": float(curve[5]), "mean_px_error": float(errors.mean())}
        metrics.update({f"curve/pck_{d}": float(v) for d, v in enumerate(curve)})
        return metrics

    @property
    def estimator_labels(self) -> dict[str, tuple[int, ...]]:
        """Loss, metrics and augmentation read the 14 joints' crop (u, v, d)."""
        return {"joints_uvd": (NUM_JOINTS, 3)}

    @property
    def primary_metric(self) -> MetricSpec:
        return MetricSpec("pck_5", lower_is_better=False, unit="%")

    def primary_metric_per_image(self, prediction: Tensor, labels: dict[str, Tensor]) -> Tensor:
        """(N,) % of each image's joints within 5 px (every image has all 14 joints, so their
        mean is ``pck_5``)."""
        return (self.joint_errors(prediction, labels) <= 5).float().mean(dim=1) * 100

    def augment(self, images: Tensor, labels: dict[str, Tensor], generator: torch.Generator) -> tuple[Tensor, dict[str, Tensor]]:
        """+/-20 degree rotation, 0.9-1.1 scale, +/-10 px shift; joints move with the image.

        Works on crops at any resolution (the estimator's input size, say): the warp is drawn in
        224-px crop pixels and the joints stay in them.
        """
        matrix = random_affine(len(images), SIZE, generator)
        warped, joints = warp_sample(images, labels["joints_uvd"], matrix, crop_size=SIZE)
        return warped, {**labels, "joints_uvd": joints}

    def save_figures(self, metrics_by_set: dict[str, dict[str, float]], out_dir: Path) -> list[Path]:
        """``pck_curve.png``: % of joints within d pixels, one curve per training set."""
        return [plot_pck_curves(metrics_by_set, Path(out_dir) / "pck_curve.png")]

    # --- label preservation ---------------------------------------------------------------
    def label_preservation(self, synthetic: LabelledImages, refined: Tensor) -> dict[str, float]:
        """How far refinement moved the hand surface.

        - ``joint_depth_change_mm``: |refined - synthetic| depth at the 14 joints' pixels, for
          joints that lie on the rendered hand, in millimetres;
        - ``silhouette_iou``: intersection over union of the hand masks (depth < far value);
        - ``hand_depth_change_mm``: mean |refined - synthetic| depth over the synthetic hand.
        """
        mm_per_unit = CUBE_MM / 2
        syn, ref = synthetic.images[:, 0].float(), refined[:, 0].float()
        n = syn.shape[0]
        uv = synthetic.labels["joints_uvd"][..., :2].round().long().clamp(0, SIZE - 1)
        rows = torch.arange(n, device=syn.device)[:, None]
        d_syn, d_ref = syn[rows, uv[..., 1], uv[..., 0]], ref[rows, uv[..., 1], uv[..., 0]]
        on_hand = d_syn < FOREGROUND_BELOW
        joint_change = ((d_ref - d_syn).abs() * mm_per_unit)[on_hand]
        mask_syn, mask_ref = syn < FOREGROUND_BELOW, ref < FOREGROUND_BELOW
        inter = (mask_syn & mask_ref).flatten(1).sum(1).float()
        union = (mask_syn | mask_ref).flatten(1).sum(1).float().clamp(min=1)
        hand_change = ((ref - syn).abs() * mm_per_unit)[mask_syn]
        return {
            "joint_depth_change_mm": float(joint_change.mean()) if joint_change.numel() else 0.0,
            "silhouette_iou": float((inter / union).mean()),
            "hand_depth_change_mm": float(hand_change.mean()) if hand_change.numel() else 0.0,
        }


def plot_pck_curves(metrics_by_set: dict[str, dict[str, float]], path: Path) -> Path:
    """Draw the ``curve/pck_{d}`` metrics of each training set; written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from simgan_toolkit.io import atomic_path

    fig, ax = plt.subplots(figsize=(5, 3.6), dpi=120)
    for name, metrics in metrics_by_set.items():
        ds = sorted(int(k.split("_")[-1]) for k in metrics if k.startswith("curve/pck_"))
        ax.plot(ds, [metrics[f"curve/pck_{d}"] for d in ds], marker=".", label=name)
    ax.set_xlabel("distance threshold d (px, 224x224 crop)")
    ax.set_ylabel("% of joints within d")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


#: The paper's hand discriminator (Shrivastava et al. 2017, appendix; 224x224 input -> 7x7 patch map).
_HAND_LAYERS = ["conv7s4-96", "conv5s2-64", "pool3s2", "conv3s2-32", "conv1-32", "conv1-2"]


#: Under 6 minutes on a 2-core CPU.
_DEFAULT: dict[str, Any] = {
    # No noise map (the paper's refiner has none): with one, the refiner drew speckle on the
    # nearest surfaces in some runs; without, every run changed only the edges, on all three
    # hand targets (docs/hand.md, "What the training changes bought on hands").
    "refiner": {"width": 16, "blocks": 3, "kernel_size": 3, "output": "residual", "noise_channels": 0, "padding_mode": "replicate"},
    # Batch norm and a long D pretraining: without them D stays near chance on the sensor
    # effects within a CPU budget (docs/hand.md, "How we got here", finding 2).
    "discriminator": {"layers": ["conv5s2-48", "conv3s2-32", "conv3-32", "conv1-32", "conv1-2"], "norm": "batch"},
    "train": {
        "batch_size": 16, "crop_size": 64, "refiner_pretrain_steps": 30, "discriminator_pretrain_steps": 500, "steps": 400,
        # D learns twice as fast as R (two steps per iteration at twice the learning rate):
        # with K_d = 1 at R's rate it stayed near chance and R painted faint noise onto the
        # no-reading background, which the target never has (docs/hand.md).
        "k_g": 1, "k_d": 2, "lam": 0.5, "history_size": 1600, "refiner_ema": 0.99,
        "refiner_optimizer": {"name": "adam", "lr": 1e-3},
        "discriminator_optimizer": {"name": "adam", "lr": 2e-3},
        "log_every": 10, "sample_every": 50, "checkpoint_every": 50,
    },
    "data": {"n_synthetic": 1200, "n_target": 1000, "n_test": 400, "n_target_train": 1200},
    # Width 64 (not 32): the estimator underfitted, scoring the same on its training and test
    # sets; the training set is resized to 64 px once, so steps are cheap (docs/hand.md).
    "estimator": {
        "name": "hourglass", "options": {"stacks": 2, "width": 64, "depth": 2, "input_size": 64, "heatmap_size": 16},
        # 450 steps (not 600) keeps the whole run under 6 minutes on a slow day (docs/hand.md).
        "steps": 450, "batch_size": 32, "lr": 2e-3,
    },
}

#: Under 20 minutes on a 2-core CPU: more data and estimator steps, the same networks.
_LONG: dict[str, Any] = {
    **_DEFAULT,
    "train": {**_DEFAULT["train"], "steps": 1000, "history_size": 3200, "sample_every": 100, "checkpoint_every": 100},
    "data": {"n_synthetic": 3000, "n_target": 3000, "n_test": 400, "n_target_train": 3000},
    "estimator": {**_DEFAULT["estimator"], "steps": 1500},
}


def hand_profiles() -> dict[str, dict[str, Any]]:
    """smoke (seconds), default (under 6 minutes on a 2-core CPU), long (under 20), paper (GPU)."""
    # A copy: callers may merge into what they get, and default and long share sections.
    return copy.deepcopy({
        "smoke": {
            "refiner": {"width": 4, "blocks": 1, "kernel_size": 3, "output": "residual"},
            "discriminator": {"layers": ["conv3s2-8", "conv3s2-8", "conv1-2"]},
            "train": {
                "batch_size": 4, "crop_size": 32, "refiner_pretrain_steps": 2, "discriminator_pretrain_steps": 2, "steps": 3,
                "history_size": 16, "log_every": 1, "sample_every": 3, "checkpoint_every": 3,
            },
            "data": {"n_synthetic": 16, "n_target": 16, "n_test": 8, "n_target_train": 16},
            "estimator": {
                "name": "hourglass", "options": {"stacks": 1, "width": 8, "depth": 1, "input_size": 32, "heatmap_size": 8},
                "steps": 3, "batch_size": 4,
            },
        },
        "default": _DEFAULT,
        "long": _LONG,
        "paper": {
            "refiner": {"width": 64, "blocks": 10, "kernel_size": 7, "output": "tanh"},
            "discriminator": {"layers": _HAND_LAYERS},
            "train": {
                "batch_size": 64, "refiner_pretrain_steps": 500, "discriminator_pretrain_steps": 200, "steps": 5000,
                "k_g": 2, "k_d": 1, "history_size": 6400,
                "refiner_optimizer": {"name": "sgd", "lr": 1e-3},
                "discriminator_optimizer": {"name": "sgd", "lr": 1e-3},
                "log_every": 50, "sample_every": 500, "checkpoint_every": 500,
            },
            "data": {"n_synthetic": 72000, "n_target": 72000, "n_test": 8000, "n_target_train": 72000},
            "estimator": {
                "name": "hourglass", "options": {"stacks": 2, "width": 256, "depth": 4, "input_size": 256, "heatmap_size": 64},
                "steps": 20000, "batch_size": 32,
            },
        },
    })
