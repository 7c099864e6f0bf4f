"""The built-in plugins, installed through entry points as a third party's would be, load cleanly.

The plugin manager itself is tested with the tests' own installed plugins in
``tests/simgan_toolkit/plugin/test_manager.py``.
"""

from __future__ import annotations

import warnings

import pytest

from simgan_toolkit.data.loader import DatasetLoader
from simgan_toolkit.plugin import PluginLoadWarning, PluginManager
from simgan_toolkit.plugin.lazy import resolve


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    monkeypatch.delenv("SIMGAN_PLUGINS", raising=False)
    monkeypatch.delenv("SIMGAN_DISABLE_PLUGINS", raising=False)


def test_builtin_plugins_load_from_their_entry_points():
    with warnings.catch_warnings():
        warnings.simplefilter("error", PluginLoadWarning)
        m = PluginManager()
        reg = m.registry
    assert reg.get("task", "gaze").plugin == "gaze"
    assert reg.get("task", "hand_depth").plugin == "hand"
    assert reg.get("estimator", "gaze_cnn").plugin == "estimators"
    assert {"simgan_toolkit.builtins", "gaze", "hand", "estimators", "losskernels"} <= set(m.plugin_names())
    assert m.failures == [] and m.conflicts == [] and m.env_warnings == []


def test_builtin_dataset_formats_are_registered_lazily(registry):
    names = registry.names("dataset")
    assert {"unityeyes", "mpiigaze", "kaggle_gaze", "kaggle_real_gaze", "nyu_hand"} <= set(names)
    for name in names:
        cls = resolve(registry.get("dataset", name).factory)
        assert issubclass(cls, DatasetLoader) and cls.name == name
