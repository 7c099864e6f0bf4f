"""The run folder: checked before any long work, created by rank 0, removed again if the run
never started, and freed of temporary files an interrupted run left."""

from __future__ import annotations

import contextlib
import itertools
import json
from pathlib import Path

from simgan_toolkit.config import RunConfig, check_resume_compatible, load_config_file
from simgan_toolkit.errors import ConfigError
from simgan_toolkit.io import TEMP_FILE_NAME, atomic_write_json, nearest_existing, probe_writable, remove_stale_temp_files
from simgan_toolkit.pipeline.run import Run
from simgan_toolkit.task import Task
from simgan_toolkit.training import distributed as dist_utils

CONFIG_FILE = "config.json"
#: The task's name and data version (``Task.data_version``), beside config.json.
TASK_FILE = "task.json"


def remove_empty(folders: list[Path]) -> None:
    """Remove those of ``folders`` (deepest first) that are still empty: a failed start leaves none behind."""
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()


def _check_holds_nothing_else(out: Path) -> None:
    """A new run goes into a new or empty folder: it would otherwise overwrite a user's files."""
    # By name: a temp file may vanish between listing and looking (another process's rename).
    others = sorted(p.name for p in out.iterdir() if not TEMP_FILE_NAME.fullmatch(p.name)) if out.is_dir() else []
    if others:
        listed = ", ".join(repr(n) for n in others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise ConfigError(
            f"output directory {str(out)!r} holds other files ({listed}) and no run; choose a new or empty --out"
        )


def _check_same_config(saved_path: Path, config: RunConfig) -> None:
    """A resumed run must use the saved run's settings (see :func:`check_resume_compatible`)."""
    try:
        saved_settings = load_config_file(saved_path)
    except ConfigError as exc:  # e.g. truncated by a full disk or an editor
        raise ConfigError(
            f"cannot resume {str(saved_path.parent)!r}: {exc}; restore it or start a new run with another --out"
        ) from None
    check_resume_compatible(saved_settings, config, str(saved_path))


def check_same_data_version(out: Path, task: Task) -> None:
    """A resumed run's task must draw the images the saved run drew: same ``Task.data_version``
    (a folder without task.json, from before versions were recorded, has version "")."""
    path = out / TASK_FILE
    try:
        saved = json.loads(path.read_text())["data_version"] if path.exists() else ""
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"cannot resume {str(out)!r}: {str(path)!r} is damaged ({exc}); restore it or start a new run "
                          "with another --out") from None
    if saved != task.data_version:
        def said(version: str) -> str:
            return f"version {version!r}" if version else "no version"

        raise ConfigError(
            f"cannot resume {str(out)!r}: it was made with {said(saved)} of the data of task {task.name!r}, and this "
            f"toolkit draws {said(task.data_version)} (the task's simulator or target changed, so the saved refiner and "
            "estimators were trained on other images); start a new run with another --out"
        )


def create_run_folder(out: Path) -> list[Path]:
    """Create ``out`` and write and delete a probe file in it, before any long work.

    A folder the process cannot write to fails here (ConfigError naming it) instead of after
    the data is made. Returns the folders it created, deepest first, for :func:`remove_empty`
    should the run fail before it writes config.json.
    """
    created = list(itertools.takewhile(lambda p: not p.exists(), (out, *out.parents)))
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe_writable(out)
    except OSError as exc:
        remove_empty(created)
        raise ConfigError(f"output directory {str(out)!r} is not writable: {exc.strerror or exc}") from None
    return created


def check_run_folder(out: Path, config: RunConfig, resume: bool) -> None:
    """Check, without writing anything, that ``out`` can take this run.

    Raises ConfigError (naming the folder) for: a path that is, or lies under, a file; a folder
    already holding a run, without ``resume``; with ``resume``, a folder without a run, or whose
    config.json is damaged or holds other settings (each differing field is named); a folder
    holding other files (a new run needs a new or empty folder).
    """
    existing = nearest_existing(out)
    if not existing.is_dir():
        problem = "is a file, not a folder" if existing == out else f"cannot be created: {str(existing)!r} is a file, not a folder"
        raise ConfigError(f"output directory {str(out)!r} {problem}; choose another --out")
    config_path = out / CONFIG_FILE
    if resume:
        if not config_path.is_file():
            raise ConfigError(f"--resume: {str(out)!r} holds no run (no config.json)")
        _check_same_config(config_path, config)
    elif config_path.exists():
        raise ConfigError(f"output directory {str(out)!r} already holds a run; pass --resume to continue it or choose another --out")
    else:
        _check_holds_nothing_else(out)


def prepare_run_folder(run: Run) -> list[Path]:
    """Every rank checks the folder; rank 0 alone creates it and tells every rank whether it
    could, so that none is left waiting for it. Returns the folders rank 0 created (for
    :func:`remove_empty`); the other ranks get []."""
    check_run_folder(run.out, run.config, run.resume)
    if run.resume:
        check_same_data_version(run.out, run.task)
    # Every rank has looked at the folder before rank 0 touches it: otherwise a slower rank
    # sees rank 0's write probe and refuses the folder as "holding other files".
    dist_utils.barrier()
    created: list[Path] = []
    refused: str | None = None
    if run.is_main:
        try:
            created = create_run_folder(run.out)
        except ConfigError as exc:
            refused = str(exc)
    refused = dist_utils.broadcast_object(refused)
    if refused:
        raise ConfigError(refused)
    # Every rank has checked the folder before rank 0 writes config.json into it.
    dist_utils.barrier()
    return created


def write_run_config(run: Run) -> None:
    """Rank 0 writes config.json (and task.json, the task's data version): from then on the
    folder holds a run that ``--resume`` continues."""
    if run.is_main:
        run.out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(run.out / CONFIG_FILE, run.config.model_dump(mode="json"))
        atomic_write_json(run.out / TASK_FILE, {"task": run.task.name, "data_version": run.task.data_version})


def clean_run_folder(run: Run) -> None:
    """Remove the temporary files an interrupted earlier attempt left (rank 0, at the end)."""
    stale = remove_stale_temp_files(run.out)
    if stale:
        run.say(f"removed {len(stale)} temporary file(s) left by an interrupted run: "
                f"{', '.join(p.relative_to(run.out).as_posix() for p in stale)}")
