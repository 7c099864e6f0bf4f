"""simgan_toolkit.testing.load_module: a file loaded as a fresh module, and a clear error otherwise."""

from __future__ import annotations

import pytest

from simgan_toolkit.testing import load_module


def test_load_module_executes_the_file_afresh_under_its_stem_or_the_given_name(tmp_path):
    path = tmp_path / "my_example.py"
    path.write_text("import itertools\nCOUNTER = itertools.count()\nFIRST = next(COUNTER)\n")
    first, second = load_module(path), load_module(path, "renamed")
    assert (first.__name__, second.__name__) == ("my_example", "renamed")
    assert first.FIRST == second.FIRST == 0 and first.COUNTER is not second.COUNTER  # executed twice


def test_load_module_of_a_file_python_cannot_import_names_it(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not python")
    with pytest.raises(ImportError, match="notes.txt"):
        load_module(path)
