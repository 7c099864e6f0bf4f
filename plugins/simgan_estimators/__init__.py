"""Downstream estimators for simgan-toolkit: the paper's gaze CNN and timm backbones."""
