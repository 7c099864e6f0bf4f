"""The plugin manager: loads plugins from entry points and builds the registry.

Loading follows pytest/tox: hook specs from :mod:`simgan_toolkit.plugin.hookspecs`, the
built-in components registered as an ordinary plugin, then every entry point of the
``simgan_toolkit`` group. A plugin that fails to import produces a warning naming it and is
skipped; the others still load. ``check_pending`` makes a misspelled hook fail loudly.

Environment variables (as in ``llm``):
    SIMGAN_PLUGINS: comma-separated allowlist of entry-point names to load ("" loads none).
    SIMGAN_DISABLE_PLUGINS: comma-separated entry-point names to skip.
"""

from __future__ import annotations

import importlib.metadata
import os
import warnings
from collections.abc import Iterable
from types import ModuleType
from typing import Any

import pluggy

from simgan_toolkit.errors import PluginError
from simgan_toolkit.plugin import hookspecs
from simgan_toolkit.plugin.markers import ENTRY_POINT_GROUP, PROJECT_NAME
from simgan_toolkit.plugin.registry import Register, Registry

BUILTIN_PLUGIN_NAME = "simgan_toolkit.builtins"

_REGISTER_HOOKS = (
    "simgan_register_tasks",
    "simgan_register_networks",
    "simgan_register_feature_transforms",
    "simgan_register_losses",
    "simgan_register_estimators",
    "simgan_register_datasets",
)


class PluginLoadWarning(UserWarning):
    """A plugin could not be imported or failed while registering; it was skipped."""


def _names_from_env(var: str) -> set[str] | None:
    value = os.environ.get(var)
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


class PluginManager:
    """Typed facade over a :class:`pluggy.PluginManager`.

    Args:
        load_entry_points: discover plugins from the ``simgan_toolkit`` entry-point group.
        plugins: extra plugin objects (modules or instances with hookimpls) to register,
            e.g. from tests; given as objects or ``(name, object)`` pairs.
    """

    def __init__(self, *, load_entry_points: bool = True, plugins: Iterable[Any] = ()) -> None:
        self._pm = pluggy.PluginManager(PROJECT_NAME)
        self._pm.add_hookspecs(hookspecs)
        self._registry: Registry | None = None
        #: (plugin name, error message) for every plugin that was skipped.
        self.failures: list[tuple[str, str]] = []

        from simgan_toolkit import builtins

        self._pm.register(builtins, name=BUILTIN_PLUGIN_NAME)
        if load_entry_points:
            self._load_entry_points()
        for plugin in plugins:
            name, obj = plugin if isinstance(plugin, tuple) else (None, plugin)
            self.register(obj, name=name)
        self._check_pending()

    def _check_pending(self) -> None:
        try:
            self._pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"plugin {exc.plugin!r} implements an unknown hook: {exc}") from None

    def _load_entry_points(self) -> None:
        allow = _names_from_env("SIMGAN_PLUGINS")
        deny = _names_from_env("SIMGAN_DISABLE_PLUGINS") or set()
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if (allow is not None and ep.name not in allow) or ep.name in deny:
                continue
            if self._pm.get_plugin(ep.name) is not None:
                continue  # the same distribution seen twice on sys.path
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin must not take the others down
                self._fail(ep.name, f"failed to import {ep.value!r}: {type(exc).__name__}: {exc}")
                continue
            self._pm.register(module, name=ep.name)

    def _fail(self, name: str, message: str) -> None:
        self.failures.append((name, message))
        warnings.warn(f"simgan-toolkit plugin {name!r} skipped: {message}", PluginLoadWarning, stacklevel=3)

    def register(self, plugin: ModuleType | object, name: str | None = None) -> str:
        """Register a plugin object; returns its name. Invalidates the registry cache."""
        try:
            registered = self._pm.register(plugin, name=name)
        except ValueError as exc:
            raise PluginError(f"cannot register plugin {name or plugin!r}: {exc}") from None
        self._registry = None
        self._check_pending()
        return registered or str(name)

    def plugin_names(self) -> list[str]:
        """Names of the loaded plugins (built-ins included)."""
        return [name for name, _ in self._pm.list_name_plugin()]

    @property
    def registry(self) -> Registry:
        """The registry, built on first use by calling every plugin's register hooks."""
        if self._registry is None:
            self._registry = self._build_registry()
        return self._registry

    def _build_registry(self) -> Registry:
        registry = Registry()
        for hook_name in _REGISTER_HOOKS:
            caller = getattr(self._pm.hook, hook_name)
            # Call each implementation on its own, so each entry records its plugin's name.
            for impl in reversed(caller.get_hookimpls()):
                register = Register(registry, impl.plugin_name)
                args = {"register": register}
                try:
                    impl.function(*(args[a] for a in impl.argnames))
                except PluginError:
                    raise
                except Exception as exc:
                    self._fail(impl.plugin_name, f"{hook_name} raised {type(exc).__name__}: {exc}")
        return registry


_default_manager: PluginManager | None = None


def get_plugin_manager() -> PluginManager:
    """The process-wide manager, with entry points loaded (created on first call)."""
    global _default_manager
    if _default_manager is None:
        _default_manager = PluginManager()
    return _default_manager


def get_registry() -> Registry:
    """Shortcut for ``get_plugin_manager().registry``."""
    return get_plugin_manager().registry
