"""`labup verify`: run the selected checks, show them (stdout; stderr with --json), the --json document
(stdout), exit code.

Exit 0 when no check fails (warn and skip do not fail), else 1. Verify only reads: no lock, no journal.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from labup.checks.engine import run_checks
from labup.checks.model import FAIL, SKIP, CheckResult
from labup.errors import EXIT_FAILED, EXIT_OK

if TYPE_CHECKING:
    from labup.config import Lab
    from labup.options import Options


def run_command(opts: Options, lab: Lab, names: list[str]) -> int:
    from labup.ui import Reporter

    reporter = Reporter(color=opts.color, quiet=opts.quiet, verbose=opts.verbose,
                        out=sys.stderr if opts.json else sys.stdout)
    timeout = lab.verify.timeout_s
    with reporter.step("verify", f"{len(names)} checks", spinner=True):
        results = run_checks(lab, names)
    reporter.checks(results, f"labup verify ({lab.name}, VIP {lab.vip.address})")
    code = exit_code(results)
    failed = [r.name for r in results if r.status == FAIL]
    if failed:
        reporter.error(f"{len(failed)} check(s) failed: {', '.join(failed)}")
    skipped = [r.name for r in results if r.status == SKIP]
    if skipped and not failed:
        reporter.note(f"not proven (skipped): {', '.join(skipped)}")
    if opts.json:
        sys.stdout.write(json.dumps(document(results, code, timeout), indent=2, default=str) + "\n")
        sys.stdout.flush()
    return code


def exit_code(results: list[CheckResult]) -> int:
    return EXIT_FAILED if any(r.status == FAIL for r in results) else EXIT_OK


def document(results: list[CheckResult], code: int, timeout_s: float) -> dict[str, Any]:
    counts = {s: sum(1 for r in results if r.status == s) for s in ("pass", "warn", "fail", "skip")}
    return {"command": "verify", "ok": code == EXIT_OK, "exit_code": code, "timeout_s": timeout_s,
            "counts": counts, "checks": [r.as_dict() for r in results]}
