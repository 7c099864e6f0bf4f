"""What every stage of a run gets (:class:`Run`) and how a stage declares where it runs
(:func:`stage`: on every DDP rank, or on rank 0 alone)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import torch

from simgan_toolkit.config import RunConfig
from simgan_toolkit.plugin import Registry
from simgan_toolkit.task import Task
from simgan_toolkit.training import distributed as dist_utils


class StageClock:
    """Timing of each stage, for the summary (``seconds``: stage name -> wall seconds)."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.seconds: dict[str, float] = {}
        self.say = say

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        self.say(f"[{name}]")
        start = time.perf_counter()
        result = fn()
        self.seconds[name] = round(time.perf_counter() - start, 2)
        return result


@dataclass
class Run:
    """One run's settings and surroundings, shared by its stages.

    ``context`` is the DDP process group's (None in a plain single-process run); ranks other
    than 0 get a silent ``say`` and no progress bars.
    """

    config: RunConfig
    registry: Registry
    task: Task
    out: Path
    device: torch.device
    context: dist_utils.DistributedContext | None = None
    resume: bool = False
    progress: bool = True
    say: Callable[[str], None] = print
    clock: StageClock = field(init=False)
    started: float = field(default_factory=time.perf_counter)

    def __post_init__(self) -> None:
        if not self.is_main:
            self.say, self.progress = (lambda _: None), False
        self.clock = StageClock(self.say)

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and runs the rank-0-only stages."""
        return self.context is None or self.context.is_main

    @property
    def distributed(self) -> bool:
        return self.context is not None


T = TypeVar("T")


def stage(name: str | None, ranks: Literal["all", "main"]) -> Callable[[Callable[..., T]], Callable[..., T | None]]:
    """Declare a stage function ``fn(run, ...)``: ``ranks="all"`` runs it on every DDP rank,
    ``"main"`` on rank 0 alone (other ranks get None). A named stage is timed in the summary's
    ``stage_seconds`` and announced as ``[name]``; ``name=None`` for stages that time their
    own parts."""

    def wrap(fn: Callable[..., T]) -> Callable[..., T | None]:
        @functools.wraps(fn)
        def run_stage(run: Run, *args: Any, **kwargs: Any) -> T | None:
            if ranks == "main" and not run.is_main:
                return None
            if name is None:
                return fn(run, *args, **kwargs)
            return run.clock.run(name, lambda: fn(run, *args, **kwargs))

        run_stage.ranks = ranks  # type: ignore[attr-defined]
        return run_stage

    return wrap
