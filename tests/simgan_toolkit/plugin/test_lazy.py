"""Lazy "module:Class" references: dataset formats registered without importing their module."""

from __future__ import annotations

import sys

import pytest

from simgan_toolkit.errors import PluginError
from simgan_toolkit.plugin import Register, Registry
from simgan_toolkit.plugin.lazy import LazyRef, resolve


def test_string_reference_is_imported_only_when_resolved(tmp_path, monkeypatch):
    (tmp_path / "lazy_fmt_mod.py").write_text("class Fmt:\n    name = 'x'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry()
    Register(registry, "third_party").dataset("fmt", "lazy_fmt_mod:Fmt", description="d")
    assert "lazy_fmt_mod" not in sys.modules
    entry = registry.get("dataset", "fmt")
    assert isinstance(entry.factory, LazyRef) and entry.plugin == "third_party"
    cls = resolve(entry.factory)
    assert cls.__name__ == "Fmt" and "lazy_fmt_mod" in sys.modules
    assert resolve(entry.factory) is cls  # cached
    assert resolve(cls) is cls  # non-references pass through
    assert entry.factory.name == "x" and isinstance(registry.create("dataset", "fmt"), cls)  # forwards


@pytest.mark.parametrize("ref", ["no_colon", ":Cls", "mod:", ""])
def test_malformed_reference_names_the_plugin(ref):
    with pytest.raises(PluginError, match=r"plugin 'p': .* is not a 'package.module:Attribute' reference"):
        Register(Registry(), "p").dataset("fmt", ref)


@pytest.mark.parametrize(("ref", "why"), [("no_such_module_xyz:Cls", "ModuleNotFoundError"), ("json:NoSuchClass", "AttributeError")])
def test_unloadable_reference_is_a_plugin_error_naming_it(ref, why):
    lazy = LazyRef(ref, owner="p")
    with pytest.raises(PluginError, match=rf"plugin 'p': cannot load '{ref}': {why}.*; fix or reinstall the plugin, or disable it with SIMGAN_DISABLE_PLUGINS=p$"):
        lazy.load()
