"""``python -m benchmarks --suite quick --task all --out bench/``: run a benchmark suite."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from simgan_toolkit.errors import SimganError


def build_parser() -> argparse.ArgumentParser:
    from benchmarks.runner import PARTS
    from benchmarks.suites import SUITES

    p = argparse.ArgumentParser(prog="python -m benchmarks", description="Refined vs synthetic vs baselines, ablations, realism and speed.")
    p.add_argument("--suite", default="quick", choices=sorted(SUITES), help="tiny (seconds, for tests), quick (2-core CPU, ~33 min measured for gaze + hand_depth), full (GPU)")
    p.add_argument("--task", default="all", help="a registered task, a comma-separated list, or 'all' (gaze and hand_depth)")
    p.add_argument("--out", required=True, type=Path, help="output folder (results.json, results.md, PNG plots)")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {', '.join(PARTS)}")
    p.add_argument("--device", default="auto", help="cpu, cuda, or auto")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="extra config override for every run of the suite (e.g. estimator.steps=50)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from simgan_toolkit.pipeline import resolve_device
        from simgan_toolkit.plugin import get_registry

        from benchmarks.runner import run_suite
        from benchmarks.suites import get_suite

        registry = get_registry()
        tasks = ["gaze", "hand_depth"] if args.task == "all" else [t.strip() for t in args.task.split(",") if t.strip()]
        for t in tasks:
            registry.get("task", t)  # an unknown task fails before any work, listing the known ones
        command = "python -m benchmarks " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
        run_suite(get_suite(args.suite), tasks, registry, resolve_device(args.device), args.out,
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
