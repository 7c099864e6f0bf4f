"""The data modules use each other only through public names (no ``from x import _private``)."""

from __future__ import annotations

import ast
from pathlib import Path

import simgan_toolkit.data

DATA = Path(simgan_toolkit.data.__file__).parent


def test_no_module_imports_another_ones_private_names():
    found = []
    for path in sorted(DATA.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                found += [f"{path.name}: from {node.module} import {a.name}" for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
    assert found == []
