"""On-disk gaze datasets: loaders that turn UnityEyes, MPIIGaze and Kaggle eye-gaze files into
35x55 eye images with labels in the gaze task's conventions.

Modules: :mod:`.conventions` (gaze/pose/pixel conventions), :mod:`.crop` (scale-normalised
affine eye crops), one module per format (:mod:`.unityeyes`, :mod:`.mpiigaze`,
:mod:`.kaggle_h5`). Loaders are registered by :mod:`simgan_gaze.plugin`.
"""

from simgan_gaze.datasets.kaggle_h5 import KaggleGazeLoader, KaggleRealGazeLoader
from simgan_gaze.datasets.mpiigaze import MPIIGazeLoader, leave_one_person_out
from simgan_gaze.datasets.unityeyes import UnityEyesLoader, parse_unityeyes_json

__all__ = [
    "KaggleGazeLoader",
    "KaggleRealGazeLoader",
    "MPIIGazeLoader",
    "UnityEyesLoader",
    "leave_one_person_out",
    "parse_unityeyes_json",
]
