"""Entry-point module of the gaze plugin: registers the ``gaze`` and ``gaze_rgb`` tasks and the
gaze dataset formats (``unityeyes``, ``mpiigaze``, ``kaggle_gaze``, ``kaggle_real_gaze``).

Registers factories only; torch-heavy modules are imported when a task is built, and the loader
modules (which need torch for the loader interface) only when the registry is built.
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


@hookimpl
def simgan_register_datasets(register: Register) -> None:
    # Imported here, not at module level: importing this entry-point module stays cheap.
    from simgan_gaze.datasets import KaggleGazeLoader, KaggleRealGazeLoader, MPIIGazeLoader, UnityEyesLoader

    register.dataset("unityeyes", UnityEyesLoader, description="UnityEyes imgs/N.jpg + N.json -> 35x55 eye crops, gaze + landmarks")
    register.dataset("mpiigaze", MPIIGazeLoader, description="MPIIGaze Data/Normalized/pXX/dayYY.mat -> 35x55 eyes, gaze + head pose")
    register.dataset("kaggle_gaze", KaggleGazeLoader, description="Kaggle eye-gaze gaze.h5 (35x55 synthetic eyes + look_vec)")
    register.dataset("kaggle_real_gaze", KaggleRealGazeLoader, description="Kaggle eye-gaze real_gaze.h5 (35x55 real eyes, unlabelled)")
