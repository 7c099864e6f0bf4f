"""Registry: add/get/create/names/entries, conflicts naming both plugins, helpful unknown-name errors."""

from __future__ import annotations

import pytest

from simgan_toolkit.errors import PluginError
from simgan_toolkit.plugin import KINDS, Entry, Register, Registry
from simgan_toolkit.plugin.registry import NameConflict


def _factory(**kwargs):
    return kwargs


@pytest.fixture
def reg() -> Registry:
    r = Registry()
    p1 = Register(r, "plug_one")
    p1.refiner("zeta", _factory, description="z")
    p1.refiner("alpha", _factory)
    p1.task("gaze", _factory)
    Register(r, "plug_two").loss("fast", _factory, priority=5)
    return r


def test_get_returns_entry_with_plugin_and_fields(reg):
    e = reg.get("refiner", "zeta")
    assert (e.kind, e.name, e.plugin, e.description) == ("refiner", "zeta", "plug_one", "z")
    assert e.factory is _factory
    loss = reg.get("loss", "fast")
    assert (loss.plugin, loss.priority) == ("plug_two", 5)
    assert loss.available("cpu") is True  # default availability


def test_create_passes_kwargs_to_factory(reg):
    assert reg.create("refiner", "alpha", in_channels=3, width=8) == {"in_channels": 3, "width": 8}


def test_names_sorted_per_kind(reg):
    assert reg.names("refiner") == ["alpha", "zeta"]
    assert reg.names("task") == ["gaze"]
    assert reg.names("estimator") == []


def test_entries_in_kind_order_then_name(reg):
    got = [(e.kind, e.name) for e in reg.entries()]
    # KINDS order is task, refiner, discriminator, feature_transform, loss, estimator.
    assert got == [("task", "gaze"), ("refiner", "alpha"), ("refiner", "zeta"), ("loss", "fast")]
    assert [e.name for e in reg.entries("refiner")] == ["alpha", "zeta"]
    assert KINDS.index("task") < KINDS.index("refiner") < KINDS.index("loss")


def test_duplicate_name_names_both_plugins(reg):
    with pytest.raises(PluginError) as info:
        Register(reg, "intruder").refiner("zeta", _factory)
    msg = str(info.value)
    assert "'plug_one'" in msg and "'intruder'" in msg and "zeta" in msg
    # The original entry is kept.
    assert reg.get("refiner", "zeta").plugin == "plug_one"


def test_same_name_in_other_kind_is_allowed(reg):
    Register(reg, "other").discriminator("zeta", _factory)
    assert reg.get("discriminator", "zeta").plugin == "other"
    assert reg.get("refiner", "zeta").plugin == "plug_one"


def test_unknown_name_lists_registered_and_suggests(reg):
    with pytest.raises(PluginError) as info:
        reg.get("refiner", "alpah")
    msg = str(info.value)
    assert "Did you mean 'alpha'?" in msg
    assert "Registered: alpha, zeta" in msg
    assert "unknown refiner 'alpah'" in msg


def test_unknown_name_without_close_match_has_no_suggestion(reg):
    with pytest.raises(PluginError) as info:
        reg.get("refiner", "qqqqqqqq")
    assert "Did you mean" not in str(info.value)
    assert "alpha, zeta" in str(info.value)


def test_unknown_name_in_empty_kind_says_none(reg):
    with pytest.raises(PluginError, match="Registered: none"):
        reg.create("estimator", "anything")


@pytest.mark.parametrize("bad", ["", "has space", "dot.name", "slash/x", "semi;colon", "-", "_"])
def test_invalid_names_rejected(bad):
    r = Registry()
    with pytest.raises(PluginError, match="must be letters, digits"):
        Register(r, "p").task(bad, _factory)
    assert r.names("task") == []


@pytest.mark.parametrize("good", ["a", "gaze_rgb", "res-net", "x2"])
def test_valid_names_accepted(good):
    r = Registry()
    Register(r, "p").task(good, _factory)
    assert r.names("task") == [good]


def test_unknown_kind_rejected():
    with pytest.raises(PluginError, match="unknown kind 'widget'"):
        Registry().add(Entry("widget", "w", _factory, "p"))


def test_non_callable_factory_rejected():
    with pytest.raises(PluginError, match="not callable"):
        Register(Registry(), "p").refiner("r", "not a function")  # type: ignore[arg-type]


def test_duplicate_is_a_name_conflict_with_both_plugins(reg):
    with pytest.raises(NameConflict) as info:
        Register(reg, "intruder").task("gaze", _factory)
    c = info.value
    assert (c.kind, c.name, c.first, c.second) == ("task", "gaze", "plug_one", "intruder")
    assert isinstance(c, PluginError)


def test_on_error_collects_rejections_and_registration_continues(reg):
    errors = []
    p = Register(reg, "messy", on_error=errors.append)
    p.task("gaze", _factory)  # taken
    p.refiner("not ok", _factory)  # invalid name
    p.loss("nope", 42)  # type: ignore[arg-type]  # not callable
    p.dataset("fmt", "no_colon_here")  # not a module:Class reference
    p.estimator("fine", _factory)
    assert [type(e).__name__ for e in errors] == ["NameConflict", "PluginError", "PluginError", "PluginError"]
    assert "not callable (got int)" in str(errors[2])
    assert "'no_colon_here' is not a 'package.module:Attribute' reference" in str(errors[3])
    assert reg.get("estimator", "fine").plugin == "messy"
    assert reg.get("task", "gaze").plugin == "plug_one"


def test_notes_are_appended_to_unknown_name_errors(reg):
    reg.notes = ["plugin 'spots' failed, see `simgan plugins`"]
    with pytest.raises(PluginError, match=r"Registered: gaze \(plugin 'spots' failed, see `simgan plugins`\)$"):
        reg.get("task", "spots")
