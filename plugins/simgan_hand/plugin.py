"""Entry-point module of the hand plugin: the ``hand_depth`` task and the ``nyu_hand`` dataset format.

Imports stay cheap: the task is built by a factory, and the loader module is imported only when
the datasets hook runs (the hookspec wants the loader class itself, which needs torch).
"""

from __future__ import annotations

from typing import Any

from simgan_toolkit.plugin import Register, hookimpl


def _hand_depth() -> Any:
    from simgan_hand.task import HandDepthTask

    return HandDepthTask()


@hookimpl
def simgan_register_tasks(register: Register) -> None:
    register.task("hand_depth", _hand_depth, description="224x224 hand depth, 14 NYU joints: kinematic simulator vs Kinect-like target")


@hookimpl
def simgan_register_datasets(register: Register) -> None:
    from simgan_hand.nyu import NYUHandLoader

    register.dataset(
        "nyu_hand",
        NYUHandLoader,
        description="NYU Hand Pose depth frames (Tompson 2014) as 224x224 crops like the simulator's, 14 joints",
    )
