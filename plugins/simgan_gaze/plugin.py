"""Entry-point module of the gaze plugin: registers the ``gaze`` and ``gaze_rgb`` tasks, the
same tasks against other target cameras (``gaze_nir``, ``gaze_nir_rgb``, ``gaze_webcam``,
``gaze_webcam_rgb``) and the
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


def _gaze_camera(camera: str, rgb: bool, name: str) -> Any:
    """The gaze task with another target camera (``nir``, ``webcam``) playing "real"."""
    from simgan_gaze.task import GazeTask, eye_camera

    if camera == "nir":
        from simgan_gaze.nir import simulate_nir_eyes as target
    else:
        from simgan_gaze.webcam import simulate_webcam_eyes as target
    return GazeTask(rgb=rgb).derive(name=name, target=eye_camera(target, rgb))


#: Other target cameras: task name -> (camera, rgb, description).
_CAMERAS = {
    "gaze_nir": ("nir", False, "35x55 grayscale eyes: simulator vs near-infrared remote eye tracker (LED glints, bright/dark pupil)"),
    "gaze_nir_rgb": ("nir", True, "35x55 RGB simulator eyes vs near-infrared eye tracker (monochrome, in three channels)"),
    "gaze_webcam": ("webcam", False, "35x55 grayscale eyes: simulator vs low-light laptop webcam (shot noise, denoiser, JPEG)"),
    "gaze_webcam_rgb": ("webcam", True, "35x55 RGB eyes: simulator vs low-light laptop webcam (screen colour cast, chroma blur)"),
}


@hookimpl
def simgan_register_tasks(register: Register) -> None:
    register.task("gaze", lambda: _gaze(False), description="35x55 grayscale eyes: procedural simulator vs 'real' target generator")
    register.task("gaze_rgb", lambda: _gaze(True), description="35x55 RGB eyes: procedural simulator vs 'real' target generator")
    for name, (camera, rgb, description) in _CAMERAS.items():
        register.task(name, lambda c=camera, r=rgb, n=name: _gaze_camera(c, r, n), description=description)


@hookimpl
def simgan_register_datasets(register: Register) -> None:
    # "module:Class" paths: the loaders (torch, kornia, scipy) are imported only when used.
    register.dataset("unityeyes", "simgan_gaze.datasets.unityeyes:UnityEyesLoader", description="UnityEyes imgs/N.jpg + N.json -> 35x55 eye crops, gaze + landmarks")
    register.dataset("mpiigaze", "simgan_gaze.datasets.mpiigaze:MPIIGazeLoader", description="MPIIGaze Data/Normalized/pXX/dayYY.mat -> 35x55 eyes, gaze + head pose")
    register.dataset("kaggle_gaze", "simgan_gaze.datasets.kaggle_h5:KaggleGazeLoader", description="Kaggle eye-gaze gaze.h5 (35x55 synthetic eyes + look_vec)")
    register.dataset("kaggle_real_gaze", "simgan_gaze.datasets.kaggle_h5:KaggleRealGazeLoader", description="Kaggle eye-gaze real_gaze.h5 (35x55 real eyes, unlabelled)")
