"""Lazy ``"module:attribute"`` references, so plugins can register heavy classes cheaply.

Building the registry imports every plugin's entry-point module; a dataset loader module pulls
in torch, scipy and kornia. Registering ``"simgan_hand.nyu:NYUHandLoader"`` instead of the class
defers that import until the format is actually used, which keeps ``simgan plugins`` and
``--help`` fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from simgan_toolkit.errors import PluginError


class LazyRef:
    """A ``"package.module:Attribute"`` reference, imported on first :meth:`load`.

    Calling it or reading an attribute (``ref.detect(root)``) loads the target and forwards.

    Args:
        ref: dotted module path, a colon, then the attribute name.
        owner: the plugin that registered it (named in import errors).
    """

    def __init__(self, ref: str, owner: str = "?") -> None:
        module, sep, attr = ref.partition(":")
        if not sep or not module or not attr:
            raise PluginError(f"plugin {owner!r}: {ref!r} is not a 'package.module:Attribute' reference")
        self.ref, self.owner = ref, owner
        self._module, self._attr = module, attr
        self._value: Any = None

    def load(self) -> Any:
        """Import and return the referenced object (cached); a failure is a PluginError."""
        if self._value is None:
            try:
                module = importlib.import_module(self._module)
                self._value = getattr(module, self._attr)
            except (ImportError, AttributeError) as exc:
                # Registering a reference never imports it, so this is the first time the
                # plugin's mistake shows: say how to get past it.
                raise PluginError(
                    f"plugin {self.owner!r}: cannot load {self.ref!r}: {type(exc).__name__}: {exc}; "
                    f"fix or reinstall the plugin, or disable it with SIMGAN_DISABLE_PLUGINS={self.owner}"
                ) from None
        return self._value

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the referenced object (build a loader), importing it first."""
        return self.load()(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        # Only reached for names the reference itself lacks: class attributes such as
        # ``detect`` or ``name`` of the referenced class.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.load(), name)

    def __repr__(self) -> str:
        return f"LazyRef({self.ref!r})"


def resolve(obj: Any) -> Any:
    """``obj.load()`` for a :class:`LazyRef`, otherwise ``obj`` itself."""
    return obj.load() if isinstance(obj, LazyRef) else obj
