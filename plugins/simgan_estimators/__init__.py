"""Downstream estimators for simgan-toolkit: the gaze CNN, stacked hourglass, and timm backbones."""
