"""Plugin manager: built-in and entry-point plugins, test plugins, broken plugins, env vars.

The installed (entry-point) plugins seen here are the tests' own (:func:`_installed`), not the
built-in gaze, hand and estimator plugins: core must load any plugin. That those load cleanly is
checked in ``tests/plugins/test_installed_plugins.py``.
"""

from __future__ import annotations

import importlib.metadata
import sys
import types
import warnings

import pytest

from simgan_toolkit.errors import PluginError
from simgan_toolkit.plugin import PluginLoadWarning, PluginManager, hookimpl
from simgan_toolkit.plugin import manager as manager_module


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    monkeypatch.delenv("SIMGAN_PLUGINS", raising=False)
    monkeypatch.delenv("SIMGAN_DISABLE_PLUGINS", raising=False)


class SpotterPlugin:
    """Installed as ``spotter``: two tasks."""

    @hookimpl
    def simgan_register_tasks(self, register):
        register.task("spot", lambda: None, description="installed test task")
        register.task("spot_rgb", lambda: None, description="installed test task, RGB")


class LinearsPlugin:
    """Installed as ``linears``: one estimator."""

    @hookimpl
    def simgan_register_estimators(self, register):
        register.estimator("linear", lambda **_: None, description="installed test estimator")


class ExtraPlugin:
    """Installed as ``extra``: one more task."""

    @hookimpl
    def simgan_register_tasks(self, register):
        register.task("extra", lambda: None)


def _entry_point(monkeypatch, name, module_name, plugin=None):
    """An entry point ``name`` whose module ``module_name`` holds ``plugin``'s hooks (none: not importable)."""
    if plugin is not None:
        module = types.ModuleType(module_name)
        for attr in dir(plugin):
            if attr.startswith("simgan_"):
                setattr(module, attr, getattr(plugin, attr))
        monkeypatch.setitem(sys.modules, module_name, module)
    return importlib.metadata.EntryPoint(name=name, value=module_name, group="simgan_toolkit")


@pytest.fixture(autouse=True)
def _installed(monkeypatch):
    """The installed plugins every test here sees, in this order: ``spotter``, ``linears``, ``extra``;
    the list it returns takes more (see :func:`install`)."""
    installed = [
        _entry_point(monkeypatch, "spotter", "fake_spotter_plugin", SpotterPlugin()),
        _entry_point(monkeypatch, "linears", "fake_linears_plugin", LinearsPlugin()),
        _entry_point(monkeypatch, "extra", "fake_extra_plugin", ExtraPlugin()),
    ]
    real_entry_points = importlib.metadata.entry_points

    def fake_entry_points(**kwargs):
        return list(installed) if kwargs.get("group") == "simgan_toolkit" else real_entry_points(**kwargs)

    monkeypatch.setattr(manager_module.importlib.metadata, "entry_points", fake_entry_points)
    return installed


class TinyTaskPlugin:
    @hookimpl
    def simgan_register_tasks(self, register):
        register.task("tiny", lambda: "TINY TASK", description="a tiny test task")


class SpotClash:
    @hookimpl
    def simgan_register_tasks(self, register):
        register.task("spot", lambda: None)


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
    assert reg.get("task", "spot").plugin == "spotter"
    assert reg.get("estimator", "linear").plugin == "linears"
    assert reg.get("refiner", "resnet").plugin == "simgan_toolkit.builtins"
    assert reg.get("loss", "reference").plugin == "simgan_toolkit.builtins"
    assert {"local", "global"} <= set(reg.names("discriminator"))
    assert {"identity", "channel_mean", "gradients", "learned"} <= set(reg.names("feature_transform"))
    assert m.plugin_names() == ["simgan_toolkit.builtins", "spotter", "linears", "extra"]
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
    assert entry.factory() == "TINY TASK"
    # Without entry points there is no installed task, but the built-ins are there.
    assert m.registry.names("task") == ["tiny"]
    assert m.registry.names("refiner") == ["resnet"]


def test_plugin_object_without_name_still_recorded():
    m = PluginManager(load_entry_points=False, plugins=[TinyTaskPlugin()])
    plugin = m.registry.get("task", "tiny").plugin
    assert plugin in m.plugin_names() and plugin != "simgan_toolkit.builtins"


def test_conflicting_plugin_names_both_plugins():
    m = PluginManager(plugins=[("clasher", SpotClash())])
    with pytest.raises(PluginError) as info:
        _ = m.registry
    assert "'spot'" in str(info.value) and "'clasher'" in str(info.value)
    # Only the entry-point plugin can be disabled; the object plugin is the caller's own code.
    assert "disable plugin 'spotter' with SIMGAN_DISABLE_PLUGINS=spotter" in str(info.value)


def test_same_plugin_name_twice_is_plugin_error():
    m = PluginManager(load_entry_points=False, plugins=[("dup", TinyTaskPlugin())])
    with pytest.raises(PluginError, match="dup"):
        m.register(TinyTaskPlugin(), name="dup")


def test_broken_entry_point_warns_and_others_load(install):
    install("broken", "no_such_module_xyz")
    with pytest.warns(PluginLoadWarning, match="broken") as record:
        m = PluginManager()
    assert any("no_such_module_xyz" in str(w.message) for w in record)
    assert [name for name, _ in m.failures] == ["broken"]
    assert "no_such_module_xyz" in m.failures[0][1]
    assert m.registry.get("task", "spot").plugin == "spotter"
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
    monkeypatch.setenv("SIMGAN_PLUGINS", "linears")
    m = PluginManager()
    assert m.plugin_names() == ["simgan_toolkit.builtins", "linears"]
    assert m.registry.names("task") == []
    assert m.registry.names("estimator") == ["linear"]


def test_empty_allowlist_loads_no_entry_points(monkeypatch):
    monkeypatch.setenv("SIMGAN_PLUGINS", "")
    m = PluginManager()
    assert m.plugin_names() == ["simgan_toolkit.builtins"]
    assert m.registry.names("estimator") == []
    assert m.registry.names("refiner") == ["resnet"]


def test_disable_env_var(monkeypatch):
    monkeypatch.setenv("SIMGAN_DISABLE_PLUGINS", " spotter , nothing_else")
    with pytest.warns(PluginLoadWarning, match="no installed plugin is named 'nothing_else'"):
        m = PluginManager()
    assert "spotter" not in m.plugin_names()
    assert m.registry.names("task") == ["extra"]
    assert m.registry.names("estimator") == ["linear"]


def test_no_warning_for_healthy_plugins():
    with warnings.catch_warnings():
        warnings.simplefilter("error", PluginLoadWarning)
        m = PluginManager()
        _ = m.registry
    assert m.failures == [] and m.env_warnings == []


# --- installed plugins that clash, break or are named wrongly in the environment ------------


class NotCallable:
    @hookimpl
    def simgan_register_tasks(self, register):
        register.task("bad_factory", "not a factory")
        register.task("fine", lambda: None)


@pytest.fixture
def install(monkeypatch, _installed):
    """``install(name, module_name, plugin=None)``: one more installed plugin, after the others."""

    def add(name, module_name, plugin=None):
        _installed.append(_entry_point(monkeypatch, name, module_name, plugin))

    return add


def test_installed_clash_refuses_registry_and_names_the_fix(install):
    install("clasher", "fake_clash_plugin", SpotClash())
    m = PluginManager()
    with pytest.raises(PluginError) as info:
        _ = m.registry
    message = str(info.value)
    assert "task 'spot' is registered by two plugins, 'clasher' and 'spotter'" in message
    assert "disable one of them with SIMGAN_DISABLE_PLUGINS=clasher or SIMGAN_DISABLE_PLUGINS=spotter" in message


def test_unchecked_registry_lists_everything_despite_a_clash(install):
    install("clasher", "fake_clash_plugin", SpotClash())
    m = PluginManager()
    with warnings.catch_warnings():
        warnings.simplefilter("error", PluginLoadWarning)  # a clash is reported, not warned
        reg = m.unchecked_registry
    assert reg.get("task", "spot").plugin == "spotter"  # the first registration keeps the name
    assert "linear" in reg.names("estimator")
    assert m.failures == []  # a clash belongs to two plugins: it is a conflict, not a failure
    assert [(c.kind, c.name, c.first, c.second) for c in m.conflicts] == [("task", "spot", "spotter", "clasher")]
    assert m.problems() == [
        "task 'spot' is registered by two plugins, 'clasher' and 'spotter'; "
        "disable one of them with SIMGAN_DISABLE_PLUGINS=clasher or SIMGAN_DISABLE_PLUGINS=spotter"
    ]


def test_disable_hint_keeps_what_is_already_disabled(install, monkeypatch):
    install("clasher", "fake_clash_plugin", SpotClash())
    monkeypatch.setenv("SIMGAN_DISABLE_PLUGINS", "extra")
    with pytest.raises(PluginError, match="SIMGAN_DISABLE_PLUGINS=extra,clasher or SIMGAN_DISABLE_PLUGINS=extra,spotter"):
        _ = PluginManager().registry


def test_disabling_one_of_the_clashing_plugins_resolves_it(install, monkeypatch):
    install("clasher", "fake_clash_plugin", SpotClash())
    monkeypatch.setenv("SIMGAN_DISABLE_PLUGINS", "clasher")
    m = PluginManager()
    assert m.registry.get("task", "spot").plugin == "spotter"
    assert m.failures == []


def test_two_clashes_refuse_with_the_first_and_a_count():
    class TwoClashes:
        @hookimpl
        def simgan_register_tasks(self, register):
            register.task("spot", lambda: None)
            register.task("spot_rgb", lambda: None)

    m = PluginManager(plugins=[("two", TwoClashes())])
    with pytest.raises(PluginError, match=r"task 'spot' is registered by two plugins, 'spotter' and 'two'; disable plugin 'spotter'.*\(and 1 more name clash: see `simgan plugins`\)"):
        _ = m.registry


def test_one_plugin_registering_a_name_twice():
    class Twice:
        @hookimpl
        def simgan_register_tasks(self, register):
            register.task("tiny", lambda: None)
            register.task("tiny", lambda: None)

    with pytest.raises(PluginError, match="task 'tiny' is registered twice by plugin 'twice'; rename one of them"):
        _ = PluginManager(load_entry_points=False, plugins=[("twice", Twice())]).registry


def test_clash_between_object_plugins_says_rename():
    m = PluginManager(load_entry_points=False, plugins=[("a", TinyTaskPlugin()), ("b", TinyTaskPlugin())])
    with pytest.raises(PluginError, match="by two plugins, 'a' and 'b'; rename one of them"):
        _ = m.registry


def test_invalid_registration_is_skipped_and_the_rest_of_the_plugin_registers():
    m = PluginManager(load_entry_points=False, plugins=[("notcallable", NotCallable())])
    with pytest.warns(PluginLoadWarning, match="factory for task 'bad_factory' is not callable"):
        reg = m.registry
    assert reg.names("task") == ["fine"]
    assert m.failures == [("notcallable", "factory for task 'bad_factory' is not callable (got str)")]


def test_task_factory_returning_something_else_is_plugin_error():
    m = PluginManager(load_entry_points=False, plugins=[("tiny_plugin", TinyTaskPlugin())])
    with pytest.raises(PluginError, match="plugin 'tiny_plugin': task 'tiny' factory returned str, not a simgan_toolkit.task.Task"):
        m.registry.create("task", "tiny")


def test_installed_plugin_with_misspelled_hook_is_skipped(install):
    install("misspelled", "fake_misspelled_plugin", Misspelled())
    with pytest.warns(PluginLoadWarning, match="misspelled.*unknown hook"):
        m = PluginManager()
    assert "misspelled" not in m.plugin_names()
    assert m.registry.get("task", "spot").plugin == "spotter"


def test_two_installed_plugins_with_one_name(install):
    install("spotter", "fake_other_spotter")  # never imported: the first spotter plugin comes first
    with pytest.warns(PluginLoadWarning, match="two installed plugins are named 'spotter'"):
        m = PluginManager()
    assert m.registry.get("task", "spot").plugin == "spotter"
    assert [name for name, _ in m.failures] == ["spotter"]


def test_unknown_task_names_the_failed_plugin(install):
    install("broken", "no_such_module_xyz")
    with pytest.warns(PluginLoadWarning):
        m = PluginManager()
    with pytest.raises(PluginError, match=r"unknown task 'spots'.*plugin 'broken' failed, see `simgan plugins`"):
        m.registry.get("task", "spots")


def test_hook_failures_are_not_repeated_by_a_rebuild():
    m = PluginManager(load_entry_points=False, plugins=[("exploding", Exploding())])
    with pytest.warns(PluginLoadWarning):
        _ = m.registry
    with pytest.warns(PluginLoadWarning):
        m.register(TinyTaskPlugin(), name="tiny_plugin")
        _ = m.registry
    assert [name for name, _ in m.failures] == ["exploding"]


@pytest.mark.parametrize("var", ["SIMGAN_PLUGINS", "SIMGAN_DISABLE_PLUGINS"])
def test_env_var_naming_no_installed_plugin_warns(var, monkeypatch):
    monkeypatch.setenv(var, "spotter,nosuch")
    with pytest.warns(PluginLoadWarning, match=f"{var}: no installed plugin is named 'nosuch'") as record:
        m = PluginManager()
    assert "(installed: extra, linears, spotter)" in str(record[0].message)  # the installed names are listed
    assert m.env_warnings and "'nosuch'" in m.env_warnings[0]
    assert m.failures == []
    with pytest.raises(PluginError, match=f"{var}='spotter,nosuch'"):
        m.registry.get("task", "spots")
