"""Runs phases: pre-flight for every step, then observe -> apply -> check again, and on a failure
undoes this run's changes newest first. Dry-run is structural: apply() and undo() are never called."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from labup.engine import model as m
from labup.engine import results as res
from labup.engine.context import Context
from labup.engine.journal import Journal, PendingUndo
from labup.engine.signals import SignalGuard
from labup.errors import (
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_ROLLBACK_INCOMPLETE,
    ConfigError,
    Interrupted,
    LabupError,
    PermanentError,
    Unreadable,
)
from labup.redact import redact


@dataclass
class _Applied:
    phase: str
    step: m.Step
    undo: dict[str, Any] | None


class CheckStep(m.Step):
    """A step that only reads and judges (verify): it has nothing to apply or undo."""

    kind = "check"

    def apply(self, ctx: Context, seen: m.Observation) -> dict[str, Any] | None:
        raise AssertionError("a check step is never applied")


class Runner:
    def __init__(self, ctx: Context, phases: list[m.Phase], command: str,
                 journal: Journal | None) -> None:
        self.ctx = ctx
        self.phases = phases
        self.command = command
        self.journal = journal  # None for dry runs: they change nothing, so there is nothing to record
        self.applied: list[_Applied] = []
        self.report = res.RunReport(command=command, dry_run=ctx.dry_run)
        self.reporter = ctx.reporter
        self._current: tuple[str, str] | None = None

    # -- public ---------------------------------------------------------------------------------

    def run(self) -> res.RunReport:
        if self.journal:
            self.journal.start(self.command, [p.name for p in self.phases])
        # which phases run in this invocation: a phase's pre-flight may depend on an earlier one
        # (traefik needs the VIP that the vip phase brings up)
        self.ctx.facts["run_phases"] = [p.name for p in self.phases]
        guard = SignalGuard(self.reporter.note)
        with guard:
            try:
                plan = self._build()
                self._preflight(plan)
                for phase, steps in plan:
                    self.reporter.phase(phase.name)
                    for step in steps:
                        self._run_step(phase.name, step)
            except (LabupError, KeyboardInterrupt) as exc:
                if not isinstance(exc, LabupError | Interrupted):
                    exc = Interrupted("SIGINT")
                self._fail(exc, guard)
            except Exception as exc:  # a bug must still roll back and release the lock
                self._fail(PermanentError(f"internal error: {type(exc).__name__}: {exc}",
                                          hint="this is a labup bug; the journal has the details"), guard)
        failed_checks = [r for r in self.report.results if r.status in (res.FAILED, res.NOT_BUILT)]
        if not self.report.exit_code and failed_checks:
            self.report.exit_code = EXIT_FAILED
            if not self.report.error:
                self.report.error = f"{len(failed_checks)} step(s) failed: " + ", ".join(
                    f"{r.phase}/{r.step}" for r in failed_checks)
        if self.journal:
            self.journal.write("run-end", exit_code=self.report.exit_code,
                               status="ok" if self.report.exit_code == 0 else "failed",
                               error=self.report.error)
        return self.report

    # -- stages ---------------------------------------------------------------------------------

    def _build(self) -> list[tuple[m.Phase, list[m.Step]]]:
        plan = []
        for phase in self.phases:
            if not phase.built or phase.steps is None:
                self._record(res.StepResult(
                    phase.name, "-", res.NOT_BUILT,
                    error=f"phase {phase.name} is not built yet: nothing was done for it"))
                continue
            plan.append((phase, phase.steps(self.ctx)))
        return plan

    def _preflight(self, plan: list[tuple[m.Phase, list[m.Step]]]) -> None:
        """Every read-only check before the first write; an apply stops at the first problem."""
        problems: list[LabupError] = []
        for phase, steps in plan:
            for step in steps:
                try:
                    self.ctx.retry(lambda s=step: s.preflight(self.ctx), f"{phase.name}/{step.name}")
                except Unreadable as exc:
                    self.ctx.facts.setdefault("unknown", {})[f"{phase.name}/{step.name}"] = exc.message
                    if not self.ctx.dry_run:
                        problems.append(exc)
                except Interrupted:
                    raise
                except LabupError as exc:
                    if exc.exit_code == EXIT_INVALID:  # bad input (a refused values file): exit 2, dry run or not
                        raise ConfigError("", f"pre-flight failed, nothing was changed: {exc.message}",
                                          hint=exc.hint) from None
                    problems.append(exc)
                    if self.ctx.dry_run:
                        self._record(res.StepResult(phase.name, step.name, res.FAILED,
                                                  summary="pre-flight failed", error=exc.message,
                                                  hint=exc.hint))
        if problems and not self.ctx.dry_run:
            first = problems[0]
            if first.exit_code == EXIT_INVALID:  # bad input (e.g. a refused values file) stays exit 2
                raise ConfigError("", f"pre-flight failed, nothing was changed: {first.message}",
                                  hint=first.hint)
            raise PermanentError(f"pre-flight failed, nothing was changed: {first.message}",
                                 hint=first.hint)

    def _run_step(self, phase: str, step: m.Step) -> None:
        key = f"{phase}/{step.name}"
        if self.ctx.dry_run and any(r.phase == phase and r.step == step.name
                                    for r in self.report.results):
            return  # pre-flight already reported this step as failed
        started = time.monotonic()
        self._current = (phase, step.name)  # cleared only when the step ends without raising
        if getattr(step, "kind", "change") == "check" and self.ctx.dry_run:
            self._record(res.StepResult(phase, step.name, res.WOULD_RUN, summary="would run this check"))
            return
        with self.reporter.step(phase, step.name, spinner=step.long_running):
            try:
                seen = self.ctx.retry(lambda: step.observe(self.ctx), f"{key}: read")
            except Unreadable as exc:
                if not self.ctx.dry_run:
                    raise
                # the reason in the line, the way out as its hint (never a hint inside another)
                seen = m.Observation.unknown(f"state could not be read: {exc.message}", exc.hint)
                seen.diff = step.offline_plan(self.ctx)
            if getattr(step, "kind", "change") == "check":
                status = res.OK if seen.converged else res.FAILED
                self._record(res.StepResult(phase, step.name, status, seen.summary, seen.diff,
                                          hint=seen.reason if not seen.converged else None,
                                          seconds=time.monotonic() - started))
                return
            if seen.converged:
                self._record(res.StepResult(phase, step.name, res.OK, seen.summary,
                                          seconds=time.monotonic() - started))
                return
            if self.ctx.dry_run:
                status = res.UNKNOWN if seen.converged is None else res.PLANNED
                self._record(res.StepResult(phase, step.name, status, seen.summary, seen.diff,
                                          hint=seen.reason, seconds=time.monotonic() - started))
                return
            if seen.converged is None:
                raise Unreadable(f"{key}: {seen.reason or 'state could not be read'}")
            undo = self.ctx.retry(lambda: step.apply(self.ctx, seen), f"{key}: apply")
            self.applied.append(_Applied(phase, step, undo))
            if self.journal:
                self.journal.write("applied", phase=phase, step=step.name, summary=seen.summary,
                                   undo=undo)
            after = self.ctx.retry(lambda: step.observe(self.ctx), f"{key}: check")
            if not after.converged:
                raise PermanentError(f"{key}: still not converged after the change: {after.summary}",
                                     hint=after.reason)
            self._record(res.StepResult(phase, step.name, res.CHANGED, f"{seen.summary}; now: {after.summary}",
                                      seen.diff, seconds=time.monotonic() - started))

    def _record(self, result: res.StepResult) -> None:
        self._current = None
        self.report.results.append(result)
        self.reporter.result(result)
        if self.journal:
            self.journal.write("step", phase=result.phase, step=result.step, status=result.status,
                               summary=result.summary, error=result.error)

    # -- failure and rollback -------------------------------------------------------------------

    def _fail(self, exc: LabupError | Interrupted, guard: SignalGuard) -> None:
        message = redact(exc.message)
        self.report.error = message
        self.report.hint = exc.hint
        current, self._current = self._current, None
        if current:
            self._record(res.StepResult(current[0], current[1], res.FAILED, error=message, hint=exc.hint))
        if self.journal:
            self.journal.write("failed", error=message, hint=exc.hint)
        with guard.shield():
            complete = self._rollback()
        self.report.exit_code = EXIT_FAILED if complete else EXIT_ROLLBACK_INCOMPLETE
        if complete and not self.applied and exc.exit_code == EXIT_INVALID:
            self.report.exit_code = EXIT_INVALID  # invalid input, found before any write

    def _rollback(self) -> bool:
        if not self.applied:
            return True
        self.reporter.phase("rollback")
        pending = [PendingUndo(self.journal.run_id if self.journal else "", a.phase, a.step.name,
                               a.undo or {}, "") for a in reversed(self.applied) if a.undo is not None]
        steps = {(a.phase, a.step.name): a.step for a in self.applied}
        results = undo_all(self.ctx, pending, steps, self.journal)
        self.report.undone.extend(results)
        left = [r for r in results if r.status == res.UNDO_FAILED]
        if left:
            self.report.hint = "still applied, to finish by hand: " + "; ".join(
                f"{r.phase}/{r.step}: {r.error}" for r in left)
        return not left


def undo_all(ctx: Context, pending: list[PendingUndo], steps: dict[tuple[str, str], m.Step],
             journal: Journal | None) -> list[res.StepResult]:
    """Undo each change, newest first (pending is already ordered so), each undo retried."""
    results = []
    for item in pending:
        step = steps.get((item.phase, item.step))
        started = time.monotonic()
        with ctx.reporter.step(item.phase, f"undo {item.step}", spinner=True):
            try:
                if step is None:
                    raise PermanentError(f"labup no longer knows step {item.phase}/{item.step}")
                refused = item.foreign or step.owns(ctx, item.undo)
                if refused:  # never executed nor journaled: reported, and the rollback ends incomplete (exit 3)
                    result = res.StepResult(item.phase, item.step, res.UNDO_FAILED,
                                          error=f"refused to undo this journal entry: {refused}",
                                          hint=f"nothing was done for it; if it is stale, remove its line from "
                                               f"{ctx.lab.state_dir / 'journal.jsonl'}")
                    ctx.reporter.result(result)
                    results.append(result)
                    continue
                done = ctx.retry(lambda s=step, d=item.undo: s.undo(ctx, d),
                                 f"{item.phase}/{item.step}: undo")
                result = res.StepResult(item.phase, item.step, res.UNDONE, summary=done,
                                      seconds=time.monotonic() - started)
                if journal:
                    journal.write("undone", phase=item.phase, step=item.step, of_run=item.run,
                                  summary=done)
            except Exception as exc:  # every undo is attempted, whatever the previous one did
                text = redact(getattr(exc, "message", None) or str(exc) or type(exc).__name__)
                result = res.StepResult(item.phase, item.step, res.UNDO_FAILED, error=text,
                                      hint=getattr(exc, "hint", None),
                                      seconds=time.monotonic() - started)
                if journal:
                    journal.write("undo-failed", phase=item.phase, step=item.step, of_run=item.run,
                                  error=text)
        ctx.reporter.result(result)
        results.append(result)
    return results
