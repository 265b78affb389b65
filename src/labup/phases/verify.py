"""Phase verify: the same checks as `labup verify`, as CheckSteps, so `labup apply` ends by proving it.

The checks run concurrently once (on the first step's observe) and each step reports its own result;
a dry run never observes check steps (the runner plans them), so it sends no packet. A failing check
fails the run (exit 1) but rolls nothing back: the runner never undoes for a check. The changes stay;
`labup rollback` undoes them if wanted.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from labup.checks import CHECK_NAMES
from labup.engine.model import Observation, Phase
from labup.engine.runner import CheckStep
from labup.phases import PHASE_HELP

if TYPE_CHECKING:
    from labup.checks.model import CheckResult
    from labup.engine.context import Context

KEEP_NOTE = ("verify failed: the changes of this run stay applied (a check never rolls back); "
             "`labup rollback` undoes them if wanted")


class _Batch:
    """All checks of one run, executed together on first use (no I/O before that)."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self._lock = threading.Lock()
        self._results: dict[str, CheckResult] | None = None
        self._observed: set[str] = set()

    def result(self, ctx: Context, name: str) -> CheckResult:
        from labup.checks.engine import run_checks

        with self._lock:
            if self._results is None:
                self._results = {r.name: r for r in run_checks(ctx.lab, self.names)}
            self._observed.add(name)
            if self._observed == set(self.names) and any(r.failed for r in self._results.values()):
                ctx.reporter.note(KEEP_NOTE)
            return self._results[name]


class VerifyCheck(CheckStep):
    def __init__(self, name: str, batch: _Batch) -> None:
        self.name = name
        self.batch = batch

    def observe(self, ctx: Context) -> Observation:
        r = self.batch.result(ctx, self.name)
        summary = r.summary if r.status == "pass" else f"{r.status}: {r.summary}"
        hint = r.hint
        if r.failed:  # said in --json too, where the note above does not appear
            hint = (f"{hint} " if hint else "") + "(this run's changes are kept: `labup rollback` undoes them)"
        # the runner turns converged=False into `failed`; warn and skip do not fail the run
        return Observation(converged=not r.failed, summary=summary, reason=hint, data=r.data)


def steps(ctx: Context) -> list[CheckStep]:
    batch = _Batch(list(CHECK_NAMES))
    return [VerifyCheck(name, batch) for name in CHECK_NAMES]


PHASE = Phase("verify", PHASE_HELP["verify"], steps=steps)
