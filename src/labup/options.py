"""The global options every command takes (-c, --json, -v, -q, --no-color, --diff)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Options:
    config: Path
    json: bool = False
    verbose: bool = False
    quiet: bool = False
    color: bool | None = None
    diff: bool = False  # show each step's diff (apply/phase --diff; -v shows them too)


def emit_json(opts: Options, doc: dict[str, Any]) -> None:
    """With --json, the command's one document on stdout (the human output went to stderr)."""
    if opts.json:
        sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
        sys.stdout.flush()
