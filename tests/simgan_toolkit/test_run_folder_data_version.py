"""The run folder records the task's data version (task.json) and --resume refuses a folder made
with another one: its refiner and estimators were trained on images the task no longer draws."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from simgan_toolkit.errors import ConfigError
from simgan_toolkit.pipeline.run_folder import TASK_FILE, check_same_data_version, write_run_config
from simgan_toolkit.task import DerivedTask


def _task(version: str) -> SimpleNamespace:
    return SimpleNamespace(name="tiny_spot", data_version=version)


def _written(tmp_path, version: str):
    run = SimpleNamespace(is_main=True, out=tmp_path / "run", task=_task(version),
                          config=SimpleNamespace(model_dump=lambda mode: {"task": "tiny_spot"}))
    write_run_config(run)
    return run.out


@pytest.mark.parametrize("version", ["", "scene 2"])
def test_task_json_holds_the_version_and_the_same_version_resumes(tmp_path, version):
    out = _written(tmp_path, version)
    assert json.loads((out / TASK_FILE).read_text()) == {"task": "tiny_spot", "data_version": version}
    check_same_data_version(out, _task(version))  # no error


def test_another_version_is_refused_naming_both(tmp_path):
    out = _written(tmp_path, "scene 1")
    with pytest.raises(ConfigError, match=r"made with version 'scene 1' of the data of task 'tiny_spot', and "
                                          r"this toolkit draws version 'scene 2' .*start a new run with another --out"):
        check_same_data_version(out, _task("scene 2"))


def test_a_folder_from_before_versions_resumes_only_an_unversioned_task(tmp_path):
    out = tmp_path / "old"
    out.mkdir()  # no task.json: written by an older toolkit
    check_same_data_version(out, _task(""))
    with pytest.raises(ConfigError, match=r"made with no version of the data of task 'tiny_spot', and this toolkit draws version 'scene 2'"):
        check_same_data_version(out, _task("scene 2"))


def test_a_damaged_task_json_is_named(tmp_path):
    out = _written(tmp_path, "scene 2")
    (out / TASK_FILE).write_text("{not json")
    with pytest.raises(ConfigError, match=r"task.json' is damaged"):
        check_same_data_version(out, _task("scene 2"))


def test_a_derived_task_carries_its_base_version(spot):
    base = spot.registry().create("task", "tiny_spot")
    base.data_version = "v7"
    assert DerivedTask(base, name="tiny_spot_other").data_version == "v7"

