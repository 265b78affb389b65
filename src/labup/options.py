"""The global options every command takes (-c, --json, -v, -q, --no-color, --diff)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class Options:
    config: Path
    json: bool = False
    verbose: bool = False
    quiet: bool = False
    color: bool | None = None
    diff: bool = False  # show each step's diff (apply/phase --diff; -v shows them too)
