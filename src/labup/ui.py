"""Human output on stderr: rich (spinner, colours, a summary table) on a terminal, plain lines otherwise.

rich is imported only when a terminal wants it, so scripted runs and `--help` stay fast. Everything
shown passes through `clean()`: secrets masked, and text from outside (paths, names, tool and server
messages) can neither drive the terminal (control characters are shown escaped, never sent: kubectl's
CVE-2021-25743) nor be read as rich markup (it is always printed as Text, never parsed).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any

from labup.redact import redact

if TYPE_CHECKING:
    from labup.checks.model import CheckResult
    from labup.engine.results import RunReport, StepResult

_STYLE = {"ok": "green", "changed": "yellow", "would-change": "cyan", "would-run": "dim", "unknown": "magenta",
          "failed": "bold red", "undone": "yellow", "undo-failed": "bold red", "not-built": "red",
          "skipped": "dim", "pass": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}


# C0 controls but tab, DEL, C1 controls (0x9b is a one-byte CSI on some terminals), line and paragraph
# separators, bidi overrides: each shown escaped, so outside text can neither drive the terminal nor
# forge a line of labup's own ("\nlabup: error: ...") nor reorder what is displayed
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def clean(text: str) -> str:
    """What may reach a terminal as one line: secrets masked, control characters escaped (`\\x1b`,
    `\\x0a`). Multi-line output (a diff) is split into lines before it gets here."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}",
                        redact(text))


class _Channel:
    """One output stream: rich on a colour terminal, plain lines otherwise."""

    def __init__(self, stream: IO[str], color: bool | None) -> None:
        self.stream = stream
        tty = stream.isatty()
        self.rich = tty and not os.environ.get("NO_COLOR") and (color is not False)
        self._console: Any = None

    @property
    def console(self) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(file=self.stream, highlight=False)
        return self._console

    def line(self, text: str, style: str | None = None) -> None:
        text = clean(text)
        if self.rich:
            from rich.text import Text

            self.console.print(Text(text, style=style or ""))
        else:
            self.stream.write(text + "\n")
            self.stream.flush()


class Reporter:
    """What a run shows: its result (the plan, each step, the summary, the checks) on `out` (stdout,
    so `labup apply --dry-run > plan.txt` keeps the plan), its progress, notes and errors on `stream`
    (stderr). With --json, stdout carries the JSON document and both go to stderr."""

    def __init__(self, *, color: bool | None = None, quiet: bool = False, verbose: bool = False,
                 stream: IO[str] | None = None, out: IO[str] | None = None, diff: bool = False) -> None:
        self.stream = stream or sys.stderr
        self._err = _Channel(self.stream, color)
        self._res = self._err if out is None or out is self.stream else _Channel(out, color)
        self.rich = self._err.rich
        self.quiet = quiet
        self.verbose = verbose
        self.diff = diff or verbose  # a plan is one line per step; its diffs on request (--diff, -v)
        self._current: tuple[str, str] | None = None
        self._hints_said: set[str] = set()

    # -- rich plumbing ---------------------------------------------------------------------------

    @property
    def console(self) -> Any:
        return self._err.console

    def _line(self, text: str, style: str | None = None) -> None:
        self._err.line(text, style)

    def _out(self, text: str, style: str | None = None) -> None:
        self._res.line(text, style)

    # -- events ----------------------------------------------------------------------------------

    def header(self, text: str) -> None:
        """What the run is about to talk to (lab file, cluster, Talos endpoints): first, on the result."""
        if not self.quiet:
            self._out(text, "bold")

    def phase(self, name: str) -> None:
        if not self.quiet:
            self._out(f"== {name}", "bold")

    @contextmanager
    def step(self, phase: str, step: str, spinner: bool = False) -> Iterator[None]:
        self._current = (phase, step)
        try:
            if self.rich and spinner and not self.quiet:
                from rich.text import Text

                with self.console.status(Text(clean(f"{phase}/{step} ..."))):
                    yield
            else:
                yield
        finally:
            self._current = None

    def current_step(self) -> tuple[str, str] | None:
        return self._current

    def result(self, r: StepResult) -> None:
        if self.quiet and r.status not in ("failed", "undo-failed"):
            return
        text = f"  {r.status:<12} {r.phase}/{r.step}"
        if r.summary:
            text += f": {redact(r.summary)}"
        self._out(text, _STYLE.get(r.status))
        if r.error:
            self._out(f"    error: {redact(r.error)}", "red")
        if r.hint:
            # a cause shared by several steps (talosctl missing, no kubeconfig) is explained once
            said = r.hint in self._hints_said
            self._hints_said.add(r.hint)
            shown = "as above" if said else redact(r.hint)
            self._out(f"    hint: {shown}", "dim" if r.status != "failed" else "yellow")
        if r.diff and self.diff:
            for line in redact(r.diff).rstrip("\n").splitlines():
                self._out(f"    {line}", _diff_style(line))

    @contextmanager
    def progress(self, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
        """A byte counter for a download; yields advance(nbytes).

        A rich bar (size, speed, time left) on a terminal, gone when done; otherwise one line, so
        logs and CI output get no stream of percentages."""
        if self.quiet:
            yield lambda n: None
            return
        if not self.rich:
            size = f" ({_size(total)})" if total else ""
            self._line(f"  .. {redact(description)}{size}")
            yield lambda n: None
            return
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        columns = (TextColumn("  {task.description}"), BarColumn(), DownloadColumn(),
                   TransferSpeedColumn(), TimeRemainingColumn())
        with Progress(*columns, console=self.console, transient=True) as bar:
            from rich.markup import escape

            task = bar.add_task(escape(clean(description)), total=total)
            yield lambda n: bar.advance(task, n)

    def note(self, text: str) -> None:
        if not self.quiet:
            self._line(f"  .. {redact(text)}", "dim")

    def error(self, message: str, hint: str | None = None) -> None:
        self._line(f"labup: error: {redact(message)}", "bold red")
        if hint:
            self._line(f"labup: hint: {redact(hint)}", "yellow")

    def summary(self, report: RunReport) -> None:
        rows = report.results + report.undone
        if not rows:
            if report.error:  # e.g. a pre-flight failure: no step ran, but the user must see why
                self.error(report.error, report.hint)
            return
        if self._res.rich:
            from rich.table import Table
            from rich.text import Text

            dry = " (dry run)" if report.dry_run and "--dry-run" not in report.command else ""
            table = Table(title=Text(clean(f"labup {report.command}{dry}")), title_justify="left")
            for col in ("phase", "step", "status", "detail"):
                table.add_column(col)
            for r in rows:  # Text, never markup: a detail may hold `[/x]` or `[link=...]` from outside
                table.add_row(Text(clean(r.phase)), Text(clean(r.step)),
                              Text(r.status, style=_STYLE.get(r.status, "")), Text(clean(r.error or r.summary or "")))
            self._res.console.print(table)
        else:
            counts: dict[str, int] = {}
            for r in rows:
                counts[r.status] = counts.get(r.status, 0) + 1
            self._out("summary: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
        if any(r.diff for r in rows) and not self.diff and not self.quiet:
            self._out("(--diff shows what each step changes or would change)", "dim")
        if report.error:
            self.error(report.error, report.hint)
        elif report.dry_run:
            self._out("dry run: nothing was changed", "dim")

    def checks(self, results: list[CheckResult], title: str) -> None:
        """Verify's checks: a table on a terminal, a line each otherwise; hints under the problems."""
        shown = [r for r in results if not self.quiet or r.status == "fail"]
        if self._res.rich and shown:
            from rich.table import Table
            from rich.text import Text

            table = Table(title=Text(clean(title)), title_justify="left")
            for col in ("check", "status", "detail"):
                table.add_column(col)
            for r in shown:  # Text, not markup: a summary may hold brackets (an IPv6 URL)
                table.add_row(r.name, Text(r.status, style=_STYLE.get(r.status, "")), Text(clean(r.summary)))
            self._res.console.print(table)
            for r in shown:
                if r.hint and r.status != "pass":
                    self._out(f"  {r.name}: {redact(r.hint)}", "yellow" if r.status == "fail" else "dim")
        else:
            for r in shown:
                self._out(f"  {r.status:<5} {r.name}: {redact(r.summary)}", _STYLE.get(r.status))
                if r.hint and r.status != "pass":
                    self._out(f"    hint: {redact(r.hint)}", "dim")
        counts: dict[str, int] = {}
        for r in results:
            counts[r.status] = counts.get(r.status, 0) + 1
        self._out("summary: " + (", ".join(f"{n} {s}" for s, n in counts.items()) or "no check run"))


def _size(nbytes: int) -> str:
    if nbytes < 1_000:
        return f"{nbytes} B"
    if nbytes < 1_000_000:
        return f"{nbytes / 1e3:.1f} KB"
    if nbytes < 1_000_000_000:
        return f"{nbytes / 1e6:.1f} MB"
    return f"{nbytes / 1e9:.1f} GB"


def _diff_style(line: str) -> str | None:
    if line.startswith("+"):
        return "green"
    if line.startswith("-"):
        return "red"
    if line.startswith("@@"):
        return "cyan"
    return None
