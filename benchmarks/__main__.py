"""``python -m benchmarks --suite quick --task all --out bench/``: run a benchmark suite."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from simgan_toolkit.errors import SimganError, show_deprecation_warnings


def build_parser() -> argparse.ArgumentParser:
    from benchmarks.runner import PARTS
    from benchmarks.suites import SUITES

    p = argparse.ArgumentParser(prog="python -m benchmarks", description="Refined vs synthetic vs baselines, ablations, realism and speed.")
    p.add_argument("--suite", default="quick", choices=sorted(SUITES), help="tiny (seconds, for tests), quick (2-core CPU, 24 min measured for gaze + hand_depth side by side), long (sim-to-real and realism at each task's full-effect profile; 2-core CPU, 60 min measured for hand_depth), full (GPU)")
    p.add_argument("--task", default="all", help="a registered task, a comma-separated list, or 'all' (gaze and hand_depth)")
    p.add_argument("--out", required=True, type=Path, help="output folder (results.json, results.md, PNG plots)")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {', '.join(PARTS)}")
    p.add_argument("--device", default="auto", help="cpu, cuda, or auto")
    p.add_argument("--jobs", default="auto",
                   help="tasks run side by side in this many processes; auto (default): one per task up to the CPU count "
                        "on a CPU, 1 on a GPU")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="extra config override for every run of the suite (e.g. estimator.steps=50)")
    return p


def parse_jobs(value: str, n_tasks: int, device: Any) -> int:
    """``--jobs``: a positive integer, or ``auto`` (one process per task up to the CPU count on
    a CPU; 1 on a GPU, where tasks would only queue for the same device)."""
    from simgan_toolkit.errors import ConfigError

    if value == "auto":
        return 1 if device.type != "cpu" else max(1, min(n_tasks, os.cpu_count() or 1))
    try:
        jobs = int(value)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise ConfigError(f"--jobs must be a positive integer or 'auto', got {value!r}")
    return jobs


def main(argv: Sequence[str] | None = None) -> int:
    show_deprecation_warnings()  # e.g. an old setting name in --set
    args = build_parser().parse_args(argv)
    try:
        from benchmarks.runner import run_suite
        from benchmarks.suites import get_suite
        from simgan_toolkit.environment import resolve_device
        from simgan_toolkit.plugin import get_registry

        registry = get_registry()
        tasks = ["gaze", "hand_depth"] if args.task == "all" else [t.strip() for t in args.task.split(",") if t.strip()]
        for t in tasks:
            registry.get("task", t)  # an unknown task fails before any work, listing the known ones
        device = resolve_device(args.device)
        jobs = parse_jobs(args.jobs, len(tasks), device)
        command = "python -m benchmarks " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
        run_suite(get_suite(args.suite), tasks, registry, device, args.out, jobs=jobs,
                  parts=tuple(p.strip() for p in args.parts.split(",") if p.strip()), command=command, extra=tuple(args.overrides))
    except SimganError as exc:
        print(f"benchmarks: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("benchmarks: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
