"""Entry-point module of the hand plugin: the ``hand_depth`` task and the ``nyu_hand`` dataset format.

Imports stay cheap: the task is built by a factory, and the loader is registered by its
``"module:Class"`` path, imported only when the format is used.
"""

from __future__ import annotations

from typing import Any

from simgan_toolkit.plugin import Register, hookimpl


def _hand_depth(scene: str, name: str) -> Any:
    from simgan_hand.task import HandDepthTask

    return HandDepthTask(scene=scene, name=name)  # type: ignore[arg-type]


@hookimpl
def simgan_register_tasks(register: Register) -> None:
    register.task(
        "hand_depth",
        lambda: _hand_depth("hand_arm_wall", "hand_depth"),
        description="224x224 hand depth, 14 NYU joints: simulator (hand, forearm, wall) vs Kinect-like target",
    )
    register.task(
        "hand_depth_bare",
        lambda: _hand_depth("hand", "hand_depth_bare"),
        description="as hand_depth, but the simulator renders the bare hand model (like NYU synthdepth)",
    )


@hookimpl
def simgan_register_datasets(register: Register) -> None:
    register.dataset(
        "nyu_hand",
        "simgan_hand.nyu:NYUHandLoader",
        description="NYU Hand Pose depth frames (Tompson 2014) as 224x224 crops like the simulator's, 14 joints",
    )
