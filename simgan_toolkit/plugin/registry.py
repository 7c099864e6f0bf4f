"""The registry of named components, and the ``Register`` facade handed to plugin hooks."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from simgan_toolkit.errors import PluginError
from simgan_toolkit.plugin.lazy import LazyRef

#: The kinds of component a plugin can register, in display order.
KINDS: tuple[str, ...] = (
    "task",
    "refiner",
    "discriminator",
    "feature_transform",
    "loss",
    "estimator",
    "dataset",
)


def _always_available(device: Any) -> bool:
    return True


class NameConflict(PluginError):
    """Two registrations of one ``kind`` and ``name``; names both plugins (``first`` kept the name).

    The message lists the plugins by name, not by registration order, which follows
    ``sys.path`` and would make the same clash read differently on two machines.
    """

    def __init__(self, kind: str, name: str, first: str, second: str) -> None:
        if first == second:
            message = f"{kind} {name!r} is registered twice by plugin {first!r}"
        else:
            message = f"{kind} {name!r} is registered by two plugins, " + " and ".join(map(repr, sorted((first, second))))
        super().__init__(message)
        self.kind, self.name, self.first, self.second = kind, name, first, second


@dataclass(frozen=True)
class Entry:
    """One registered component.

    Attributes:
        kind: one of :data:`KINDS`.
        name: the name configs and the CLI use to select it.
        factory: callable building the component; its keyword arguments depend on the kind.
        plugin: name of the plugin that registered it.
        description: one line shown by ``simgan plugins``.
        priority: used by ``loss = "auto"``: the highest available priority wins.
        available: ``available(device) -> bool``; whether the component can run on a device.
    """

    kind: str
    name: str
    factory: Callable[..., Any]
    plugin: str
    description: str = ""
    priority: int = 0
    available: Callable[[Any], bool] = field(default=_always_available)


class Registry:
    """Named components by kind. Built once by the plugin manager from every plugin's hooks."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], Entry] = {}
        #: Short remarks appended to "unknown name" errors, e.g. which plugins failed to load,
        #: because a missing name is often a plugin that was skipped rather than a typo.
        self.notes: list[str] = []

    def add(self, entry: Entry) -> None:
        """Add ``entry``; a name already taken for that kind is a :class:`PluginError`."""
        if entry.kind not in KINDS:
            raise PluginError(f"plugin {entry.plugin!r}: unknown kind {entry.kind!r}; expected one of {KINDS}")
        if not entry.name or not entry.name.replace("_", "").replace("-", "").isalnum():
            raise PluginError(
                f"plugin {entry.plugin!r}: {entry.kind} name {entry.name!r} must be letters, digits, '_' or '-'"
            )
        key = (entry.kind, entry.name)
        if key in self._entries:
            raise NameConflict(entry.kind, entry.name, self._entries[key].plugin, entry.plugin)
        self._entries[key] = entry

    def get(self, kind: str, name: str) -> Entry:
        """Return the entry, or raise a :class:`PluginError` that lists the known names."""
        try:
            return self._entries[(kind, name)]
        except KeyError:
            known = self.names(kind)
            hint = difflib.get_close_matches(name, known, n=1)
            suggestion = f" Did you mean {hint[0]!r}?" if hint else ""
            notes = f" ({'; '.join(self.notes)})" if self.notes else ""
            raise PluginError(
                f"unknown {kind} {name!r}.{suggestion} Registered: {', '.join(known) or 'none'}{notes}"
            ) from None

    def create(self, kind: str, name: str, **kwargs: Any) -> Any:
        """Build the component ``name`` of ``kind`` with ``kwargs``.

        A task factory must return a :class:`simgan_toolkit.task.Task`; anything else is the
        registering plugin's mistake and is reported as such instead of failing later inside
        the pipeline with an ``AttributeError``.
        """
        entry = self.get(kind, name)
        component = entry.factory(**kwargs)
        if kind == "task":
            from simgan_toolkit.task import Task  # imports torch: only when a task is built

            if not isinstance(component, Task):
                raise PluginError(
                    f"plugin {entry.plugin!r}: task {name!r} factory returned {type(component).__name__}, "
                    "not a simgan_toolkit.task.Task"
                )
        return component

    def names(self, kind: str) -> list[str]:
        """Sorted names registered for ``kind``."""
        return sorted(n for k, n in self._entries if k == kind)

    def entries(self, kind: str | None = None) -> list[Entry]:
        """All entries (of one kind if given), in :data:`KINDS` order then by name."""
        chosen = [e for e in self._entries.values() if kind is None or e.kind == kind]
        return sorted(chosen, key=lambda e: (KINDS.index(e.kind), e.name))


class Register:
    """What a plugin's ``simgan_register_*`` hook receives: one typed method per kind.

    Every method records the plugin name, so ``simgan plugins`` can say where a component
    comes from and conflicts name both plugins.

    Args:
        registry: where the entries go.
        plugin: name of the plugin whose hook receives this object.
        on_error: called with the :class:`PluginError` of a rejected registration (a taken
            name, an invalid name, a factory that is not callable) instead of raising it, so
            the plugin's other registrations still happen; the plugin manager uses this to
            report every problem at once.
    """

    def __init__(self, registry: Registry, plugin: str, on_error: Callable[[PluginError], None] | None = None) -> None:
        self._registry = registry
        self.plugin = plugin
        self._on_error = on_error

    def _add(self, kind: str, name: str, factory: Callable[..., Any], description: str, **extra: Any) -> None:
        try:
            if not callable(factory) and not isinstance(factory, LazyRef):
                raise PluginError(
                    f"plugin {self.plugin!r}: factory for {kind} {name!r} is not callable "
                    f"(got {type(factory).__name__})"
                )
            self._registry.add(Entry(kind, name, factory, self.plugin, description, **extra))
        except PluginError as exc:
            self._reject(exc)

    def _reject(self, error: PluginError) -> None:
        if self._on_error is None:
            raise error
        self._on_error(error)

    def task(self, name: str, factory: Callable[[], Any], *, description: str = "") -> None:
        """Register a task; ``factory()`` returns a :class:`simgan_toolkit.task.Task`."""
        self._add("task", name, factory, description)

    def task_on(self, name: str, base: str, derive: Callable[[Any], Any], *, description: str = "") -> None:
        """Register a task built on the registered task ``base``: ``derive(base_task)`` returns it,
        typically ``base_task.derive(name=name, target=...)`` (:meth:`simgan_toolkit.task.Task.derive`).
        ``base`` is looked up in the same registry when the task is built, so it may come from any plugin."""
        registry = self._registry
        self._add("task", name, lambda: derive(registry.create("task", base)), description)

    def refiner(self, name: str, factory: Callable[..., Any], *, description: str = "") -> None:
        """Register a refiner architecture."""
        self._add("refiner", name, factory, description)

    def discriminator(self, name: str, factory: Callable[..., Any], *, description: str = "") -> None:
        """Register a discriminator architecture."""
        self._add("discriminator", name, factory, description)

    def feature_transform(self, name: str, factory: Callable[..., Any], *, description: str = "") -> None:
        """Register a feature transform psi."""
        self._add("feature_transform", name, factory, description)

    def loss(
        self,
        name: str,
        factory: Callable[[], Any],
        *,
        description: str = "",
        priority: int = 0,
        available: Callable[[Any], bool] = _always_available,
    ) -> None:
        """Register a SimGAN loss implementation (see the ``simgan_register_losses`` hook)."""
        self._add("loss", name, factory, description, priority=priority, available=available)

    def estimator(self, name: str, factory: Callable[..., Any], *, description: str = "") -> None:
        """Register a downstream estimator."""
        self._add("estimator", name, factory, description)

    def dataset(self, name: str, loader_class: type | str, *, description: str = "") -> None:
        """Register a dataset format: a :class:`simgan_toolkit.data.loader.DatasetLoader` subclass,
        or a ``"package.module:ClassName"`` string imported only when the format is used (keeps
        building the registry cheap; see :mod:`simgan_toolkit.plugin.lazy`)."""
        try:
            factory = LazyRef(loader_class, self.plugin) if isinstance(loader_class, str) else loader_class
        except PluginError as exc:  # a malformed "module:Class" string
            self._reject(exc)
            return
        self._add("dataset", name, factory, description)
