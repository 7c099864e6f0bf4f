"""User-facing errors.

Every error a user can cause (a bad config value, a missing file, a broken plugin) is a
:class:`SimganError`. The CLI prints its message on one line and exits non-zero, without a
traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import warnings


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


class SimganDeprecationWarning(DeprecationWarning):
    """An old name (a Task method, a setting) that still works until v2; the message names the
    new one. The command lines show these (:func:`show_deprecation_warnings`)."""


def show_deprecation_warnings() -> None:
    """Show :class:`SimganDeprecationWarning` (called by the command lines: an old setting name
    in a ``--set`` or config file is the user's to fix), which Python's default
    ``ignore::DeprecationWarning`` hides outside ``__main__``. Warnings configured otherwise
    (``-W``, ``PYTHONWARNINGS``, pytest's ``filterwarnings``) decide for themselves: the filter
    is added only when that default is the first filter to match these warnings."""
    for action, message, category, module, _ in warnings.filters:
        if message is None and module is None and issubclass(SimganDeprecationWarning, category):
            if action == "ignore" and category is DeprecationWarning:
                warnings.filterwarnings("default", category=SimganDeprecationWarning)
            return
