"""Test helpers for the toolkit and for plugins: feed the CLI a bad input and check what it gets.

A bad input must end in exactly one ``simgan: error: ...`` line naming the file or field, a
non-zero exit, no traceback, no file created or changed under a final name and no temporary
file left behind. :func:`check_cli_error` checks all of that for one command line;
:class:`BadInput` describes one case so that the same list drives the tests and the table in
``docs/bad-inputs.md`` (:func:`render_bad_input_table`), which therefore cannot drift.

Example (a plugin's own test)::

    from simgan_toolkit.testing import check_cli_error

    def test_unknown_task(tmp_path):
        check_cli_error(["run", "--task", "nope", "--out", str(tmp_path / "r")], tmp_path, expect="nope")
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

#: Names of temporary files the toolkit writes before an atomic rename, or keeps to resume.
TEMP_SUFFIXES = (".tmp", ".partial")

ERROR_PREFIX = "simgan: error:"


@dataclass(frozen=True)
class CliResult:
    """What one command line produced: exit code and the two output streams."""

    exit_code: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class BadInput:
    """One bad input to one command, and what the user must get.

    ``argv`` follows the command name and may hold ``{placeholders}`` that ``setup`` fills:
    ``setup(root)`` prepares files under the test's folder ``root`` and returns the
    placeholder values (``{root}`` is always available). ``expect`` must occur in the error
    line (case-insensitive); ``gets`` describes the outcome in the docs when it is more than
    that line (e.g. "asks for --overwrite").
    """

    id: str
    command: str
    what: str
    argv: tuple[str, ...]
    expect: str
    setup: Callable[[Path], Mapping[str, str]] | None = None
    exit_code: int = 2
    gets: str = ""
    #: Paths (relative to root) that may be created or changed, e.g. a log the command keeps.
    may_change: tuple[str, ...] = ()
    marks: tuple[Any, ...] = field(default=())
    #: Run as a child process (for failures the test process must not share, e.g. a crash).
    subprocess: bool = False
    #: Environment variables set for the command (values take the same placeholders as
    #: ``argv``), e.g. ``SIMGAN_DISABLE_PLUGINS``, or ``PYTHONPATH`` for a child process.
    env: Mapping[str, str] = field(default_factory=dict, hash=False)

    def command_line(self, root: Path) -> list[str]:
        """The full argv (command first) with placeholders filled; runs ``setup``."""
        return self.prepare(root)[0]

    def prepare(self, root: Path) -> tuple[list[str], dict[str, str]]:
        """Run ``setup`` once; the full argv and the environment, placeholders filled."""
        values = {"root": str(root)}
        if self.setup is not None:
            values.update(self.setup(root))
        argv = [self.command, *(a.format(**values) for a in self.argv)]
        return argv, {key: value.format(**values) for key, value in self.env.items()}


def load_module(path: Path, name: str | None = None) -> ModuleType:
    """The Python file at ``path`` executed as a fresh module named ``name`` (default: the file's
    stem), e.g. an example script of the docs or a plugin file that is not an installed package."""
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {str(path)!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_cli(argv: Sequence[str]) -> CliResult:
    """Run ``simgan ARGV`` in this process and capture its output.

    An exception escaping :func:`simgan_toolkit.cli.main` propagates: that is the traceback a
    user would have seen.
    """
    from simgan_toolkit.cli import main

    out, err = io.StringIO(), io.StringIO()
    # main() installs its one-line warning format for the process; give the caller's back.
    saved_format = warnings.formatwarning
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(argv))
    finally:
        warnings.formatwarning = saved_format
    return CliResult(code, out.getvalue(), err.getvalue())


def run_cli_subprocess(argv: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 300) -> CliResult:
    """Run ``python -m simgan_toolkit ARGV`` as a child process (for crashes a process can't survive)."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "simgan_toolkit", *argv], cwd=cwd, env=full_env,
        capture_output=True, text=True, timeout=timeout, check=False,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """``{relative path: (mode, content hash)}`` of every file under ``root``."""
    files: dict[str, tuple[int, str]] = {}
    for path in sorted(Path(root).rglob("*")):
        if path.is_file() and not path.is_symlink():
            try:
                digest = hashlib.sha1(path.read_bytes()).hexdigest()
            except PermissionError:
                digest = "unreadable"
            files[path.relative_to(root).as_posix()] = (path.stat().st_mode, digest)
    return files


def temp_leftovers(root: Path) -> list[str]:
    """Temporary files (``*.tmp``, ``*.partial``) under ``root``."""
    return sorted(p.relative_to(root).as_posix() for p in Path(root).rglob("*") if p.name.endswith(TEMP_SUFFIXES))


def check_cli_error(
    argv: Sequence[str],
    root: Path,
    expect: str,
    *,
    exit_code: int = 2,
    may_change: Iterable[str] = (),
    runner: Callable[[Sequence[str]], CliResult] = run_cli,
) -> CliResult:
    """Run ``argv`` and assert it failed the way a user error must; returns the result.

    Checks: the exit code; exactly one ``simgan: error:`` line and it contains ``expect``
    (case-insensitive); no ``Traceback``; no file under ``root`` created, changed or removed
    except ``may_change``; no temporary file left under ``root``.
    """
    allowed = set(may_change)
    before = snapshot(root)
    result = runner(argv)
    shown = f"argv={list(argv)}\n--- stdout\n{result.stdout[-2000:]}\n--- stderr\n{result.stderr[-4000:]}"
    assert "Traceback" not in result.stdout + result.stderr, f"traceback shown to the user\n{shown}"
    assert result.exit_code == exit_code, f"exit code {result.exit_code}, expected {exit_code}\n{shown}"
    errors = [line for line in result.stderr.splitlines() if line.startswith(ERROR_PREFIX)]
    assert len(errors) == 1, f"expected one {ERROR_PREFIX!r} line, got {len(errors)}\n{shown}"
    assert expect.lower() in errors[0].lower(), f"error line does not mention {expect!r}\n{shown}"
    after = snapshot(root)
    created = sorted(set(after) - set(before) - allowed)
    removed = sorted(set(before) - set(after) - allowed)
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k] and k not in allowed)
    assert not (created or removed or changed), f"files touched: created {created}, removed {removed}, changed {changed}\n{shown}"
    # Temp files that were there before (an interrupted run's, kept to resume) are the user's:
    # the snapshot above already checks that they were not changed.
    leftovers = [p for p in temp_leftovers(root) if p not in allowed and p not in before]
    assert not leftovers, f"temporary files left behind: {leftovers}\n{shown}"
    return result


@contextlib.contextmanager
def environment(env: Mapping[str, str]) -> Iterator[None]:
    """Set ``env`` in ``os.environ`` for the block, with a fresh process-wide plugin manager.

    The plugin environment variables (``SIMGAN_PLUGINS``, ``SIMGAN_DISABLE_PLUGINS``) are read
    when the manager is built, so the block gets its own; the old values and the old manager
    come back afterwards.
    """
    from simgan_toolkit.plugin import manager as plugin_manager

    saved = {key: os.environ.get(key) for key in env}
    saved_manager = plugin_manager._default_manager
    os.environ.update(env)
    plugin_manager._default_manager = None
    try:
        yield
    finally:
        plugin_manager._default_manager = saved_manager
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def check_bad_input(case: BadInput, root: Path) -> CliResult:
    """:func:`check_cli_error` for a :class:`BadInput` (runs its ``setup`` first, in ``root``)."""
    argv, env = case.prepare(root)
    runner: Callable[[Sequence[str]], CliResult] = (lambda a: run_cli_subprocess(a, cwd=root, env=env)) if case.subprocess else run_cli
    # A child process gets ``env`` from run_cli_subprocess; this process sets it around the call.
    with environment(env) if env and not case.subprocess else contextlib.nullcontext():
        return check_cli_error(argv, root, case.expect, exit_code=case.exit_code, may_change=case.may_change, runner=runner)


def render_bad_input_table(cases: Iterable[BadInput]) -> str:
    """A Markdown table, one row per case: command, bad input, what the user gets."""
    rows = ["| command | bad input | what you get |", "|---|---|---|"]
    for case in cases:
        gets = case.gets or f"`{ERROR_PREFIX} …{case.expect}…`, exit {case.exit_code}"
        rows.append(f"| `{case.command}` | {case.what} | {gets} |")
    return "\n".join(rows) + "\n"


# --- small filesystems: a full disk, a read-only folder ---------------------------------------


def mount_tmpfs(folder: Path, size: str, read_only: bool = False) -> Path:
    """Mount a tmpfs of ``size`` (e.g. ``"256k"``) on ``folder`` and return it.

    Skips the calling test where this process may not mount (not root, no ``mount``, a
    container without the capability). Call :func:`unmount_under` when done (an autouse
    fixture is the usual place), or pytest cannot remove its folder.
    """
    import pytest

    folder.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        pytest.skip("no `mount` command: cannot make a small filesystem")
    options = f"size={size}" + (",ro" if read_only else "")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here ({proc.stderr.strip() or 'mount failed'})")
    return folder


def unmount_under(root: Path) -> None:
    """Unmount every mount point under ``root`` (deepest first)."""
    mounts = Path("/proc/self/mounts")
    if not mounts.exists():
        return
    points = [Path(line.split()[1].replace("\\040", " ")) for line in mounts.read_text().splitlines()]
    for point in sorted((p for p in points if p == root or root in p.parents), key=lambda p: -len(p.parts)):
        subprocess.run(["umount", str(point)], capture_output=True, check=False)


def read_only_folder(folder: Path) -> Path:
    """Make ``folder`` one this process cannot write to: a read-only tmpfs for root (who writes
    through mode bits), mode 555 for others."""
    if os.geteuid() == 0:
        return mount_tmpfs(folder, "64k", read_only=True)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o555)
    return folder
