"""simgan_toolkit.io: which temporary files count as the toolkit's, and which are removed."""

from __future__ import annotations

from simgan_toolkit.io import TEMP_FILE_NAME, atomic_write_text, remove_stale_temp_files


def test_temp_names_follow_mkstemp_and_others_do_not():
    assert TEMP_FILE_NAME.fullmatch(".a.h5.k2_9xq0z.tmp")
    assert not TEMP_FILE_NAME.fullmatch(".a.h5.short.tmp")  # mkstemp draws 8 characters
    assert not TEMP_FILE_NAME.fullmatch("notes.tmp")


def test_remove_only_the_named_targets_temp_files_even_with_glob_characters(tmp_path):
    mine = tmp_path / ".a[1].h5.abcdefgh.tmp"
    other = tmp_path / ".a1.h5.abcdefgh.tmp"  # what an unescaped "a[1]" pattern would match
    users = tmp_path / "a[1].h5.notes.tmp"
    for path in (mine, other, users):
        path.write_text("x")
    removed = remove_stale_temp_files(tmp_path, target_name="a[1].h5", recursive=False)
    assert removed == [mine]
    assert other.exists() and users.exists() and not mine.exists()


def test_atomic_write_leaves_no_temp_file(tmp_path):
    atomic_write_text(tmp_path / "x.txt", "hello")
    assert (tmp_path / "x.txt").read_text() == "hello"
    assert remove_stale_temp_files(tmp_path) == []
