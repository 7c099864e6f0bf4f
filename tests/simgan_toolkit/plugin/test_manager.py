"""Plugin manager: built-in and entry-point plugins, test plugins, broken plugins, env vars."""

from __future__ import annotations

import importlib.metadata
import warnings

import pytest

from simgan_toolkit.errors import PluginError
from simgan_toolkit.plugin import PluginLoadWarning, PluginManager, hookimpl
from simgan_toolkit.plugin import manager as manager_module


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    monkeypatch.delenv("SIMGAN_PLUGINS", raising=False)
    monkeypatch.delenv("SIMGAN_DISABLE_PLUGINS", raising=False)


class TinyTaskPlugin:
    @hookimpl
    def simgan_register_tasks(self, register):
        register.task("tiny", lambda: "TINY TASK", description="a tiny test task")


class GazeClash:
    @hookimpl
    def simgan_register_tasks(self, register):
        register.task("gaze", lambda: None)


class Misspelled:
    @hookimpl
    def simgan_register_task(self, register):  # missing the final 's'
        register.task("never", lambda: None)


class Exploding:
    @hookimpl
    def simgan_register_tasks(self, register):
        raise RuntimeError("boom in register")


def test_builtin_and_entry_point_plugins_load():
    m = PluginManager()
    reg = m.registry
    assert reg.get("task", "gaze").plugin == "gaze"
    assert reg.get("estimator", "gaze_cnn").plugin == "estimators"
    assert reg.get("refiner", "resnet").plugin == "simgan_toolkit.builtins"
    assert reg.get("loss", "reference").plugin == "simgan_toolkit.builtins"
    assert {"local", "global"} <= set(reg.names("discriminator"))
    assert {"identity", "channel_mean", "gradients", "learned"} <= set(reg.names("feature_transform"))
    assert {"simgan_toolkit.builtins", "gaze", "estimators"} <= set(m.plugin_names())
    assert m.failures == []


def test_registry_is_cached_and_invalidated_by_register():
    m = PluginManager(load_entry_points=False)
    first = m.registry
    assert m.registry is first
    m.register(TinyTaskPlugin(), name="tiny_plugin")
    assert m.registry is not first
    assert m.registry.get("task", "tiny").plugin == "tiny_plugin"


def test_plugin_object_registers_a_task():
    m = PluginManager(load_entry_points=False, plugins=[("tiny_plugin", TinyTaskPlugin())])
    entry = m.registry.get("task", "tiny")
    assert entry.plugin == "tiny_plugin"
    assert entry.description == "a tiny test task"
    assert m.registry.create("task", "tiny") == "TINY TASK"
    # Without entry points there is no gaze task, but the built-ins are there.
    assert "gaze" not in m.registry.names("task")
    assert m.registry.names("refiner") == ["resnet"]


def test_plugin_object_without_name_still_recorded():
    m = PluginManager(load_entry_points=False, plugins=[TinyTaskPlugin()])
    plugin = m.registry.get("task", "tiny").plugin
    assert plugin in m.plugin_names() and plugin != "simgan_toolkit.builtins"


def test_conflicting_plugin_names_both_plugins():
    m = PluginManager(plugins=[("clasher", GazeClash())])
    with pytest.raises(PluginError) as info:
        _ = m.registry
    assert "'gaze'" in str(info.value) and "'clasher'" in str(info.value)


def test_same_plugin_name_twice_is_plugin_error():
    m = PluginManager(load_entry_points=False, plugins=[("dup", TinyTaskPlugin())])
    with pytest.raises(PluginError, match="dup"):
        m.register(TinyTaskPlugin(), name="dup")


def test_broken_entry_point_warns_and_others_load(monkeypatch):
    real_entry_points = importlib.metadata.entry_points

    def fake_entry_points(**kwargs):
        eps = list(real_entry_points(**kwargs))
        if kwargs.get("group") == "simgan_toolkit":
            eps.append(importlib.metadata.EntryPoint(name="broken", value="no_such_module_xyz", group="simgan_toolkit"))
        return eps

    monkeypatch.setattr(manager_module.importlib.metadata, "entry_points", fake_entry_points)
    with pytest.warns(PluginLoadWarning, match="broken") as record:
        m = PluginManager()
    assert any("no_such_module_xyz" in str(w.message) for w in record)
    assert [name for name, _ in m.failures] == ["broken"]
    assert "no_such_module_xyz" in m.failures[0][1]
    assert m.registry.get("task", "gaze").plugin == "gaze"
    assert "broken" not in m.plugin_names()


def test_misspelled_hook_is_plugin_error():
    with pytest.raises(PluginError, match="simgan_register_task"):
        PluginManager(load_entry_points=False, plugins=[Misspelled()])


def test_raising_register_hook_warns_and_others_present():
    m = PluginManager(load_entry_points=False, plugins=[("exploding", Exploding()), ("tiny_plugin", TinyTaskPlugin())])
    with pytest.warns(PluginLoadWarning, match="exploding") as record:
        reg = m.registry
    assert any("boom in register" in str(w.message) for w in record)
    assert [name for name, _ in m.failures] == ["exploding"]
    assert "RuntimeError" in m.failures[0][1]
    assert reg.names("task") == ["tiny"]
    assert reg.names("refiner") == ["resnet"]


def test_allowlist_env_var(monkeypatch):
    monkeypatch.setenv("SIMGAN_PLUGINS", "estimators")
    m = PluginManager()
    assert "gaze" not in m.plugin_names()
    assert "estimators" in m.plugin_names()
    assert m.registry.names("task") == []
    assert "gaze_cnn" in m.registry.names("estimator")


def test_empty_allowlist_loads_no_entry_points(monkeypatch):
    monkeypatch.setenv("SIMGAN_PLUGINS", "")
    m = PluginManager()
    assert m.plugin_names() == ["simgan_toolkit.builtins"]
    assert m.registry.names("estimator") == []
    assert m.registry.names("refiner") == ["resnet"]


def test_disable_env_var(monkeypatch):
    monkeypatch.setenv("SIMGAN_DISABLE_PLUGINS", " gaze , nothing_else")
    m = PluginManager()
    assert "gaze" not in m.plugin_names()
    assert "gaze" not in m.registry.names("task")
    assert "gaze_cnn" in m.registry.names("estimator")


def test_no_warning_for_healthy_plugins():
    with warnings.catch_warnings():
        warnings.simplefilter("error", PluginLoadWarning)
        m = PluginManager()
        _ = m.registry
