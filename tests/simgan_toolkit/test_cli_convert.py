"""``simgan convert`` in-process, with the fake ``npz`` format in place of the installed plugins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import pytest
import torch

from simgan_toolkit import plugin as plugin_module
from simgan_toolkit.cli import main
from simgan_toolkit.data import read_attrs, read_images_h5
from simgan_toolkit.data.reading import SkippedFilesWarning
from simgan_toolkit.plugin import PluginManager, hookimpl


@pytest.fixture
def cli(capsys, monkeypatch, npz):
    """``cli(*argv, loader=npz.Loader)`` -> (exit code, stdout, stderr), the registry holding ``loader``."""
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # main() replaces it

    def call(*argv: str, loader=npz.Loader) -> tuple[int, str, str]:
        monkeypatch.setattr(plugin_module, "get_registry", lambda: npz.registry(loader))
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return call


def test_convert_writes_the_file(cli, tmp_path, npz):
    expected = npz.write(tmp_path / "ds", [2, 3, 1])
    out = tmp_path / "d.h5"
    code, stdout, err = cli("convert", str(tmp_path / "ds"), str(out), "--no-progress")
    assert code == 0, err
    assert stdout.strip() == f"converted 6 images from 3 files (npz) -> {out}"
    got = read_images_h5(out)
    assert torch.equal(got.images, expected.images) and torch.equal(got.labels["y"], expected.labels["y"])
    assert read_attrs(out)["kind"] == "real"
    # Run again: the output is complete and of this very input, nothing is redone.
    stamp = out.stat().st_mtime_ns
    code, stdout, err = cli("convert", str(tmp_path / "ds"), str(out), "--no-progress")
    assert code == 0, err
    assert "already converted" in stdout.splitlines()[0] and out.stat().st_mtime_ns == stamp


def test_convert_options_kind_and_skip_bad(cli, tmp_path, npz):
    npz.write(tmp_path / "ds", [1, 2, 1], shape=(3, 4, 5))
    (tmp_path / "ds" / "u01.npz").write_bytes(b"garbage")
    out = tmp_path / "d.h5"
    args = ["convert", str(tmp_path / "ds"), str(out), "--format", "npz", "--option", "channels=3", "--option", "height=4",
            "--option", "width=5", "--kind", "synthetic", "--no-progress"]
    code, _, err = cli(*args)
    assert code == 2 and err.count("\n") == 1 and "u01.npz" in err and "Traceback" not in err
    with pytest.warns(SkippedFilesWarning, match=r"skipped 1 of 3 units \(images not read: count unknown\):\n  \S+u01\.npz: "):
        code, stdout, err = cli(*args, "--skip-bad")
    assert code == 0, err
    assert "converted 2 images from 2 files (npz, 1 skipped)" in stdout
    attrs = read_attrs(out)
    assert (attrs["kind"], attrs["skipped_files"], attrs["count"]) == ("synthetic", 1, 2)
    assert [path for path, _ in json.loads(attrs["skipped"])] == [str(tmp_path / "ds" / "u01.npz")]
    assert read_images_h5(out).images.shape == (2, 3, 4, 5)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["{tmp}/nowhere", "{tmp}/o.h5"], "{tmp}/nowhere' does not exist"),
        (["{tmp}/ds", "{tmp}/o.h5", "--format", "npy"], "unknown dataset 'npy'"),
        (["{tmp}/ds", "{tmp}/o.h5", "--option", "colour=1"], "colour"),
        (["{tmp}/ds", "{tmp}/o.h5", "--option", "colour"], "expected KEY=VALUE"),
        (["{tmp}/empty", "{tmp}/o.h5"], "{tmp}/empty' is not in any registered dataset format"),
    ],
)
def test_bad_input_is_one_line_exit_2(cli, tmp_path, npz, args, needle):
    npz.write(tmp_path / "ds", [1])
    (tmp_path / "empty").mkdir()
    code, _, err = cli("convert", *(a.format(tmp=tmp_path) for a in args), "--no-progress")
    assert code == 2
    assert err.startswith("simgan: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert needle.format(tmp=tmp_path) in err
    assert not (tmp_path / "o.h5").exists()


def test_interrupted_convert_continues_on_rerun_or_restarts(cli, tmp_path, npz):
    expected = npz.write(tmp_path / "ds", [1, 1, 1, 1])

    class Interrupting(npz.Loader):
        interrupt_at = "u02"

    out = tmp_path / "d.h5"
    code, _, err = cli("convert", str(tmp_path / "ds"), str(out), "--no-progress", loader=Interrupting)
    assert code == 130 and "interrupted (run the same command again to continue)" in err
    assert not out.exists() and (tmp_path / "d.h5.partial").exists()
    code, stdout, err = cli("convert", str(tmp_path / "ds"), str(out), "--no-progress")
    assert code == 0, err
    assert stdout.splitlines() == [f"resuming {out}: 2 of 4 files already converted (2 images)", f"converted 4 images from 4 files (npz) -> {out}"]
    assert torch.equal(read_images_h5(out).images, expected.images)
    # --restart throws an interrupted conversion away.
    cli("convert", str(tmp_path / "ds"), str(tmp_path / "e.h5"), "--no-progress", loader=Interrupting)
    code, stdout, _ = cli("convert", str(tmp_path / "ds"), str(tmp_path / "e.h5"), "--no-progress", "--restart")
    assert code == 0 and "resuming" not in stdout


def test_plugins_lists_dataset_formats(capsys, monkeypatch, npz):
    class DatasetPlugin:
        @hookimpl
        def simgan_register_datasets(self, register):
            register.dataset("npz", npz.Loader, description="fake npz folders")

    manager = PluginManager(load_entry_points=False, plugins=[("fake_datasets", DatasetPlugin())])
    monkeypatch.setattr(plugin_module, "get_plugin_manager", lambda: manager)
    assert main(["plugins"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert ["dataset", "npz", "fake_datasets", "fake", "npz", "folders"] in rows


@pytest.mark.slow
def test_run_module_dispatches_convert(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "simgan_toolkit.run", "convert", str(tmp_path / "nowhere"), str(tmp_path / "o.h5")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 2
    assert f"simgan: error: dataset path '{tmp_path / 'nowhere'}' does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr
