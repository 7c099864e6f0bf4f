"""Entry-point module of the gaze plugin: registers the ``gaze`` and ``gaze_rgb`` tasks and the
gaze dataset formats (``unityeyes``, ``mpiigaze``, ``kaggle_gaze``, ``kaggle_real_gaze``).

Registers factories and "module:Class" paths only; torch-heavy modules are imported when a task
is built or a dataset format is used.
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
    # "module:Class" paths: the loaders (torch, kornia, scipy) are imported only when used.
    register.dataset("unityeyes", "simgan_gaze.datasets.unityeyes:UnityEyesLoader", description="UnityEyes imgs/N.jpg + N.json -> 35x55 eye crops, gaze + landmarks")
    register.dataset("mpiigaze", "simgan_gaze.datasets.mpiigaze:MPIIGazeLoader", description="MPIIGaze Data/Normalized/pXX/dayYY.mat -> 35x55 eyes, gaze + head pose")
    register.dataset("kaggle_gaze", "simgan_gaze.datasets.kaggle_h5:KaggleGazeLoader", description="Kaggle eye-gaze gaze.h5 (35x55 synthetic eyes + look_vec)")
    register.dataset("kaggle_real_gaze", "simgan_gaze.datasets.kaggle_h5:KaggleRealGazeLoader", description="Kaggle eye-gaze real_gaze.h5 (35x55 real eyes, unlabelled)")
