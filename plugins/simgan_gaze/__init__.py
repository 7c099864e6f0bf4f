"""simgan-toolkit plugin: the eye-gaze domain (simulator, target generator, task)."""
