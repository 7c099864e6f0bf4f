"""Shared by the tests of docs/examples: load an example script by path (docs/ is not a package)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


def load_example(name: str) -> ModuleType:
    """The module ``docs/examples/<name>.py``, freshly executed."""
    path = EXAMPLES / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def example(request: pytest.FixtureRequest) -> ModuleType:
    """The example named by the test module's ``EXAMPLE`` (a file name under docs/examples, no .py)."""
    return load_example(request.module.EXAMPLE)
