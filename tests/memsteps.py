"""In-memory steps for engine tests: their 'live state' is a set of marker files in a folder,
so a separate process (a real `labup` run) and the test can both see what was applied or undone."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from labup.engine.context import Context
from labup.engine.model import Observation, Phase, Step
from labup.errors import PermanentError, TransientError


class FileStep(Step):
    """Converged when <dir>/<name> exists; apply creates it, undo removes it."""

    def __init__(self, state: Path, name: str, *, fail_apply: str | None = None,
                 transient_failures: int = 0, sleep_in_apply: float = 0.0,
                 apply_forbidden: bool = False) -> None:
        self.state = state
        self.name = name
        self.fail_apply = fail_apply  # "permanent" | "transient" | None
        self.transient_failures = transient_failures
        self.sleep_in_apply = sleep_in_apply
        self.apply_forbidden = apply_forbidden
        self.calls: list[str] = []

    @property
    def marker(self) -> Path:
        return self.state / self.name

    def _log(self, what: str) -> None:
        self.calls.append(what)
        with (self.state / "calls.log").open("a") as fh:
            fh.write(f"{what} {self.name}\n")

    def observe(self, ctx: Context) -> Observation:
        self._log("observe")
        present = self.marker.exists()
        return Observation(present, f"{self.name} {'present' if present else 'absent'}",
                           diff=None if present else f"+ {self.name}")

    def apply(self, ctx: Context, seen: Observation) -> dict[str, Any]:
        if self.apply_forbidden:
            raise AssertionError(f"write path of {self.name} ran")
        self._log("apply")
        if self.transient_failures > 0:
            self.transient_failures -= 1
            raise TransientError(f"{self.name}: connection reset")
        if self.fail_apply == "permanent":
            raise PermanentError(f"{self.name}: refused", hint="fix it")
        if self.fail_apply == "transient":
            raise TransientError(f"{self.name}: Unavailable")
        if self.sleep_in_apply:
            (self.state / f"{self.name}.started").touch()
            time.sleep(self.sleep_in_apply)
        self.marker.touch()
        return {"created": self.name}

    def owns(self, ctx: Context, data: dict[str, Any]) -> str | None:
        return None if data.get("created") == self.name else f"it is {data.get('created')!r}'s change"

    def undo(self, ctx: Context, data: dict[str, Any]) -> str:
        self._log("undo")
        self.marker.unlink(missing_ok=True)
        return f"removed {data['created']}"


def phase(name: str, *steps: FileStep) -> Phase:
    return Phase(name, f"test phase {name}", steps=lambda ctx: list(steps))
