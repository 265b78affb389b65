"""`labup status`: where everything is now (status/reads.py reads, status_view.py shows).

Read only: no lock, no journal entry. Exit 0 for any view, however partial (what could not be read is
shown unknown with the reason); a bad lab.yaml is still exit 2. --json prints the document of
status/model.py (README, "labup status"); --watch shows it again every --interval seconds until
Ctrl-C, which ends it quietly with exit 0 (--json --watch: one compact document a line).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from labup.errors import EXIT_OK, Interrupted, UsageError

if TYPE_CHECKING:
    from labup.config import Lab
    from labup.options import Options
    from labup.status.model import LabStatus

CLEAR = "\x1b[H\x1b[2J"  # home, clear screen: a terminal's redraw between frames


def main(opts: Options, *, watch: bool, interval: float) -> int:
    from labup.runs import guarded, load_lab

    def body() -> int:
        if not 0.5 <= interval <= 3600:
            raise UsageError(f"--interval {interval:g}: give a number of seconds from 0.5 to 3600")
        return run_command(opts, load_lab(opts), watch=watch, interval=interval)

    return guarded(opts, "status", body)


def run_command(opts: Options, lab: Lab, *, watch: bool = False, interval: float = 2.0,
                sleep: Callable[[float], None] = time.sleep) -> int:
    from labup.status.reads import gather

    if not watch:
        _show(opts, gather(lab), watch=None)
        return EXIT_OK
    try:
        frame = 0
        while True:
            _show(opts, gather(lab), watch=(frame, interval))
            frame += 1
            sleep(interval)
    except KeyboardInterrupt as exc:
        if isinstance(exc, Interrupted):  # SIGTERM/SIGHUP: as for every command
            raise
        return EXIT_OK  # Ctrl-C is how a watch ends


def document(status: LabStatus) -> dict[str, Any]:
    """The --json document; reasons come from outside (tools, servers): masked like every output."""
    from labup.redact import redact_obj

    return redact_obj(status.as_dict())  # type: ignore[no-any-return]


def _show(opts: Options, status: LabStatus, watch: tuple[int, float] | None) -> None:
    if opts.json:
        doc = document(status)
        text = json.dumps(doc, default=str) if watch else json.dumps(doc, indent=2, default=str)
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
        return
    tty = sys.stdout.isatty()
    if watch and tty:
        sys.stdout.write(CLEAR)
    elif watch and watch[0]:
        sys.stdout.write("\n")  # frames one after another in a file or pipe
    if tty and opts.color is not False and not os.environ.get("NO_COLOR"):
        from rich.console import Console

        from labup.status_view import render

        Console(highlight=False, emoji=False).print(render(status))
    else:
        from labup.status_view import to_text

        sys.stdout.write(to_text(status, shutil.get_terminal_size((100, 24)).columns))
    if watch:
        sys.stdout.write(f"(every {watch[1]:g}s; Ctrl-C ends)\n")
    sys.stdout.flush()
