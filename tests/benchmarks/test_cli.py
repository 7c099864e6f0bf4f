"""``python -m benchmarks``: argument errors exit 2 with one line on stderr, never a traceback."""

from __future__ import annotations

import json
import os

import pytest
import torch

from benchmarks.__main__ import build_parser, main, parse_jobs
from benchmarks.runner import PARTS


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("benchmarks: error: ")
    return lines[0]


def test_unknown_task_exits_2_naming_it(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["--suite", "tiny", "--task", "gaze,no_such_task", "--out", str(out), "--device", "cpu"]) == 2
    line = _one_error_line(capsys)
    assert "'no_such_task'" in line and "gaze" in line  # lists the registered tasks
    assert not out.exists()  # failed before any work


def test_unknown_part_exits_2(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["--suite", "tiny", "--task", "gaze", "--parts", "sim2real,bogus", "--out", str(out), "--device", "cpu"]) == 2
    line = _one_error_line(capsys)
    assert "bogus" in line
    for part in PARTS:
        assert part in line
    assert not out.exists()


def test_existing_results_folder_exits_2(tmp_path, capsys):
    (tmp_path / "results.json").write_text("{}")
    assert main(["--suite", "tiny", "--task", "gaze", "--out", str(tmp_path), "--device", "cpu"]) == 2
    assert "already holds benchmark results" in _one_error_line(capsys)
    assert (tmp_path / "results.json").read_text() == "{}"


def test_bad_device_exits_2(tmp_path, capsys):
    assert main(["--suite", "tiny", "--task", "gaze", "--out", str(tmp_path / "o"), "--device", "nodevice"]) == 2
    assert "device" in _one_error_line(capsys)


def test_bad_override_exits_2(tmp_path, capsys):
    assert main(["--suite", "tiny", "--task", "gaze", "--parts", "sim2real", "--out", str(tmp_path / "o"),
                 "--device", "cpu", "--set", "estimator.no_such_field=3"]) == 2
    assert "no_such_field" in _one_error_line(capsys)
    assert not (tmp_path / "o" / "results.json").exists()


def test_unknown_suite_is_an_argparse_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["--suite", "huge", "--out", str(tmp_path)])
    assert info.value.code == 2
    assert "huge" in capsys.readouterr().err


def test_out_is_required(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--suite", "tiny"])
    assert info.value.code == 2
    assert "--out" in capsys.readouterr().err


def test_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--suite", "--task", "--out", "--parts", "--device", "--jobs", "--set"):
        assert option in text
    assert "tiny" in text and "quick" in text and "full" in text


def test_parser_defaults():
    args = build_parser().parse_args(["--out", "x"])
    assert (args.suite, args.task, args.parts, args.device, args.jobs, args.overrides) == ("quick", "all", ",".join(PARTS), "auto", "auto", [])


def test_speed_only_run_records_the_command(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--suite", "tiny", "--task", " gaze ", "--parts", "speed", "--out", str(out), "--device", "cpu"]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["command"] == "python -m benchmarks --suite tiny --task ' gaze ' --parts speed --out " + str(out) + " --device cpu"
    assert results["parts"] == ["speed"] and [s["task"] for s in results["speed"]] == ["gaze"]
    assert (out / "results.md").exists()
    assert capsys.readouterr().err == ""


def test_empty_task_list_and_empty_parts_are_errors(tmp_path, capsys):
    assert main(["--suite", "tiny", "--task", ",", "--out", str(tmp_path / "a"), "--device", "cpu"]) == 2
    assert "no task given" in capsys.readouterr().err
    assert main(["--suite", "tiny", "--task", "gaze", "--parts", ",", "--out", str(tmp_path / "b"), "--device", "cpu"]) == 2
    assert "none given" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.parametrize(
    ("value", "n_tasks", "device", "expected"),
    [
        ("3", 2, "cpu", 3),  # more than the tasks is allowed; run_tasks caps it
        ("1", 2, "cuda", 1),
        ("auto", 1, "cpu", 1),
        ("auto", 5, "cuda", 1),  # tasks on one GPU would only queue for it
        ("auto", 2, "cpu", min(2, os.cpu_count() or 1)),
        ("auto", 10_000, "cpu", os.cpu_count() or 1),
    ],
)
def test_jobs_values(value, n_tasks, device, expected):
    assert parse_jobs(value, n_tasks, torch.device(device)) == expected


@pytest.mark.parametrize("bad", ["0", "-1", "two", "1.5", ""])
def test_bad_jobs_exit_2_naming_the_option(tmp_path, capsys, bad):
    out = tmp_path / "out"
    assert main(["--suite", "tiny", "--task", "gaze", "--jobs", bad, "--out", str(out), "--device", "cpu"]) == 2
    line = _one_error_line(capsys)
    assert "--jobs" in line and repr(bad) in line
    assert not out.exists()


@pytest.mark.slow
def test_a_failing_task_process_exits_2_with_its_message(tmp_path, capsys):
    """--jobs 2: the error raised in a worker process reaches the user as one line."""
    out = tmp_path / "out"
    argv = ["--suite", "tiny", "--task", "gaze,gaze_rgb", "--jobs", "2", "--parts", "sim2real", "--out", str(out),
            "--device", "cpu", "--set", "estimator.no_such_field=3"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert captured.err.strip().splitlines()[-1].startswith("benchmarks: error: ") and "no_such_field" in captured.err
    assert not (out / "results.json").exists()
