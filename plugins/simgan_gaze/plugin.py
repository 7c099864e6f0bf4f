"""Entry-point module of the gaze plugin: registers the ``gaze`` and ``gaze_rgb`` tasks.

Registers factories only; torch-heavy modules are imported when a task is built.
"""

from __future__ import annotations

from typing import Any

from simgan_toolkit.plugin import Register, hookimpl


def _gaze(rgb: bool) -> Any:
    from simgan_gaze.task import GazeTask

    return GazeTask(rgb=rgb)


@hookimpl
def simgan_register_tasks(register: Register) -> None:
    register.task("gaze", lambda: _gaze(False), description="35x55 grayscale eyes: procedural simulator vs 'real' target generator")
    register.task("gaze_rgb", lambda: _gaze(True), description="35x55 RGB eyes: procedural simulator vs 'real' target generator")
