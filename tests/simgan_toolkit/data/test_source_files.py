"""The source-file table a conversion records, with hand-written tables."""

from __future__ import annotations

import hashlib

import h5py

from simgan_toolkit.data.source_files import SourceSnapshot, describe_change, file_table, fingerprint, read_table, write_table


def test_fingerprint_is_the_sha256_of_keys_then_table():
    want = hashlib.sha256(b"a\nb\n\x00/d/a\t3\t7\n").hexdigest()
    assert fingerprint(["a", "b"], {"/d/a": (3, 7)}) == want
    assert fingerprint(["a", "b"], {}) != fingerprint(["b", "a"], {})


def test_describe_change_names_the_first_file_and_counts_the_rest():
    old = {"/d/a": (3, 7), "/d/b": (4, 8), "/d/c": (5, 9)}
    assert describe_change(old, dict(old)) is None
    new = {"/d/a": (2, 7), "/d/b": (4, 8), "/d/n": (1, 1)}
    assert describe_change(old, new) == "/d/a changed (size 3 -> 2 bytes) (and 2 more files)"
    assert describe_change(old, new, among=["/d/n"]) == "/d/n is new"
    assert describe_change(old, new, among=["/d/c"]) == "/d/c is gone"
    assert describe_change(old, new, among=["/d/b"]) is None


def test_table_round_trips_through_hdf5_and_a_missing_group_reads_as_none(tmp_path):
    table = {"/d/é.json": (12, 1_700_000_000_123_456_789), "/d/gone": (-1, -1)}
    with h5py.File(tmp_path / "t.h5", "w") as f:
        assert read_table(f) is None
        write_table(f, {"/old": (1, 1)})
        write_table(f, table)  # replaces the previous one
        assert read_table(f) == table
        write_table(f, {})
        assert read_table(f) == {}


def test_snapshot_stats_every_listed_file_once(tmp_path, npz):
    npz.write(tmp_path / "ds", [1, 2])
    snapshot = SourceSnapshot(npz.Loader(), tmp_path / "ds")
    files = sorted((tmp_path / "ds").glob("*.npz"))
    assert snapshot.keys == ["u00", "u01"]
    assert snapshot.table == {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in files}
    assert file_table(npz.Loader(), snapshot.units * 2) == snapshot.table
    assert snapshot.fingerprint == fingerprint(snapshot.keys, snapshot.table)
