"""The run journal: one JSON line per event under .labup/ (DESIGN.md §3), never a secret."""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labup.redact import redact_obj


def ensure_state_dir(state_dir: Path) -> Path:
    """Create .labup/ with mode 0700 (it names what labup changed in the lab)."""
    state_dir.mkdir(mode=0o700, exist_ok=True)
    os.chmod(state_dir, 0o700)
    return state_dir


@dataclass(frozen=True)
class PendingUndo:
    run: str
    phase: str
    step: str
    undo: dict[str, Any]
    at: str


class Journal:
    def __init__(self, state_dir: Path, run_id: str | None = None) -> None:
        self.path = state_dir / "journal.jsonl"
        self.run_id = run_id or time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]

    def write(self, event: str, **fields: Any) -> None:
        """Append one event; flushed and fsynced so a killed run still leaves a true journal."""
        record = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "run": self.run_id, "event": event,
                  **redact_obj(fields)}
        line = json.dumps(record, sort_keys=False, default=str) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def start(self, command: str, phases: list[str]) -> None:
        self.write("run-start", command=command, phases=phases, pid=os.getpid(),
                   host=socket.gethostname())

    def events(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a crash mid-write: skip it, keep the rest

    def pending_undos(self, phase: str | None = None) -> list[PendingUndo]:
        """Applied changes not undone yet, newest first (what `labup rollback` would undo)."""
        applied: dict[tuple[str, str, str], PendingUndo] = {}
        for ev in self.events():
            key = (ev.get("run", ""), ev.get("phase", ""), ev.get("step", ""))
            if ev.get("event") == "applied" and isinstance(ev.get("undo"), dict):
                applied[key] = PendingUndo(key[0], key[1], key[2], ev["undo"], ev.get("ts", ""))
            elif ev.get("event") == "undone":
                applied.pop((ev.get("of_run", key[0]), key[1], key[2]), None)
        pending = [p for p in applied.values() if phase in (None, p.phase)]
        return list(reversed(pending))
