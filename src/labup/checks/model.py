"""What a verify check is, what it reports, and what it can use while it runs.

A check is a name and a function `(CheckContext) -> CheckResult`. Checks run concurrently (one thread
each) under one deadline; they share probes through `ctx.fact()` (computed once, whoever asks first)
and may read another check's result with `ctx.result_of()`, waiting at most until the deadline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from labup.config import Lab
    from labup.engine.shared import RunShared

T = TypeVar("T")

PASS = "pass"
WARN = "warn"  # works, but needs attention soon (exit 0)
FAIL = "fail"  # exit 1
SKIP = "skip"  # not run (e.g. needs an adapter that is not built): proves nothing, fails nothing
STATUSES = (PASS, WARN, FAIL, SKIP)


@dataclass
class CheckResult:
    name: str
    status: str
    summary: str  # one line
    hint: str | None = None  # what to do about it (fail/warn/skip)
    data: dict[str, Any] = field(default_factory=dict)  # JSON-safe facts other checks and --json use
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"check {self.name}: unknown status {self.status!r}")

    @property
    def failed(self) -> bool:
        return self.status == FAIL

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "summary": self.summary, "hint": self.hint,
                "data": self.data, "seconds": round(self.seconds, 3)}


CheckFn = Callable[["CheckContext"], CheckResult]


@dataclass(frozen=True)
class Check:
    name: str
    run: CheckFn
    # said when the check overruns the deadline: the likely causes, specific to this check
    timeout_hint: str | None = None


# Staggered bounds, so each layer hears the one below before giving up on it: I/O stops at the
# deadline, a wait for a shared fact a little later, a wait for another check's result later still,
# and the engine (engine.GRACE_S) last.
FACT_GRACE_S = 0.15
RESULT_GRACE_S = 0.3


class CheckTimeout(Exception):
    """A check waited for something (a fact, another check) past the deadline."""


class _Slot:
    """A value produced once by one thread and awaited by others, with a deadline."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None

    def set(self, value: Any) -> None:
        self.value = value
        self.event.set()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.event.set()


class CheckContext:
    """What a running check may use: the lab, the time left, shared facts, other checks' results."""

    def __init__(self, lab: Lab, selected: list[str], timeout_s: float, shared: RunShared | None = None) -> None:
        from labup.engine.shared import RunShared

        self.lab = lab
        # the run's adapters and fact snapshots: inside `labup apply`, the ones its phases already read
        self.shared = shared if shared is not None else RunShared()
        self.selected = tuple(selected)
        self.timeout_s = timeout_s
        self.deadline = time.monotonic() + timeout_s
        self._lock = threading.Lock()
        self._facts: dict[str, _Slot] = {}
        self._results: dict[str, _Slot] = {name: _Slot() for name in selected}

    def remaining(self) -> float:
        """Seconds left before the deadline (0 when past it): pass it as every I/O timeout."""
        return max(self.deadline - time.monotonic(), 0.0)

    def fact(self, key: str, compute: Callable[[], T]) -> T:
        """A probe shared between checks: the first caller computes it, the others wait for it.

        Raises CheckTimeout if it is not ready by the deadline; re-raises the computation's error."""
        with self._lock:
            slot = self._facts.get(key)
            owner = slot is None
            if slot is None:
                slot = self._facts[key] = _Slot()
        if owner:
            try:
                slot.set(compute())
            except BaseException as exc:
                slot.fail(exc)
                raise
        elif not slot.event.wait(self.remaining() + FACT_GRACE_S):
            raise CheckTimeout(f"waited for {key}")
        if slot.error is not None:
            raise slot.error
        return slot.value  # type: ignore[no-any-return]

    def known_fact(self, key: str) -> Any:
        """A fact if some check already computed it, else None (never waits, never computes)."""
        slot = self._facts.get(key)
        if slot is None or not slot.event.is_set() or slot.error is not None:
            return None
        return slot.value

    def result_of(self, name: str, within: float | None = None) -> CheckResult | None:
        """Another check's result, waiting for it until the deadline (or `within` seconds, if sooner);
        None if it was not selected or did not finish in time (a check must then judge without it)."""
        slot = self._results.get(name)
        wait = self.remaining() + RESULT_GRACE_S
        if slot is None or not slot.event.wait(wait if within is None else min(within, wait)):
            return None
        return slot.value if isinstance(slot.value, CheckResult) else None

    def publish(self, result: CheckResult) -> None:
        """Called by the engine when a check finishes (whatever its status)."""
        slot = self._results.get(result.name)
        if slot is not None and not slot.event.is_set():
            slot.set(result)
