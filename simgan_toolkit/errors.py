"""User-facing errors.

Every error a user can cause (a bad config value, a missing file, a broken plugin) is a
:class:`SimganError`. The CLI prints its message on one line and exits non-zero, without a
traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class SimganError(Exception):
    """Base class of errors caused by input rather than by a bug."""

    exit_code: int = 2


class ConfigError(SimganError):
    """A configuration value is invalid; the message names the field."""


class PluginError(SimganError):
    """A plugin is missing, broken, or registers a name that is already taken."""


class DataError(SimganError):
    """A data file or tensor does not have the expected layout; the message names it."""


class TrainingDivergedError(SimganError):
    """A loss became NaN or infinite; training stopped before writing a bad checkpoint."""

    exit_code = 3
