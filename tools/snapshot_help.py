"""Write src/labup/help.txt: typer's own rendering of `labup --help` at 80 columns (see labup.entry)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def render() -> str:
    env = {**os.environ, "LABUP_NO_FAST_HELP": "1", "COLUMNS": "80", "NO_COLOR": "1", "TERM": "dumb"}
    return subprocess.run([sys.executable, "-m", "labup", "--help"], capture_output=True, text=True,
                          env=env, check=True).stdout


if __name__ == "__main__":
    (REPO / "src" / "labup" / "help.txt").write_text(render())
    print("wrote src/labup/help.txt")
