"""Entry-point module of the hand plugin: the ``hand_depth`` tasks and the ``nyu_hand`` dataset format.

``hand_depth`` (and ``hand_depth_wall``, ``hand_depth_bare``, whose simulators render less
context) use the Kinect-like target; ``hand_depth_tof`` and ``hand_depth_stereo`` are
``hand_depth`` with the same scene seen through a time-of-flight and an active stereo camera.

Imports stay cheap: the task is built by a factory, and the loader is registered by its
``"module:Class"`` path, imported only when the format is used.
"""

from __future__ import annotations

from typing import Any

from simgan_toolkit.plugin import Register, hookimpl


def _hand_depth(scene: str) -> Any:
    from simgan_hand.task import HandDepthTask

    return HandDepthTask(scene=scene)  # type: ignore[arg-type]


def _hand_depth_camera(camera: str, name: str) -> Any:
    """``hand_depth`` with another target camera (``tof``, ``stereo``) playing "real"."""
    from simgan_hand.task import HandDepthTask, depth_camera

    if camera == "tof":
        from simgan_hand.tof import simulate_tof_hands as target
    else:
        from simgan_hand.stereo import simulate_stereo_hands as target
    return HandDepthTask().derive(name=name, target=depth_camera(target))


@hookimpl
def simgan_register_tasks(register: Register) -> None:
    register.task(
        "hand_depth",
        lambda: _hand_depth("randomised"),
        description="224x224 hand depth, 14 NYU joints: simulator (hand, bent forearm, wall or table, randomised) vs Kinect-like target",
    )
    register.task(
        "hand_depth_wall",
        lambda: _hand_depth("hand_arm_wall"),
        description="as hand_depth, but the simulator renders a straight forearm and, in half the images, a wall facing the camera",
    )
    register.task(
        "hand_depth_bare",
        lambda: _hand_depth("hand"),
        description="as hand_depth, but the simulator renders the bare hand model (like NYU synthdepth)",
    )
    register.task(
        "hand_depth_tof",
        lambda: _hand_depth_camera("tof", "hand_depth_tof"),
        description="as hand_depth, target: time-of-flight camera (Kinect v2 style: mixed pixels, multipath, amplitude noise)",
    )
    register.task(
        "hand_depth_stereo",
        lambda: _hand_depth_camera("stereo", "hand_depth_stereo"),
        description="as hand_depth, target: active stereo camera (D4xx style: half-occlusion right, fattening, speckle holes)",
    )


@hookimpl
def simgan_register_datasets(register: Register) -> None:
    register.dataset(
        "nyu_hand",
        "simgan_hand.nyu:NYUHandLoader",
        description="NYU Hand Pose depth frames (Tompson 2014) as 224x224 crops like the simulator's, 14 joints",
    )
