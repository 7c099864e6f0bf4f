"""Command-line interface: ``simgan run | refine | convert | plugins`` (also ``python -m simgan_toolkit``).

``python -m simgan_toolkit.run --task gaze`` is the same as ``simgan run --task gaze``.
User errors print one line and exit non-zero; tracebacks are for bugs.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from simgan_toolkit.errors import SimganError, show_deprecation_warnings


def _format_warning(message, category, filename, lineno, line=None):  # type: ignore[no-untyped-def]
    return f"warning: {message}\n"


def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", help="registered task name (see `simgan plugins`); may come from --config")
    p.add_argument("--profile", default="default", help="settings profile of the task: smoke, default, paper, ... (default: %(default)s)")
    p.add_argument("--config", metavar="FILE", help="TOML (or saved config.json) file overriding the profile")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting, e.g. --set train.k_g=2 (repeatable; values parsed as TOML)")
    p.add_argument("--out", metavar="DIR", help="run folder (default: runs/<task>-<profile>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run in --out")
    p.add_argument("--device", help="cpu, cuda, cuda:1 or auto (default: from the config, auto)")
    p.add_argument("--seed", type=int, help="random seed (default: from the config, 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="simgan", description="SimGAN: refine simulated images so they look real while keeping their labels.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="simulate, train SimGAN, refine, export, train and score estimators")
    _add_run_args(run)
    ref = sub.add_parser("refine", help="apply a trained refiner checkpoint to an HDF5 file of synthetic images")
    ref.add_argument("--checkpoint", required=True, help="trainer checkpoint (RUN/checkpoints/last.pt)")
    ref.add_argument("--input", required=True, help="toolkit HDF5 file of synthetic images")
    ref.add_argument("--output", required=True, help="HDF5 file to write (labels carried over); never the input file")
    ref.add_argument("--overwrite", action="store_true", help="replace --output if it exists (without it, an existing file is refused)")
    ref.add_argument("--device", default="auto")
    ref.add_argument("--batch-size", type=int, default=512, help="images per batch, at least 1 (default: %(default)s)")
    ref.add_argument("--seed", type=int, default=0, help="seed of the refiner's noise inputs, if it has any")
    ref.add_argument("--no-progress", action="store_true")
    conv = sub.add_parser(
        "convert", help="convert a dataset on disk (UnityEyes, MPIIGaze, NYU Hand, ...) into a toolkit HDF5 file",
        description="Convert a dataset into a toolkit HDF5 file. The file appears only when complete; an interrupted "
                    "conversion continues when the same command is run again, unless a file it already converted "
                    "changed (size or modification time). A finished one is redone only if a source file changed.",
    )
    conv.add_argument("source", metavar="SRC", help="dataset folder (or file)")
    conv.add_argument("output", metavar="OUT.h5", help="HDF5 file to write")
    conv.add_argument("--format", default="auto", help="dataset format (see `simgan plugins`, kind 'dataset'), or auto to detect it (default: %(default)s)")
    conv.add_argument("--option", dest="options", action="append", default=[], metavar="KEY=VALUE",
                      help="option of the format's loader, e.g. --option rgb=true (repeatable; values parsed as TOML)")
    conv.add_argument("--kind", default="real", choices=["real", "synthetic"], help="what the images are, stored in the file (default: %(default)s)")
    conv.add_argument("--skip-bad", action="store_true", help="skip unreadable files (counted and reported) instead of stopping at the first")
    conv.add_argument("--restart", action="store_true", help="discard an interrupted conversion of OUT.h5 (or a finished one) and start over")
    conv.add_argument("--no-progress", action="store_true")
    sub.add_parser("plugins", help="list registered tasks, networks, feature transforms, losses, estimators and dataset formats")
    return parser


def _cmd_run(args: argparse.Namespace) -> int:
    from simgan_toolkit.config import build_config, load_config_file
    from simgan_toolkit.errors import ConfigError
    from simgan_toolkit.plugin import get_registry

    task_name = args.task
    if task_name is None and args.config:
        task_name = load_config_file(args.config).get("task")
    if task_name is None:
        raise ConfigError("no task given: pass --task NAME (see `simgan plugins` for the registered tasks)")
    registry = get_registry()
    task = registry.create("task", task_name)
    overrides = list(args.overrides)
    if args.device:
        overrides.append(f"device={args.device!r}")
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    config = build_config(task_name, args.profile, task.profiles(), config_file=args.config, overrides=overrides)
    if args.resume and not args.out:
        raise ConfigError("--resume needs --out DIR: the run folder to continue")
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else Path("runs") / f"{task_name}-{args.profile}-{stamp}"
    args.out = str(out)  # the Ctrl-C hint in main() names the folder actually used
    # The run folder is checked (file in the way, other files, not writable, resume) by the
    # pipeline before its first stage.
    from simgan_toolkit.pipeline import run_pipeline  # heavy (torchvision): only once the config is valid

    run_pipeline(config, out, registry, resume=args.resume, progress=not args.no_progress)
    return 0


def _cmd_refine(args: argparse.Namespace) -> int:
    from simgan_toolkit.environment import resolve_device
    from simgan_toolkit.plugin import get_registry
    from simgan_toolkit.refine import refine_h5

    n = refine_h5(
        args.checkpoint, args.input, args.output, get_registry(), device=resolve_device(args.device),
        batch_size=args.batch_size, seed=args.seed, progress=not args.no_progress, overwrite=args.overwrite,
    )
    print(f"refined {n} images -> {args.output}")
    return 0


def _parse_options(items: Sequence[str]) -> dict[str, object]:
    """``["rgb=true", "split=test"]`` -> ``{"rgb": True, "split": "test"}``."""
    from simgan_toolkit.config import parse_value
    from simgan_toolkit.errors import ConfigError

    options: dict[str, object] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--option {item!r}: expected KEY=VALUE, e.g. rgb=true")
        options[key.strip()] = parse_value(raw)
    return options


def _cmd_convert(args: argparse.Namespace) -> int:
    from simgan_toolkit.data.convert import convert_dataset
    from simgan_toolkit.data.formats import resolve_loader
    from simgan_toolkit.plugin import get_registry

    options = _parse_options(args.options)
    loader = resolve_loader(get_registry(), args.format, Path(args.source), options)
    report = convert_dataset(
        loader, args.source, args.output, skip_bad=args.skip_bad, progress=not args.no_progress,
        resume=not args.restart, attrs={"kind": args.kind}, options=options,
    )
    if getattr(report, "already_converted", False):
        return 0  # convert_dataset has said so; nothing was read
    skipped = f", {len(report.skipped)} skipped" if report.skipped else ""
    print(f"converted {report.images} images from {report.read} files ({loader.name}{skipped}) -> {args.output}")
    return 0


def _cmd_plugins(args: argparse.Namespace) -> int:
    """List every registered component, then each plugin problem as a FAILED line (exit 2 if any).

    Uses the unchecked registry: this command must keep working when two plugins register
    one name, since it is where the user finds out which two.
    """
    from simgan_toolkit.errors import PluginError
    from simgan_toolkit.plugin import PluginLoadWarning, get_plugin_manager

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginLoadWarning)  # reported below as FAILED lines instead
        manager = get_plugin_manager()
        entries = manager.unchecked_registry.entries()
    rows = [("kind", "name", "plugin", "description")] + [(e.kind, e.name, e.plugin, e.description) for e in entries]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:3], widths)) + "  " + r[3])
    print(f"\nplugins loaded: {', '.join(manager.plugin_names())}")
    for message in manager.env_warnings:
        print(f"warning: {message}", file=sys.stderr)
    problems = manager.problems()
    for problem in problems:
        print(f"FAILED: {problem}")
    if len(problems) == 1:
        raise PluginError(problems[0])
    if problems:
        raise PluginError(f"{len(problems)} plugin problems: see the FAILED lines above")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    warnings.formatwarning = _format_warning  # one readable line per plugin warning
    show_deprecation_warnings()
    args = build_parser().parse_args(argv)
    handlers = {"run": _cmd_run, "refine": _cmd_refine, "convert": _cmd_convert, "plugins": _cmd_plugins}
    try:
        return handlers[args.command](args)
    except SimganError as exc:
        print(f"simgan: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        if args.command == "convert":
            hint = " (run the same command again to continue)"
        else:
            # Only a folder holding a run can be resumed (Ctrl-C during the simulate stage of a
            # new run leaves none).
            out = getattr(args, "out", None)
            hint = f" (continue with --resume --out {out})" if out and (Path(out) / "config.json").is_file() else ""
        print(f"simgan: interrupted{hint}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
