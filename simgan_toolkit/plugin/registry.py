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
            other = self._entries[key].plugin
            raise PluginError(
                f"{entry.kind} {entry.name!r} is registered twice: by plugin {other!r} and by plugin {entry.plugin!r}"
            )
        self._entries[key] = entry

    def get(self, kind: str, name: str) -> Entry:
        """Return the entry, or raise a :class:`PluginError` that lists the known names."""
        try:
            return self._entries[(kind, name)]
        except KeyError:
            known = self.names(kind)
            hint = difflib.get_close_matches(name, known, n=1)
            suggestion = f" Did you mean {hint[0]!r}?" if hint else ""
            raise PluginError(
                f"unknown {kind} {name!r}.{suggestion} Registered: {', '.join(known) or 'none'}"
            ) from None

    def create(self, kind: str, name: str, **kwargs: Any) -> Any:
        """Build the component ``name`` of ``kind`` with ``kwargs``."""
        return self.get(kind, name).factory(**kwargs)

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
    """

    def __init__(self, registry: Registry, plugin: str) -> None:
        self._registry = registry
        self.plugin = plugin

    def _add(self, kind: str, name: str, factory: Callable[..., Any], description: str, **extra: Any) -> None:
        if not callable(factory) and not isinstance(factory, LazyRef):
            raise PluginError(f"plugin {self.plugin!r}: factory for {kind} {name!r} is not callable")
        self._registry.add(Entry(kind, name, factory, self.plugin, description, **extra))

    def task(self, name: str, factory: Callable[[], Any], *, description: str = "") -> None:
        """Register a task; ``factory()`` returns a :class:`simgan_toolkit.task.Task`."""
        self._add("task", name, factory, description)

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
        factory = LazyRef(loader_class, self.plugin) if isinstance(loader_class, str) else loader_class
        self._add("dataset", name, factory, description)
