"""Bad plugins and plugin settings: what ``simgan plugins`` and the other commands say.

Plugins are installed for real, without pip: each case writes a module and a
``NAME-1.0.dist-info`` folder (``METADATA`` and ``entry_points.txt``) under ``ROOT/site`` and
runs ``python -m simgan_toolkit`` with that folder on ``PYTHONPATH``, so ``importlib.metadata``
finds the entry point exactly as it finds a pip-installed one. ``CASES`` feeds the table in
docs/bad-inputs.md; outcomes that are not an error (a warning, a listing that keeps working)
have their own tests below.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from simgan_toolkit.testing import BadInput, CliResult, check_bad_input, run_cli_subprocess

SITE = "site"
#: A child process that sees the plugins under ROOT/site, and writes no __pycache__ there.
SITE_ENV = {
    "PYTHONPATH": os.pathsep.join(filter(None, ["{root}/" + SITE, os.environ.get("PYTHONPATH")])),
    "PYTHONDONTWRITEBYTECODE": "1",
}
RUN_GAZE = ("--task", "gaze", "--profile", "smoke", "--device", "cpu", "--no-progress", "--out", "{root}/run")
RUN_SPOTS = ("--task", "spots", "--profile", "smoke", "--device", "cpu", "--no-progress", "--out", "{root}/run")

HEADER = "from simgan_toolkit.plugin import hookimpl\n\n\n"
CLASH = HEADER + '''@hookimpl
def simgan_register_tasks(register):
    register.task("gaze", lambda: None, description="another gaze task")


@hookimpl
def simgan_register_estimators(register):
    register.estimator("clash_cnn", lambda **kw: None, description="registered next to the clash")
'''
IMPORT_FAILS = "import spots_sdk  # not installed\n"
HOOK_RAISES = HEADER + '''@hookimpl
def simgan_register_tasks(register):
    raise RuntimeError("spots: licence file not found")
'''
NOT_CALLABLE = HEADER + '''@hookimpl
def simgan_register_tasks(register):
    register.task("spots", "SpotsTask")
'''
NOT_A_TASK = HEADER + '''@hookimpl
def simgan_register_tasks(register):
    register.task("spots", lambda: {"name": "spots"})
'''
LOADER_MISSING = HEADER + '''@hookimpl
def simgan_register_datasets(register):
    register.dataset("spots_format", "spots_formats.reader:SpotsLoader")  # no such module
'''
MISSPELLED = HEADER + '''@hookimpl
def simgan_register_task(register):  # the hook is simgan_register_tasks
    register.task("spots", lambda: None)
'''


def install(root: Path, name: str, source: str) -> None:
    """Install plugin ``name`` (module ``NAME_plugin``) under ``root/site`` as pip would."""
    site = root / SITE
    dist = site / f"{name}_plugin-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[simgan_toolkit]\n{name} = {name}_plugin\n")
    (site / f"{name}_plugin.py").write_text(source)


def installs(name: str, source: str) -> Callable[[Path], Mapping[str, str]]:
    """A ``BadInput.setup`` installing one plugin."""

    def setup(root: Path) -> Mapping[str, str]:
        install(root, name, source)
        return {}

    return setup


def _format_plugin_and_source(root: Path) -> Mapping[str, str]:
    """Plugin ``fmt`` registering a format whose loader cannot be imported, and a source folder."""
    install(root, "fmt", LOADER_MISSING)
    (root / "src").mkdir()
    return {}


def plugin_case(id: str, command: str, what: str, argv: tuple[str, ...], expect: str, name: str, source: str, gets: str = "") -> BadInput:
    """A case run as a child process with plugin ``name`` installed from ``source``."""
    return BadInput(id, command, what, argv, expect, setup=installs(name, source), gets=gets, subprocess=True, env=SITE_ENV)


LISTED = "the full listing, a `FAILED` line and "
CLASH_FIX = "disable one of them with SIMGAN_DISABLE_PLUGINS=clasher or SIMGAN_DISABLE_PLUGINS=gaze"
CLASH_GETS = "one line naming `gaze`, both plugins and the fix (`SIMGAN_DISABLE_PLUGINS=clasher` or `=gaze`), exit 2"

CASES: list[BadInput] = [
    plugin_case(
        "plugins-name-clash", "plugins", "two installed plugins register the task name `gaze`", (),
        f"task 'gaze' is registered by two plugins, 'clasher' and 'gaze'; {CLASH_FIX}",
        "clasher", CLASH, gets=LISTED + CLASH_GETS,
    ),
    plugin_case(
        "run-name-clash", "run", "two installed plugins register the task name `gaze`", RUN_GAZE,
        f"task 'gaze' is registered by two plugins, 'clasher' and 'gaze'; {CLASH_FIX}", "clasher", CLASH, gets=CLASH_GETS,
    ),
    plugin_case(
        "plugins-import-fails", "plugins", "an installed plugin fails to import", (),
        "plugin 'spots': failed to import 'spots_plugin': ModuleNotFoundError: No module named 'spots_sdk'",
        "spots", IMPORT_FAILS, gets=LISTED + "`simgan: error: plugin 'spots': failed to import …` with the reason, exit 2",
    ),
    plugin_case(
        "run-task-of-broken-plugin", "run", "`--task` of a plugin that fails to import", RUN_SPOTS,
        "unknown task 'spots'", "spots", IMPORT_FAILS,
        gets="a warning naming the plugin, then `simgan: error: unknown task 'spots' …` that says plugin 'spots' failed, exit 2",
    ),
    plugin_case(
        "plugins-hook-raises", "plugins", "a plugin's register hook raises", (),
        "plugin 'spots': simgan_register_tasks raised RuntimeError: spots: licence file not found", "spots", HOOK_RAISES,
    ),
    plugin_case(
        "plugins-factory-not-callable", "plugins", "a plugin registers a task factory that is not callable", (),
        "plugin 'spots': factory for task 'spots' is not callable (got str)", "spots", NOT_CALLABLE,
    ),
    plugin_case(
        "run-factory-not-a-task", "run", "a plugin's task factory returns something other than a `Task`", RUN_SPOTS,
        "plugin 'spots': task 'spots' factory returned dict, not a simgan_toolkit.task.Task", "spots", NOT_A_TASK,
    ),
    plugin_case(
        "plugins-misspelled-hook", "plugins", "a plugin implements a misspelled hook", (),
        "plugin 'spots': implements an unknown hook", "spots", MISSPELLED,
    ),
    BadInput(
        "convert-format-loader-missing", "convert", "`--format` of a plugin whose loader module does not exist",
        ("{root}/src", "{root}/out.h5", "--format", "spots_format", "--no-progress"),
        "plugin 'fmt': cannot load 'spots_formats.reader:SpotsLoader': ModuleNotFoundError: No module named 'spots_formats'; "
        "fix or reinstall the plugin, or disable it with SIMGAN_DISABLE_PLUGINS=fmt",
        setup=_format_plugin_and_source,
        subprocess=True, env=SITE_ENV,
    ),
    BadInput(
        "run-allowlist-names-no-plugin", "run", "`SIMGAN_PLUGINS` names no installed plugin (`--task gaze`)", RUN_GAZE,
        "unknown task 'gaze'. Registered: none (SIMGAN_PLUGINS='nosuch' loads only the plugins it names)",
        env={"SIMGAN_PLUGINS": "nosuch"},
        gets="a warning listing the installed plugins, then `simgan: error: unknown task 'gaze' … (SIMGAN_PLUGINS='nosuch' loads only the plugins it names)`, exit 2",
    ),
    BadInput(
        "run-task-of-disabled-plugin", "run", "`--task` of a plugin disabled by `SIMGAN_DISABLE_PLUGINS`", RUN_GAZE,
        "unknown task 'gaze'", env={"SIMGAN_DISABLE_PLUGINS": "gaze"},
        gets="`simgan: error: unknown task 'gaze' … (SIMGAN_DISABLE_PLUGINS='gaze' skips plugins)`, exit 2",
    ),
]


@pytest.mark.filterwarnings("ignore::simgan_toolkit.plugin.PluginLoadWarning")  # tested below
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input(case, tmp_path):
    check_bad_input(case, tmp_path)


def _simgan(root: Path, *argv: str, env: Mapping[str, str] | None = None) -> CliResult:
    """``simgan ARGV`` in a child process that sees the plugins installed under ``root``."""
    full_env = {k: v.format(root=root) for k, v in SITE_ENV.items()} | dict(env or {})
    return run_cli_subprocess(argv, cwd=root, env=full_env, timeout=120)


def _errors(result: CliResult) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("simgan: error:")]


def test_plugins_lists_everything_despite_a_clash(tmp_path):
    install(tmp_path, "clasher", CLASH)
    result = _simgan(tmp_path, "plugins")
    rows = [line.split()[:3] for line in result.stdout.splitlines()]
    # Both plugins' other components are listed; the clashing name once, under one of them.
    assert ["estimator", "clash_cnn", "clasher"] in rows
    assert ["task", "gaze_rgb", "gaze"] in rows
    assert len([r for r in rows if r[:2] == ["task", "gaze"]]) == 1
    failed = [line for line in result.stdout.splitlines() if "FAILED" in line]
    assert failed == [f"FAILED: task 'gaze' is registered by two plugins, 'clasher' and 'gaze'; {CLASH_FIX}"]
    assert len(_errors(result)) == 1 and "Traceback" not in result.stderr
    assert "warning:" not in result.stderr  # the FAILED line says it once


def test_the_suggested_fix_resolves_the_clash(tmp_path):
    install(tmp_path, "clasher", CLASH)
    listing = _simgan(tmp_path, "plugins", env={"SIMGAN_DISABLE_PLUGINS": "clasher"})
    assert listing.exit_code == 0, listing.stderr
    assert "FAILED" not in listing.stdout and "clash_cnn" not in listing.stdout
    # `run` gets past the plugins: the next error is about the profile.
    run = _simgan(tmp_path, "run", "--task", "gaze", "--profile", "nosuch", "--out", str(tmp_path / "run"),
                  env={"SIMGAN_DISABLE_PLUGINS": "clasher"})
    assert run.exit_code == 2 and "'nosuch'" in _errors(run)[0] and "SIMGAN_DISABLE_PLUGINS" not in run.stderr


def test_a_broken_plugin_does_not_stop_other_tasks(tmp_path):
    install(tmp_path, "spots", IMPORT_FAILS)
    result = _simgan(tmp_path, "run", "--task", "gaze", "--profile", "nosuch", "--out", str(tmp_path / "run"))
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == ["warning: simgan-toolkit plugin 'spots' skipped: failed to import 'spots_plugin': "
                        "ModuleNotFoundError: No module named 'spots_sdk'"]
    errors = _errors(result)
    assert len(errors) == 1 and "profile 'nosuch'" in errors[0], result.stderr


def test_task_of_a_broken_plugin_names_the_plugin(tmp_path):
    install(tmp_path, "spots", IMPORT_FAILS)
    result = _simgan(tmp_path, *("run", *RUN_SPOTS[:-1], str(tmp_path / "run")))
    assert _errors(result)[0].endswith("(plugin 'spots' failed, see `simgan plugins`)")
    assert "warning: simgan-toolkit plugin 'spots' skipped" in result.stderr


@pytest.mark.parametrize("var", ["SIMGAN_DISABLE_PLUGINS", "SIMGAN_PLUGINS"])
def test_env_var_naming_no_installed_plugin_is_a_warning(var, tmp_path):
    # A warning, not an error: these variables outlive installs, and a stale name must not
    # stop every command. SIMGAN_PLUGINS keeps the real plugins it names.
    result = _simgan(tmp_path, "plugins", env={var: "gaze,nosuch"})
    assert result.exit_code == 0, result.stderr
    assert f"warning: {var}: no installed plugin is named 'nosuch' (installed: " in result.stderr
    assert "FAILED" not in result.stdout
    gaze_listed = any(line.split()[:2] == ["task", "gaze"] for line in result.stdout.splitlines())
    assert gaze_listed == (var == "SIMGAN_PLUGINS")


def test_healthy_plugins_exit_0_without_failed_lines(tmp_path):
    result = _simgan(tmp_path, "plugins")
    assert result.exit_code == 0, result.stderr
    assert "FAILED" not in result.stdout and result.stderr == ""
