"""docs/bad-inputs.md shows the table generated from the bad-input tests' ``CASES``: it cannot drift.

Every ``tests/simgan_toolkit/bad_inputs/test_*_errors.py`` module defines ``CASES``, the bad
inputs its parametrised test feeds the CLI. This test renders them all (``run``, ``refine``,
``convert``, ``plugins``, then any other module by name) with
:func:`simgan_toolkit.testing.render_bad_input_table` and compares the result with the block
between the page's markers. ``SIMGAN_UPDATE_DOCS=1`` rewrites the block instead.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from simgan_toolkit.testing import BadInput, render_bad_input_table

REPO = Path(__file__).resolve().parents[2]
CASES_DIR = REPO / "tests" / "simgan_toolkit" / "bad_inputs"
PAGE = REPO / "docs" / "bad-inputs.md"
COMMANDS = ("run", "refine", "convert", "plugins")
START, END = "<!-- bad-inputs:start -->", "<!-- bad-inputs:end -->"
REGENERATE = "SIMGAN_UPDATE_DOCS=1 python -m pytest tests/docs/test_bad_inputs_page.py"


def case_modules() -> list[Path]:
    """The modules holding CASES: the four commands in CLI order, then any others by name."""
    first = [CASES_DIR / f"test_{command}_errors.py" for command in COMMANDS]
    others = sorted(set(CASES_DIR.glob("test_*_errors.py")) - set(first))
    return [path for path in first if path.exists()] + others


def load_cases(path: Path) -> list[BadInput]:
    """``CASES`` of the test module at ``path``, loaded by file path (tests are not a package)."""
    name = f"_bad_inputs_page_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look classes up here
    spec.loader.exec_module(module)
    return list(module.CASES)


def all_cases() -> list[BadInput]:
    return [case for path in case_modules() for case in load_cases(path)]


def split_page(text: str) -> tuple[str, str, str]:
    """``(before, block, after)`` around the marked block; the markers stay in before/after."""
    assert text.count(START) == 1 and text.count(END) == 1, f"{PAGE} needs one {START} and one {END}"
    head, rest = text.split(START)
    block, tail = rest.split(END)
    return head + START + "\n", block.strip("\n") + "\n", "\n" + END + tail


def test_page_shows_the_cases_of_the_tests():
    before, block, after = split_page(PAGE.read_text())
    expected = render_bad_input_table(all_cases())
    if os.environ.get("SIMGAN_UPDATE_DOCS") == "1":
        PAGE.write_text(before + expected + after)
        block = expected
    assert block == expected, f"{PAGE.relative_to(REPO)} is out of date with the tests' CASES; regenerate it: {REGENERATE}"


def test_cases_fit_in_the_table():
    modules = case_modules()
    assert modules, f"no test_*_errors.py under {CASES_DIR}"
    for path in modules:
        cases = load_cases(path)
        ids = [case.id for case in cases]
        assert len(ids) == len(set(ids)), f"{path.name}: ids used twice: {sorted({i for i in ids if ids.count(i) > 1})}"
        for case in cases:
            assert case.command in COMMANDS, f"{path.name}::{case.id}: unknown command {case.command!r}"
            for text in (case.what, case.gets):
                assert "|" not in text and "\n" not in text, f"{path.name}::{case.id}: {text!r} would break the table"
