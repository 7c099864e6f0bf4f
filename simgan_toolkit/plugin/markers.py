"""The pluggy markers. Kept apart so that importing them costs nothing (no torch)."""

from __future__ import annotations

import pluggy

PROJECT_NAME = "simgan_toolkit"
#: Entry-point group through which plugins, built-in and third-party alike, are discovered.
ENTRY_POINT_GROUP = "simgan_toolkit"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
#: The marker plugin authors decorate their hook implementations with.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
