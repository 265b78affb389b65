"""Where the files labup applies live: the top-level `phases/` folder (Talos patch templates,
Traefik values template, chart pin), packaged as `labup/_templates` in a wheel."""

from __future__ import annotations

from functools import cache
from pathlib import Path


@cache
def templates_dir() -> Path:
    packaged = Path(__file__).parent / "_templates"
    if packaged.is_dir():
        return packaged
    # editable install / source checkout: <repo>/src/labup/resources.py -> <repo>/phases
    return Path(__file__).resolve().parents[2] / "phases"


def template(*parts: str) -> Path:
    return templates_dir().joinpath(*parts)


def example_lab() -> Path:
    packaged = templates_dir() / "lab.yaml"
    if packaged.is_file():
        return packaged
    return Path(__file__).resolve().parents[2] / "examples" / "lab.yaml"
