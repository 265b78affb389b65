"""Hostile input (issue 11): every file in tests/fixtures/hostile (made by tools/make_hostile_corpus.py)
and a few inputs that cannot be files in git (a FIFO, /dev/zero, a symlink loop, an over-long name)
go through the real `labup` command, in a network namespace of its own with nothing but a loopback
that is down: exit 2, one error naming what is wrong, no traceback, nothing written beside the file or
in HOME, within 2 s.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import LABUP

pytestmark = pytest.mark.root

CORPUS = Path(__file__).parent / "fixtures" / "hostile"
CASES = sorted(CORPUS.glob("*.yaml"))
BASE_LAB = yaml.safe_load("\n".join(line for line in (CORPUS / "lab-typo-traefk.yaml").read_text().splitlines()
                                    if not line.startswith("#")).replace("traefk:", "traefik:"))
LIMIT_S = 2.0


def expected(case: Path) -> str:
    sidecar = case.with_suffix(".expect")
    if sidecar.exists():
        return sidecar.read_text().strip()
    head = case.read_bytes().split(b"\n", 1)[0].decode()
    assert head.startswith("# expect: "), case
    return head.removeprefix("# expect: ")


def snapshot(*folders: Path) -> set[str]:
    return {str(p) for folder in folders for p in folder.rglob("*")}


def run_isolated(args: list[str], home: Path, cwd: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    """The real CLI, alone in a fresh network namespace (no route anywhere), HOME empty."""
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(home), "NO_COLOR": "1",
           "LANG": "C.UTF-8"}
    start = time.monotonic()
    proc = subprocess.run(["unshare", "--net", "--", LABUP, *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=30, errors="replace")
    return proc, time.monotonic() - start


def assert_refused(proc: subprocess.CompletedProcess[str], elapsed: float, expect: str, named: str) -> None:
    err = proc.stderr
    assert proc.returncode == 2, (proc.returncode, err[-2000:])
    assert "Traceback" not in err and "internal error" not in err, err[-2000:]
    assert expect in err, f"{expect!r} not in {err[-2000:]!r}"
    assert named in err, f"the file {named!r} is not named in {err[-2000:]!r}"
    assert "\x1b" not in err and "\x07" not in err and "\x00" not in err  # nothing drives the terminal
    # stdout holds at most the run's header (what it would have talked to), never a plan or a result
    assert all(line.startswith("lab ") for line in proc.stdout.splitlines()), proc.stdout
    assert elapsed < LIMIT_S, f"took {elapsed:.2f}s"


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 100


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_hostile_file_is_refused(case: Path, tmp_path: Path) -> None:
    work, home = tmp_path / "lab", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    if case.name.startswith("values-"):
        values = work / "values.yaml"
        shutil.copyfile(case, values)
        lab = work / "lab.yaml"
        lab.write_text(yaml.safe_dump({**BASE_LAB, "traefik": {**BASE_LAB["traefik"], "values": str(values)}}))
        named = "values.yaml"
    else:
        lab = work / "my-lab.yaml"  # not lab.yaml: errors must name the file given
        shutil.copyfile(case, lab)
        named = "my-lab.yaml"
    before = snapshot(work, home)
    proc, elapsed = run_isolated(["-c", str(lab), "apply", "--dry-run"], home, work)
    assert_refused(proc, elapsed, expected(case), named)
    assert snapshot(work, home) == before


def _valid(tmp: Path) -> Path:
    lab = tmp / "lab.yaml"
    lab.write_text(yaml.safe_dump(BASE_LAB))
    return lab


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "symlink-loop", "long-name", "directory", "under-a-file",
                                  "dangling-symlink", "no-permission"])
def test_hostile_path_is_refused(kind: str, tmp_path: Path) -> None:
    work, home = tmp_path / "lab", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    valid = _valid(work)
    target: Path | str
    expect = {"fifo": "not a regular file", "dev-zero": "not a regular file", "symlink-loop": "symbolic links",
              "long-name": "too long", "directory": "is a directory", "under-a-file": "not a directory",
              "dangling-symlink": "no such file", "no-permission": "permission denied"}[kind]
    if kind == "fifo":
        target = work / "lab-fifo.yaml"
        os.mkfifo(target)
    elif kind == "dev-zero":
        target = "/dev/zero"
    elif kind == "symlink-loop":
        (work / "a.yaml").symlink_to(work / "b.yaml")
        (work / "b.yaml").symlink_to(work / "a.yaml")
        target = work / "a.yaml"
    elif kind == "long-name":
        target = work / ("x" * 300 + ".yaml")
    elif kind == "directory":
        target = work
    elif kind == "under-a-file":
        target = valid / "x"
    elif kind == "dangling-symlink":
        (work / "gone.yaml").symlink_to(work / "nowhere.yaml")
        target = work / "gone.yaml"
    else:
        target = work / "locked.yaml"
        shutil.copyfile(valid, target)
        target.chmod(0)
        if os.geteuid() == 0:  # root reads it anyway: drop to nobody for this one
            work.chmod(0o755)
            tmp_path.chmod(0o755)
            home.chmod(0o777)
    before = snapshot(work, home)
    args = ["-c", str(target), "apply", "--dry-run"]
    if kind == "no-permission" and os.geteuid() == 0:
        env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(home), "NO_COLOR": "1"}
        start = time.monotonic()
        proc = subprocess.run(["unshare", "--net", "--", "setpriv", "--reuid=65534", "--regid=65534",
                               "--clear-groups", LABUP, *args], capture_output=True, text=True, env=env,
                              cwd=work, timeout=30)
        elapsed = time.monotonic() - start
    else:
        proc, elapsed = run_isolated(args, home, work)
    assert_refused(proc, elapsed, expect, str(target)[:100])
    assert snapshot(work, home) == before
