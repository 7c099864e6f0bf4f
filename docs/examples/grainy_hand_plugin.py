"""A third-party plugin that points the built-in hand task at another depth camera.

``hand_depth_grainy`` is ``hand_depth`` (same simulator, estimator, profiles, augmentation,
figures and label check) with one part replaced: the target ("real") camera, a cheap depth
sensor with depth-dependent noise, coarse 4 mm depth steps and scattered holes. Nothing of the
hand task is forwarded by hand: ``Task.derive`` hands every member but ``target`` to it.

Register it with an entry point in your package's pyproject.toml::

    [project.entry-points.simgan_toolkit]
    grainy = "grainy_hand_plugin"
"""

from __future__ import annotations

import torch
from torch import Tensor

from simgan_hand.target_scene import CropParams, TargetScene, simulate_target_hands
from simgan_toolkit.plugin import Register, hookimpl
from simgan_toolkit.task import LabelledImages, Task

STEP_MM = 4.0  # depth resolution of the sensor
HOLE_FRACTION = 0.03  # pixels with no reading, independent of the scene


def grainy_sensor(scene: TargetScene, crop: CropParams, generator: torch.Generator) -> Tensor:
    """What the grainy camera reports: depth (N, 1, S, S) in mm, 0 = no reading."""
    depth = scene.depth_mm.clone()
    seen = torch.isfinite(depth)
    # Noise grows with the square of the distance, as for any triangulating sensor.
    sigma = 1.5 * (depth.nan_to_num(posinf=0.0) / 1000.0) ** 2
    noise = torch.randn(depth.shape, generator=generator, device=depth.device) * sigma
    depth = torch.round((depth + noise) / STEP_MM) * STEP_MM
    holes = torch.rand(depth.shape, generator=generator, device=depth.device) < HOLE_FRACTION
    return torch.where(seen & ~holes, depth, torch.zeros_like(depth))


def grainy_camera(n: int, generator: torch.Generator, device: torch.device) -> LabelledImages:
    """(n, 1, 224, 224) depth crops through :func:`grainy_sensor`, with the hand task's labels."""
    images, labels = simulate_target_hands(n, generator, grainy_sensor, device=device)
    return LabelledImages(images, labels)


def grainy_hand_task(hand_depth: Task) -> Task:
    return hand_depth.derive(name="hand_depth_grainy", target=grainy_camera)


@hookimpl
def simgan_register_tasks(register: Register) -> None:
    register.task_on(
        "hand_depth_grainy", base="hand_depth", derive=grainy_hand_task,
        description="example: hand_depth against a grainy depth camera (noise, 4 mm steps, holes)",
    )
