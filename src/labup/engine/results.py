"""What a run reports: each step's status and result, the run's report, and the exit codes for them.
Nothing here knows a step or a context, so the reporter (labup.ui) and the engine share it freely."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Step statuses, as shown to the user and in --json.
EXIT_PENDING = 5  # --detailed-exitcode: changes pending
EXIT_UNREADABLE = 6  # --detailed-exitcode: some state could not be read
OK = "ok"  # already converged, no write
CHANGED = "changed"  # applied and checked again
PLANNED = "would-change"  # dry run: a change is needed
WOULD_RUN = "would-run"  # dry run: a verify check (it reads; it changes nothing, so it is no change)
UNKNOWN = "unknown"  # dry run: live state could not be read
FAILED = "failed"
UNDONE = "undone"
UNDO_FAILED = "undo-failed"
NOT_BUILT = "not-built"
SKIPPED = "skipped"


@dataclass
class StepResult:
    phase: str
    step: str
    status: str
    summary: str = ""
    diff: str | None = None
    error: str | None = None
    hint: str | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class RunReport:
    command: str
    dry_run: bool
    results: list[StepResult] = field(default_factory=list)
    undone: list[StepResult] = field(default_factory=list)
    error: str | None = None
    hint: str | None = None
    exit_code: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "command": self.command,
            "dry_run": self.dry_run,
            "ok": self.exit_code == 0,
            "exit_code": self.exit_code,
            # a dry run that could not read everything is no proof of "nothing to do"
            "complete": not any(r.status == UNKNOWN for r in self.results),
            "counts": self.counts(),
            "steps": [r.as_dict() for r in self.results],
            "undone": [r.as_dict() for r in self.undone],
        }
        if self.error:
            doc["error"] = self.error
        if self.hint:
            doc["hint"] = self.hint
        doc.update(self.extra)
        return doc

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.results:
            out[r.status] = out.get(r.status, 0) + 1
        return out

    def detailed_exit_code(self) -> int:
        """`--detailed-exitcode` (as helm-diff and terraform plan): 0 nothing to do, 5 changes pending,
        6 nothing known to change but some state could not be read (so "nothing to do" is unproven);
        an error keeps its own code (1-4)."""
        if self.exit_code != 0:
            return self.exit_code
        statuses = {r.status for r in self.results}
        if PLANNED in statuses or CHANGED in statuses:
            return EXIT_PENDING
        if UNKNOWN in statuses:
            return EXIT_UNREADABLE
        return 0
