"""Console entry point. `labup`, `labup --help` and `labup --version` answer from a snapshot of the
help typer renders (kept current by tests/test_cli.py), so the commonest invocations skip importing
typer at all; everything else goes to the typer app in labup.cli."""

from __future__ import annotations

import os
import sys
from pathlib import Path

SNAPSHOT = Path(__file__).with_name("help.txt")
_HELP_ARGS = ((), ("--help",), ("-h",))


def _fast_path(argv: list[str]) -> bool:
    if tuple(argv) == ("--version",):
        from labup import __version__

        sys.stdout.write(f"labup {__version__}\n")
        return True
    # a shell asking for completions runs `labup` with no arguments: typer answers it (labup.cli)
    if tuple(argv) not in _HELP_ARGS or os.environ.get("LABUP_NO_FAST_HELP") or os.environ.get("_LABUP_COMPLETE"):
        return False
    # click wraps help to min(terminal width, 80): the snapshot is the 80-column rendering
    columns = os.get_terminal_size(sys.stdout.fileno()).columns if sys.stdout.isatty() else 80
    if columns < 80 or not SNAPSHOT.is_file():
        return False
    sys.stdout.write(SNAPSHOT.read_text())
    return True


def main() -> None:
    if _fast_path(sys.argv[1:]):
        return
    from labup.cli import main as typer_main

    typer_main()
