"""Shared by the tests of docs/examples: the example a test module names, loaded by path
(docs/ is not a package)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from simgan_toolkit.testing import load_module

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


@pytest.fixture
def example(request: pytest.FixtureRequest) -> ModuleType:
    """The example named by the test module's ``EXAMPLE`` (a file name under docs/examples, no .py)."""
    return load_module(EXAMPLES / f"{request.module.EXAMPLE}.py")
