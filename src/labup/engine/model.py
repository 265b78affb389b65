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
    def unknown(cls, summary: str, reason: str | None) -> Observation:
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
