"""The verify checks as steps of `labup apply`'s last phase (CheckSteps: observe only).

The checks run concurrently once (on the first step's observe) and each step reports its own result;
a dry run never observes check steps (the runner plans them), so it sends no packet. A failing check
fails the run (exit 1) but rolls nothing back: the runner never undoes for a check. The changes stay;
`labup rollback` undoes them if wanted. Right after an install, https-cert waits for Traefik's ACME
certificate (traefik.cert_timeout_s) before it judges.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from labup.engine.model import Observation
from labup.engine.runner import CheckStep

if TYPE_CHECKING:
    from labup.checks.model import CheckResult
    from labup.engine.context import Context

KEEP_NOTE = ("verify failed: the changes of this run stay applied (a check never rolls back); "
             "`labup rollback` undoes them if wanted")


class Batch:
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
                self._results = {r.name: r for r in run_checks(ctx.lab, self.names, shared=ctx.shared)}
                cert = self._results.get("https-cert")
                if cert is not None and acme_pending(cert):
                    self._results["https-cert"] = cert = await_certificate(ctx, cert)
                    if "acme-backup" in self._results:  # it judged the certificate before it came
                        self._results["acme-backup"] = rejudge_backup(ctx, cert)
            self._observed.add(name)
            if self._observed == set(self.names) and any(r.failed for r in self._results.values()):
                ctx.reporter.note(KEEP_NOTE)
            return self._results[name]


def rejudge_backup(ctx: Context, cert: CheckResult) -> CheckResult:
    """acme-backup again, on the https-cert result the wait ended with (no request: a local read)."""
    from labup.checks.acme_backup import acme_backup
    from labup.checks.model import CheckContext

    judge = CheckContext(ctx.lab, ["https-cert", "acme-backup"], ctx.lab.verify.timeout_s, ctx.shared)
    judge.publish(cert)
    return acme_backup(judge)


CERT_POLL_S = (2.0, 5.0)  # first interval, then every
CERT_NOTE_EVERY_S = 30.0


def acme_pending(result: CheckResult) -> bool:
    """https-cert sees Traefik's default certificate and Traefik's log (ha: cert-manager's Certificate)
    shows no error (yet)."""
    domains = result.data.get("domains") or {}
    missing = any(facts.get("acme_missing") for facts in domains.values())
    return result.failed and missing and (result.data.get("acme") or {}).get("kind") is None


def await_certificate(ctx: Context, first: CheckResult) -> CheckResult:
    """Right after an install Traefik is still talking to Let's Encrypt: wait (traefik.cert_timeout_s)
    until https-cert passes or Traefik logs an ACME error, which then names the cause."""
    import time

    from labup.checks.engine import run_checks

    limit = ctx.lab.traefik.cert_timeout_s
    started = time.monotonic()
    domains = ", ".join(ctx.lab.traefik.domains)
    who = "cert-manager's" if ctx.lab.ha else "Traefik's ACME"
    ctx.reporter.note(f"waiting up to {limit:g}s for {who} certificate for {domains} (traefik.cert_timeout_s)")
    result, noted, interval = first, started, CERT_POLL_S[0]
    while acme_pending(result):
        left = limit - (time.monotonic() - started)
        if left <= 0:
            result.summary += f" (waited {limit:g}s)"
            return result
        time.sleep(min(interval, left))
        interval = CERT_POLL_S[1]
        result = run_checks(ctx.lab, ["https-cert"], shared=ctx.shared)[0]
        if time.monotonic() - noted >= CERT_NOTE_EVERY_S and acme_pending(result):
            noted = time.monotonic()
            ctx.reporter.note(f"still no certificate for {domains} after {noted - started:.0f}s")
    return result


class VerifyCheck(CheckStep):
    def __init__(self, name: str, batch: Batch) -> None:
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
