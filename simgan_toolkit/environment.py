"""Where a run executes: the device it asks for, modules moved onto it, and the machine facts
stored beside every result."""

from __future__ import annotations

import platform
import subprocess
from typing import Any

import torch
from torch import nn

from simgan_toolkit import __version__
from simgan_toolkit.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA if available, else CPU; otherwise the named device (checked)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"device: {name!r} is not a device name ({exc})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: {name!r} requested but CUDA is not available on this machine")
    return device


def to_device(module: nn.Module, device: torch.device, channels_last: bool) -> nn.Module:
    """``module`` on ``device``, its weights channels-last (NHWC) when the config asks for it."""
    module = module.to(device)
    return module.to(memory_format=torch.channels_last) if channels_last else module  # type: ignore[call-overload]


def git_commit() -> str | None:
    """The short commit hash of the working directory's repository, or None outside one."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment_info(device: torch.device) -> dict[str, Any]:
    """Versions and machine facts stored beside every result (``world_size``: training processes)."""
    # Imported here: the training package builds its networks with :func:`to_device`.
    from simgan_toolkit.training import distributed as dist_utils

    info: dict[str, Any] = {
        "simgan_toolkit": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        "cpu_threads": torch.get_num_threads(),
        "world_size": dist_utils.world_size(),
        "commit": git_commit(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
