"""Meta-tests: every hook spec is called, documented with the call sites' signature, and tested.

The hook specs module is the single source (as in datasette's tests/test_plugins.py): a hook
added there without docs, a caller passing other keywords than the docs say, or a kind without
a contract test fails here.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from simgan_toolkit.plugin import KINDS, PluginManager, Register, hookimpl, hookspecs

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "writing-a-plugin.md"
CALLER_TREES = ("simgan_toolkit", "benchmarks", "plugins")


def _kinds_of(hook_name: str) -> list[str]:
    """The kinds a hook registers: the ``register.<kind>(`` calls its docstring describes
    (other ``Register`` methods it mentions, helpers such as ``task_on``, are not kinds)."""
    methods = re.findall(r"register\.(\w+)\(", inspect.getdoc(getattr(hookspecs, hook_name)) or "")
    assert all(hasattr(Register, m) for m in methods), f"{hook_name}'s docstring names a method Register lacks: {methods}"
    return [m for m in methods if m in KINDS]


def _factory_call(kind: str) -> str:
    """How the docs write the toolkit's call of a ``kind`` factory, e.g. ``factory(in_channels=..., **options)``."""
    if kind in ("task", "loss"):
        return "factory()"
    if kind == "dataset":
        return "loader_class(**options)"
    return "factory(" + ", ".join([f"{k}=..." for k in hookspecs.FACTORY_KEYWORDS[kind]] + ["**options"]) + ")"


def test_hook_names_are_every_spec_in_definition_order():
    specs = [name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("simgan_")]
    assert sorted(hookspecs.hook_names()) == sorted(specs)
    assert hookspecs.hook_names()[0] == "simgan_register_tasks"


def test_every_hook_spec_is_called_by_the_manager():
    called: list[str] = []

    class Recorder:
        pass

    for name in hookspecs.hook_names():
        # A hookimpl per spec, each recording its own name when the registry is built.
        setattr(Recorder, name, staticmethod(hookimpl(lambda register, _n=name: called.append(_n))))
        getattr(Recorder, name).__name__ = name
    PluginManager(load_entry_points=False, plugins=[("recorder", Recorder())]).registry
    assert called == list(hookspecs.hook_names())


@pytest.mark.parametrize("hook_name", hookspecs.hook_names())
def test_every_hook_spec_takes_only_register(hook_name):
    # The manager calls each implementation with `register` alone.
    assert list(inspect.signature(getattr(hookspecs, hook_name)).parameters) == ["register"]


@pytest.mark.parametrize("hook_name", hookspecs.hook_names())
def test_every_hook_spec_is_documented_with_its_factory_call(hook_name):
    docs = DOCS.read_text()
    spec_doc = inspect.getdoc(getattr(hookspecs, hook_name))
    kinds = _kinds_of(hook_name)
    assert kinds, f"{hook_name}'s docstring names no register.<kind>(...) call"
    rows = [line for line in docs.splitlines() if line.startswith(f"| `{hook_name}`")]
    assert rows, f"{hook_name} has no row in the hook reference of {DOCS.name}"
    for kind in kinds:
        call = _factory_call(kind)
        assert any(f"register.{kind}(" in row and call in row for row in rows), f"{DOCS.name}: no row shows {call} for {kind}"
        assert call in " ".join(spec_doc.split()), f"{hook_name}'s docstring does not show {call}"


@pytest.mark.parametrize("hook_name", hookspecs.hook_names())
def test_every_hook_spec_is_tested(hook_name):
    contract_tests = (Path(__file__).parent / "test_kinds.py").read_text()
    for kind in _kinds_of(hook_name):
        assert f"def test_{kind}_contract(" in contract_tests, f"{kind} (from {hook_name}) has no contract test"


def _create_calls() -> list[tuple[str, ast.Call]]:
    """Every ``<something>.create("<kind>", ...)`` call in the toolkit, benchmarks and plugins."""
    calls = []
    for tree in CALLER_TREES:
        for path in sorted((ROOT / tree).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "create"
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and node.args[0].value in KINDS
                ):
                    calls.append((f"{path.relative_to(ROOT)}:{node.lineno}", node))
    return calls


def test_call_sites_pass_the_documented_keywords():
    calls = _create_calls()
    assert {node.args[0].value for _, node in calls} >= {"task", "refiner", "discriminator", "feature_transform", "estimator"}
    for where, node in calls:
        kind = node.args[0].value
        named = {k.arg for k in node.keywords if k.arg is not None}
        expanded = any(k.arg is None for k in node.keywords)  # **options
        documented = set(hookspecs.FACTORY_KEYWORDS[kind])
        if expanded:
            # The named keywords are the documented ones; an expansion brings the rest
            # (checked at run time for estimators, whose keywords all come from one helper).
            assert named <= documented, f"{where}: {kind} factory called with {sorted(named - documented)}"
        else:
            assert named == documented, f"{where}: {kind} factory called with {sorted(named)}, documented {sorted(documented)}"


def test_estimator_options_start_with_the_documented_keywords(registry):
    from simgan_toolkit.estimation import estimator_options

    for name in registry.names("task"):
        task = registry.create("task", name)
        options = estimator_options(task, SimpleNamespace(options={}))
        assert list(options)[:2] == list(hookspecs.FACTORY_KEYWORDS["estimator"]), name


def test_refiner_spec_starts_with_the_documented_keywords(tiny_config, tiny_spec):
    from simgan_toolkit.training.build import refiner_spec

    options = refiner_spec(tiny_config(refiner={"options": {"extra": 1}}), tiny_spec)["options"]
    assert list(options)[:1] == list(hookspecs.FACTORY_KEYWORDS["refiner"])
    assert options["extra"] == 1  # the section's options reach the factory


def test_every_kind_is_registered_through_some_hook():
    assert {kind for name in hookspecs.hook_names() for kind in _kinds_of(name)} == set(KINDS)
    assert set(hookspecs.FACTORY_KEYWORDS) == set(KINDS)
