"""docs/real-datasets.md stays true: its example format registers and converts, every
``simgan convert`` command of the page works, and its run configs run (smoke profile), all on
tiny fabricated files laid out as the page says (``data/...`` under a temporary folder)."""

from __future__ import annotations

import json
import math
import re
import shlex
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from simgan_toolkit import plugin as plugin_module
from simgan_toolkit.data import convert_dataset, read_images_h5, resolve_loader
from simgan_toolkit.plugin import PluginManager
from simgan_toolkit.testing import load_module

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "real-datasets.md"
EXAMPLE = ROOT / "docs" / "examples" / "eye_png_dataset.py"


# --- the example format --------------------------------------------------------------------
def test_page_contains_the_example_verbatim():
    assert EXAMPLE.read_text() in PAGE.read_text()


def test_example_format_registers_detects_and_converts(tmp_path, cli, monkeypatch):
    example = load_module(EXAMPLE, "eye_png_dataset")
    root = tmp_path / "my_eyes"
    root.mkdir()
    Image.fromarray(np.full((35, 55), 255, dtype=np.uint8)).save(root / "0001.png")
    Image.fromarray(np.zeros((70, 110, 3), dtype=np.uint8)).save(root / "0002.png")  # colour, resized
    (root / "labels.csv").write_text("file,pitch_deg,yaw_deg\n0001.png,10,-20\n0002.png,0,0\n")
    # Beside the installed plugins, auto-detection finds it and nothing else.
    manager = PluginManager(plugins=[("eye_png", example)])
    entry = manager.registry.get("dataset", "eye_png")
    assert entry.plugin == "eye_png"
    assert resolve_loader(manager.registry, "auto", root).name == "eye_png"
    monkeypatch.setattr(plugin_module, "get_registry", lambda: manager.registry)
    out = tmp_path / "eyes.h5"
    code, stdout, err = cli("convert", root, out, "--no-progress")
    assert code == 0, err
    assert "converted 2 images" in stdout and "(eye_png" in stdout
    got = read_images_h5(out)
    assert got.images.shape == (2, 1, 35, 55)
    assert (got.images[0] == 1).all() and (got.images[1] == -1).all()
    assert got.labels["pitch_yaw"][0].tolist() == pytest.approx([math.radians(10), math.radians(-20)], abs=1e-6)
    # The gaze task's own convention turns the vector back into the same angles.
    from simgan_gaze.eye_model import vector_to_pitch_yaw

    assert torch.allclose(vector_to_pitch_yaw(got.labels["gaze"].double()).float(), got.labels["pitch_yaw"], atol=1e-6)
    # A truncated PNG is a bad file, skippable.
    data = (root / "0002.png").read_bytes()
    (root / "0002.png").write_bytes(data[: len(data) // 2])
    code, _, err = cli("convert", root, tmp_path / "bad.h5", "--no-progress")
    assert code == 2 and "0002.png" in err and "Traceback" not in err
    example_loader = resolve_loader(manager.registry, "eye_png", root)
    with pytest.warns(UserWarning, match="skipped 1 of 2"):
        report = convert_dataset(example_loader, root, tmp_path / "skipped.h5", skip_bad=True, progress=False, say=lambda _: None)
    assert report.images == 1


# --- the page's commands and configs on fabricated files ----------------------------------
@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """``data/`` laid out as the page's "Where to put the files": tiny versions of each dataset."""
    gaze = load_module(ROOT / "tests" / "plugins" / "gaze" / "datasets" / "conftest.py", "gaze_fabrication")
    nyu = load_module(ROOT / "tests" / "plugins" / "hand" / "test_nyu_end_to_end.py", "nyu_fabrication")
    base = tmp_path_factory.mktemp("docs")
    data = base / "data"
    imgs = data / "UnityEyes" / "imgs"
    imgs.mkdir(parents=True)
    for n, look in enumerate([(0.3404, 0.3879, -0.8566), (0.1, 0.0, -1.0), (-0.2, -0.1, -0.9)], start=1):
        (imgs / f"{n}.json").write_text(json.dumps(gaze.unityeyes_json(640, 480, look_vec=look), indent=2))
        Image.fromarray(gaze.unityeyes_image(640, 480)).save(imgs / f"{n}.jpg", quality=95)
    mpii = data / "MPIIGaze"
    lists = mpii / "Evaluation Subset" / "sample list for eye image"
    lists.mkdir(parents=True)
    for person in (0, 14):  # p14 is the leave-one-person-out example's test person
        folder = mpii / "Data" / "Normalized" / f"p{person:02d}"
        folder.mkdir(parents=True)
        sides = {side: gaze.day_arrays(3, 2 * person + i) for i, side in enumerate(("left", "right"))}
        names = np.empty((3, 1), dtype=object)
        names[:, 0] = ["0001.jpg", "0002.jpg", "0003.jpg"]
        scipy.io.savemat(folder / "day01.mat", {"data": sides, "filenames": names})
        (lists / f"p{person:02d}.txt").write_text("day01/0001.jpg left\nday01/0003.jpg right\n")
    kaggle = data / "eye-gaze"
    kaggle.mkdir()
    rng = np.random.default_rng(0)
    for name, labelled in (("gaze.h5", True), ("real_gaze.h5", False)):
        with h5py.File(kaggle / name, "w") as f:
            for i in range(4):
                f.create_dataset(f"image/{i}", data=rng.integers(0, 256, (35, 55), dtype=np.uint8))
            if labelled:
                f.create_dataset("look_vec", data=np.tile([0.1, 0.2, -0.97], (4, 1)).astype(np.float32))
                f.create_dataset("path", data=[f"imgs/{i}.jpg" for i in range(4)], dtype=h5py.string_dtype())
    nyu.write_split(data / "nyu" / "dataset" / "train", nyu.TRAIN_CENTRES)
    nyu.write_split(data / "nyu" / "dataset" / "test", nyu.TEST_CENTRES)
    return base


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", PAGE.read_text(), flags=re.S)


def _convert_commands() -> list[str]:
    return [line for block in _blocks("bash") for line in block.splitlines() if line.startswith("simgan convert ")]


def test_page_lists_a_convert_command_per_dataset():
    sources = {shlex.split(c)[2] for c in _convert_commands()}
    assert sources == {"data/UnityEyes", "data/MPIIGaze", "data/eye-gaze/gaze.h5", "data/eye-gaze/real_gaze.h5", "data/nyu/dataset"}


@pytest.mark.slow
def test_every_convert_command_of_the_page_works(data_dir, cli, monkeypatch):
    monkeypatch.chdir(data_dir)
    for command in _convert_commands():
        argv = shlex.split(command)
        code, stdout, err = cli(*argv[1:], "--no-progress")
        assert code == 0, f"{command}: {err}"
        assert Path(argv[3]).is_file() and "converted" in stdout, command


def _write_config(name: str, folder: Path) -> Path:
    block = next(b for b in _blocks("toml") if b.startswith("task =") and _config_name(b) == name)
    path = folder / name
    path.write_text(block)
    return path


def _config_name(block: str) -> str:
    """The file name the page gives a config block (the backticked name just before it)."""
    text = PAGE.read_text()
    before = text[: text.index(block)]
    return re.findall(r"`([\w-]+\.toml)`", before)[-1]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gaze-paper.toml", "gaze-lopo.toml", "hand-paper.toml"])
def test_page_run_configs_run_with_the_smoke_profile(name, data_dir, cli, monkeypatch):
    monkeypatch.chdir(data_dir)
    needed = {"unityeyes.h5", "mpiigaze.h5", "mpiigaze_eval.h5", "nyu_train_synthdepth.h5", "nyu_train_depth.h5", "nyu_test_depth.h5"}
    if not all(Path(n).exists() for n in needed):  # run alone: make the converted files first
        for command in _convert_commands():
            assert cli(*shlex.split(command)[1:], "--no-progress")[0] == 0, command
    config = _write_config(name, data_dir)
    run = next(c for b in _blocks("bash") for c in [b.replace("\\\n", " ")] if f"--config {name}" in c)
    argv = shlex.split(run[run.index("simgan run"):].splitlines()[0])
    assert argv[:4] == ["simgan", "run", "--config", name]
    argv = [a.replace("$p", "00") for a in argv[1:]]
    argv[argv.index("--profile") + 1] = "smoke"
    argv[argv.index("--device") + 1] = "cpu"
    argv[argv.index("--out") + 1] = str(data_dir / "runs" / config.stem)
    code, stdout, err = cli(*argv, "--no-progress")
    assert code == 0, err
    summary = json.loads((data_dir / "runs" / config.stem / "summary.json").read_text())
    assert set(summary["estimators"]) >= {"synthetic", "refined"}
    if name == "gaze-lopo.toml":  # the loop's --set overrides reached the data sources
        assert summary["data"]["target"]["options"] == {"exclude_persons": ["p00"]}
        assert summary["data"]["test"]["options"] == {"split": "evaluation", "persons": ["p00"]}
        assert summary["data_counts"]["target"] == 6 and summary["data_counts"]["test"] == 2
