"""Per-step metrics as JSON lines (``metrics.jsonl``), safe to resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from simgan_toolkit.io import atomic_write_text


class MetricsLog:
    """Appends one JSON object per logged step.

    On resume, :meth:`truncate_after` drops lines beyond the checkpoint's step so the log
    matches an uninterrupted run; :meth:`clear` empties it when training restarts from step 0.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        records = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut by a crash ends the usable log
        return records

    def clear(self) -> None:
        """Drop every record (training restarts from the beginning)."""
        if self.path.exists():
            atomic_write_text(self.path, "")

    def truncate_after(self, phase_order: list[str], phase: str, step: int) -> None:
        """Keep records up to (``phase``, ``step``) in training order; rewrite the file."""
        rank = {p: i for i, p in enumerate(phase_order)}
        keep = [
            r
            for r in self.read()
            if (rank.get(r.get("phase", ""), -1), r.get("step", 0)) <= (rank[phase], step)
        ]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in keep))
