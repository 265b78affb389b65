"""What a phase and a step are, and what a run reports about them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labup.engine.context import Context


@dataclass
class Observation:
    """What a step read from the live system.

    converged: True (nothing to do), False (a change is needed), None (could not read: unknown).
    """

    converged: bool | None
    summary: str
    diff: str | None = None
    reason: str | None = None  # why the state is unknown
    data: dict[str, Any] = field(default_factory=dict)  # whatever apply() needs from the read

    @classmethod
    def unknown(cls, summary: str, reason: str) -> Observation:
        return cls(None, summary, reason=reason)


class Step(ABC):
    """One idempotent unit: observe the live state, apply only when not converged, undo on rollback.

    Constructors must not do I/O: `labup rollback` rebuilds steps just to call undo().
    """

    name: str = "step"
    long_running: bool = False  # show a spinner

    def preflight(self, ctx: Context) -> None:  # noqa: B027 - optional hook
        """Read-only checks run for every step before any write; raise PreflightError to stop."""

    @abstractmethod
    def observe(self, ctx: Context) -> Observation:
        """Read the live state (never write) and say whether it is converged."""

    @abstractmethod
    def apply(self, ctx: Context, seen: Observation) -> dict[str, Any] | None:
        """Make the change. Return the JSON-safe data undo() needs (journaled: never a secret)."""

    def offline_plan(self, ctx: Context) -> str | None:
        """What the step would apply, from lab.yaml alone: shown when a dry run cannot read the live
        state, so an offline plan still says what would be sent. Pure: no I/O."""
        return None

    def undo(self, ctx: Context, data: dict[str, Any]) -> str:
        """Undo exactly what apply() did; return a one-line description of what was undone."""
        raise NotImplementedError(f"step {self.name} cannot be undone")

    def owns(self, ctx: Context, data: dict[str, Any]) -> str | None:
        """Why the journaled `data` is not provably this step's change for this lab (None: it is).

        Journal data is untrusted input (a hand-edited or copied file): undo() runs only after this
        check, which compares every name, path and address in it with lab.yaml. A step that can be
        undone must override it; the default refuses."""
        return "labup has no way to check this journal entry against lab.yaml"


StepsFactory = Callable[["Context"], list[Step]]


@dataclass(frozen=True)
class Phase:
    """A named, ordered group of steps (built when the phase starts: steps may use earlier facts)."""

    name: str
    help: str
    steps: StepsFactory | None = None  # None: not built yet (reported honestly, exit 1)

    @property
    def built(self) -> bool:
        return self.steps is not None


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
