"""Entry-point module of the hand plugin: registers the ``hand_depth`` task (imports stay cheap)."""

from __future__ import annotations

from typing import Any

from simgan_toolkit.plugin import Register, hookimpl


def _hand_depth() -> Any:
    from simgan_hand.task import HandDepthTask

    return HandDepthTask()


@hookimpl
def simgan_register_tasks(register: Register) -> None:
    register.task("hand_depth", _hand_depth, description="224x224 hand depth, 14 NYU joints: kinematic simulator vs Kinect-like target")
