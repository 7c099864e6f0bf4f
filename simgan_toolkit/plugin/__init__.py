"""The public plugin API: what a plugin author imports.

>>> from simgan_toolkit.plugin import hookimpl
>>> @hookimpl
... def simgan_register_tasks(register):
...     pass
"""

from simgan_toolkit.plugin.markers import ENTRY_POINT_GROUP, hookimpl, hookspec
from simgan_toolkit.plugin.manager import PluginLoadWarning, PluginManager, get_plugin_manager, get_registry
from simgan_toolkit.plugin.registry import KINDS, Entry, Register, Registry

__all__ = [
    "ENTRY_POINT_GROUP",
    "KINDS",
    "Entry",
    "PluginLoadWarning",
    "PluginManager",
    "Register",
    "Registry",
    "get_plugin_manager",
    "get_registry",
    "hookimpl",
    "hookspec",
]
