"""Runs the selected checks concurrently under one deadline, and never hangs.

Each check gets a daemon thread. The engine waits until `timeout_s` (+ a short grace for checks to
format what they found at the deadline); a check still running then is a `fail` ("no answer within
Ns") and its thread is abandoned: daemon threads cannot keep labup alive, and every network call in
a check is itself bounded by the time left, so the thread ends soon anyway.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from labup.checks.model import FAIL, Check, CheckContext, CheckResult, CheckTimeout

if TYPE_CHECKING:
    from labup.config import Lab
    from labup.engine.shared import RunShared

GRACE_S = 0.5  # after the deadline: time for checks to turn "timed out" into their own diagnosis


def run_checks(lab: Lab, names: list[str], *, registry: Mapping[str, Check] | None = None,
               timeout_s: float | None = None, grace_s: float = GRACE_S,
               shared: RunShared | None = None) -> list[CheckResult]:
    """Run the named checks concurrently; one result per name, in the order given."""
    if registry is None:
        from labup.checks.registry import REGISTRY

        registry = REGISTRY
    timeout = float(timeout_s if timeout_s is not None else lab.verify.timeout_s)
    ctx = CheckContext(lab, names, timeout, shared)
    started = time.monotonic()
    done: dict[str, CheckResult] = {}
    events: dict[str, threading.Event] = {}
    for name in names:
        events[name] = threading.Event()
        thread = threading.Thread(target=_run_one, args=(registry[name], ctx, done, events[name]),
                                  name=f"labup-check-{name}", daemon=True)
        thread.start()
    hard_deadline = ctx.deadline + grace_s
    results = []
    for name in names:
        finished = events[name].wait(max(hard_deadline - time.monotonic(), 0.0))
        if finished:
            results.append(done[name])
        else:
            result = _overrun(registry[name], timeout, time.monotonic() - started)
            ctx.publish(result)  # a check still waiting for this one stops waiting
            results.append(result)
    return results


def _run_one(check: Check, ctx: CheckContext, done: dict[str, CheckResult], event: threading.Event) -> None:
    started = time.monotonic()
    try:
        result = check.run(ctx)
        if result.name != check.name:
            raise AssertionError(f"check {check.name} returned a result named {result.name}")
    except CheckTimeout as exc:
        result = _overrun(check, ctx.timeout_s, 0.0, str(exc))
    except Exception as exc:  # a bug in one check must not hide the others' results
        result = CheckResult(check.name, FAIL, f"internal error: {type(exc).__name__}: {exc}",
                             hint="this is a labup bug; run again with -v and report it")
    result.seconds = time.monotonic() - started
    done[check.name] = result
    ctx.publish(result)
    event.set()


def _overrun(check: Check, timeout: float, seconds: float, detail: str | None = None) -> CheckResult:
    summary = f"no answer within {timeout:g}s" + (f" ({detail})" if detail else "")
    return CheckResult(check.name, FAIL, summary,
                       hint=check.timeout_hint or "raise verify.timeout_s if the lab is just slow",
                       seconds=seconds)
