"""The plugin manager: loads plugins from entry points and builds the registry.

Loading follows pytest/tox: hook specs from :mod:`simgan_toolkit.plugin.hookspecs`, the
built-in components registered as an ordinary plugin, then every entry point of the
``simgan_toolkit`` group. Building the registry calls every hook spec that module defines
(:func:`~simgan_toolkit.plugin.hookspecs.hook_names`), so a new spec needs no change here.

One installed plugin must not take the others (or ``simgan plugins``) down, so problems are
collected (:attr:`PluginManager.failures`, :attr:`PluginManager.conflicts`) rather than raised:

- a plugin that fails to import, implements a misspelled hook, raises in a register hook or
  registers an invalid component is skipped (that registration, or the whole plugin) with a
  :class:`PluginLoadWarning`; the others still load;
- two plugins registering the same name of one kind is a *conflict*: which of the two a config
  meant is unknowable, so :attr:`PluginManager.registry` refuses with a :class:`PluginError`
  naming the name, both plugins and the ``SIMGAN_DISABLE_PLUGINS=...`` that resolves it, while
  :attr:`PluginManager.unchecked_registry` (used by ``simgan plugins``) lists everything.

Plugins given as objects (tests, ``PluginManager(plugins=...)``) with a misspelled hook still
raise at once: that is the caller's own code.

Environment variables (as in ``llm``):
    SIMGAN_PLUGINS: comma-separated allowlist of entry-point names to load ("" loads none).
    SIMGAN_DISABLE_PLUGINS: comma-separated entry-point names to skip.
A name in either that no installed plugin has gives a warning, not an error: the variables
outlive installs, and a stale name must not break every command.
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
from simgan_toolkit.plugin.registry import NameConflict, Register, Registry

BUILTIN_PLUGIN_NAME = "simgan_toolkit.builtins"


class PluginLoadWarning(UserWarning):
    """A plugin could not be imported or failed while registering, so it was skipped; or a
    plugin environment variable names no installed plugin."""


def _names_from_env(var: str) -> list[str] | None:
    """The comma-separated names in ``var`` (in order), or None when it is unset."""
    value = os.environ.get(var)
    if value is None:
        return None
    return [name.strip() for name in value.split(",") if name.strip()]


def _strip_owner(plugin: str, message: str) -> str:
    """``message`` without a leading ``plugin 'NAME': `` (failure lines already name the plugin)."""
    prefix = f"plugin {plugin!r}: "
    return message[len(prefix):] if message.startswith(prefix) else message


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
        self._load_failures: list[tuple[str, str]] = []
        self._build_failures: list[tuple[str, str]] = []
        #: Names registered twice in the last registry build (see :attr:`registry`).
        self.conflicts: list[NameConflict] = []
        #: Problems with the environment variables (names no installed plugin has).
        self.env_warnings: list[str] = []
        # Only entry-point plugins can be disabled, so only they are offered as the fix.
        self._entry_point_names: set[str] = set()

        from simgan_toolkit import builtins

        self._pm.register(builtins, name=BUILTIN_PLUGIN_NAME)
        if load_entry_points:
            self._load_entry_points()
        for plugin in plugins:
            name, obj = plugin if isinstance(plugin, tuple) else (None, plugin)
            self.register(obj, name=name)
        self._check_pending()

    @property
    def failures(self) -> list[tuple[str, str]]:
        """``(plugin name, message)`` for every plugin skipped so far: failed imports, misspelled
        hooks and, once the registry is built, failed register hooks and rejected
        registrations. Name clashes are in :attr:`conflicts`: they belong to two plugins."""
        return self._load_failures + self._build_failures

    def problems(self) -> list[str]:
        """Every failure and conflict as one self-contained line (for ``simgan plugins``)."""
        return [f"plugin {name!r}: {message}" for name, message in self.failures] + [
            self.conflict_message(conflict) for conflict in self.conflicts
        ]

    def _check_pending(self) -> None:
        try:
            self._pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"plugin {exc.plugin!r} implements an unknown hook: {exc}") from None

    def _load_entry_points(self) -> None:
        allow = _names_from_env("SIMGAN_PLUGINS")
        deny = _names_from_env("SIMGAN_DISABLE_PLUGINS") or []
        installed: dict[str, str] = {}  # entry-point name -> value, first one found
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in installed:
                if ep.value != installed[ep.name]:  # not the same distribution seen twice on sys.path
                    both = f"{installed[ep.name]!r} and {ep.value!r}"
                    self._fail(ep.name, f"two installed plugins are named {ep.name!r} ({both}); only the first was loaded")
                continue
            installed[ep.name] = ep.value
            if (allow is not None and ep.name not in allow) or ep.name in deny:
                continue
            self._load_entry_point(ep)
        self._check_env_names("SIMGAN_PLUGINS", allow or [], installed)
        self._check_env_names("SIMGAN_DISABLE_PLUGINS", deny, installed)

    def _load_entry_point(self, ep: importlib.metadata.EntryPoint) -> None:
        """Import and register one entry point; any failure skips it with a warning."""
        try:
            module = ep.load()
        except Exception as exc:  # a broken plugin must not take the others down
            self._fail(ep.name, f"failed to import {ep.value!r}: {type(exc).__name__}: {exc}")
            return
        try:
            self._pm.register(module, name=ep.name)
        except ValueError as exc:  # e.g. two entry points naming one module
            self._fail(ep.name, f"cannot register {ep.value!r}: {exc}")
            return
        try:
            self._pm.check_pending()
        except pluggy.PluginValidationError as exc:
            self._pm.unregister(name=ep.name)
            self._fail(ep.name, f"implements an unknown hook: {exc}")
            return
        self._entry_point_names.add(ep.name)

    def _check_env_names(self, var: str, names: list[str], installed: dict[str, str]) -> None:
        unknown = [name for name in names if name not in installed]
        if unknown:
            message = (
                f"{var}: no installed plugin is named {', '.join(map(repr, unknown))} "
                f"(installed: {', '.join(sorted(installed)) or 'none'})"
            )
            self.env_warnings.append(message)
            warnings.warn(message, PluginLoadWarning, stacklevel=4)

    def _fail(self, name: str, message: str, *, during_build: bool = False) -> None:
        message = _strip_owner(name, message)
        (self._build_failures if during_build else self._load_failures).append((name, message))
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
        """The registry, built on first use by calling every plugin's register hooks.

        Raises:
            PluginError: two plugins registered the same name; the message names the name,
                both plugins and how to disable one of them.
        """
        registry = self.unchecked_registry
        if self.conflicts:
            more = len(self.conflicts) - 1
            also = f" (and {more} more name clash{'es' if more > 1 else ''}: see `simgan plugins`)" if more else ""
            raise PluginError(self.conflict_message(self.conflicts[0]) + also)
        return registry

    @property
    def unchecked_registry(self) -> Registry:
        """The registry even when names clash (the first registration keeps the name).

        For diagnostics (``simgan plugins``), which must work in exactly that case;
        everything else uses :attr:`registry`.
        """
        if self._registry is None:
            self._registry = self._build_registry()
        return self._registry

    def conflict_message(self, conflict: NameConflict) -> str:
        """The conflict and its fix: which ``SIMGAN_DISABLE_PLUGINS`` value resolves it."""
        candidates = sorted(p for p in {conflict.first, conflict.second} if p in self._entry_point_names)
        fixes = [f"SIMGAN_DISABLE_PLUGINS={self._disable_value(p)}" for p in candidates]
        if not fixes:
            hint = "rename one of them"
        elif len(candidates) == 1:
            hint = f"disable plugin {candidates[0]!r} with {fixes[0]}"
        else:
            hint = f"disable one of them with {fixes[0]} or {fixes[1]}"
        return f"{conflict}; {hint}"

    @staticmethod
    def _disable_value(plugin: str) -> str:
        """``SIMGAN_DISABLE_PLUGINS`` with ``plugin`` added to what is already disabled."""
        names = _names_from_env("SIMGAN_DISABLE_PLUGINS") or []
        return ",".join([*names, plugin] if plugin not in names else names)

    def _build_registry(self) -> Registry:
        registry = Registry()
        self._build_failures, self.conflicts = [], []
        for hook_name in hookspecs.hook_names():
            caller = getattr(self._pm.hook, hook_name)
            # Call each implementation on its own, so each entry records its plugin's name; in
            # registration order, so in a clash the built-ins keep their names in the listing.
            for impl in caller.get_hookimpls():
                plugin = impl.plugin_name
                register = Register(registry, plugin, on_error=lambda exc, p=plugin: self._rejected(p, exc))
                args = {"register": register}
                try:
                    impl.function(*(args[a] for a in impl.argnames))
                except PluginError as exc:  # raised by the plugin's own code, already a message
                    self._fail(plugin, f"{hook_name}: {exc}", during_build=True)
                except Exception as exc:
                    self._fail(plugin, f"{hook_name} raised {type(exc).__name__}: {exc}", during_build=True)
        registry.notes = self._registry_notes()
        return registry

    def _rejected(self, plugin: str, error: PluginError) -> None:
        """One registration refused by the registry: a name conflict, or an invalid component."""
        if isinstance(error, NameConflict):
            # No warning: `registry` refuses with this message and `simgan plugins` lists it.
            self.conflicts.append(error)
        else:
            self._fail(plugin, str(error), during_build=True)

    def _registry_notes(self) -> list[str]:
        """Why a name may be missing: failed plugins and the environment variables in force."""
        notes = []
        failed = list(dict.fromkeys(name for name, _ in self.failures))
        if failed:
            which = "plugin" if len(failed) == 1 else "plugins"
            notes.append(f"{which} {', '.join(map(repr, failed))} failed, see `simgan plugins`")
        if "SIMGAN_PLUGINS" in os.environ:
            notes.append(f"SIMGAN_PLUGINS={os.environ['SIMGAN_PLUGINS']!r} loads only the plugins it names")
        if os.environ.get("SIMGAN_DISABLE_PLUGINS"):
            notes.append(f"SIMGAN_DISABLE_PLUGINS={os.environ['SIMGAN_DISABLE_PLUGINS']!r} skips plugins")
        return notes


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
