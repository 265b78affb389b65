"""The run journal: one JSON line per event under .labup/ (DESIGN.md §3), never a secret.

The journal is read as untrusted input: a line that is not a JSON object of the expected shape is
counted and skipped, never a crash; every entry names the lab it belongs to (`config.lab_identity`), so a
journal copied from another lab (`cp -r lab1 lab2`, a `.labup/` committed to a repository) is told
apart and never acted on. State files are opened without following symlinks.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import stat
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labup.errors import ConfigError
from labup.redact import redact_obj

MAX_LINE = 256 * 1024  # a journal line is a few hundred bytes: more is not labup's


def ensure_state_dir(state_dir: Path) -> Path:
    """Create .labup/ with mode 0700 (it names what labup changed in the lab). A symlink or a file
    in its place is refused: labup would otherwise chmod or write wherever it points."""
    try:
        state_dir.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise ConfigError("", f"{state_dir}: cannot create labup's state folder ({exc.strerror})",
                          hint="the folder of lab.yaml must be writable") from None
    info = os.lstat(state_dir)
    if stat.S_ISLNK(info.st_mode):
        raise ConfigError("", f"{state_dir}: is a symbolic link; labup's state folder must be a real folder",
                          hint="remove the link (labup never follows it)")
    if not stat.S_ISDIR(info.st_mode):
        raise ConfigError("", f"{state_dir}: is not a folder; labup keeps its journal and lock there",
                          hint="move that file away")
    os.chmod(state_dir, 0o700, follow_symlinks=False)
    return state_dir


def open_state_file(path: Path, flags: int) -> int:
    """os.open of a regular file that never follows a symlink (O_NOFOLLOW) nor blocks (a FIFO): anything
    else in labup's state folder is bad input, exit 2, naming it."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ConfigError("", f"{path}: is a symbolic link; labup never follows one in its state folder",
                              hint="remove the link") from None
        if exc.errno in (errno.EISDIR, errno.ENXIO):
            raise ConfigError("", f"{path}: is not a regular file", hint="remove it") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ConfigError("", f"{path}: is not a regular file (a folder, FIFO or device)", hint="remove it")
    os.set_blocking(fd, True)
    return fd


@dataclass(frozen=True)
class PendingUndo:
    run: str
    phase: str
    step: str
    undo: dict[str, Any]
    at: str
    foreign: str | None = None  # why this entry cannot be proven to be this lab's


@dataclass
class Reading:
    """The journal as read: its usable events, and how many lines could not be used."""

    events: list[dict[str, Any]] = field(default_factory=list)
    unusable: list[int] = field(default_factory=list)  # line numbers


class Journal:
    def __init__(self, state_dir: Path, run_id: str | None = None, lab_id: str | None = None) -> None:
        self.path = state_dir / "journal.jsonl"
        self.run_id = run_id or time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        self.lab_id = lab_id

    def write(self, event: str, **fields: Any) -> None:
        """Append one event; flushed and fsynced so a killed run still leaves a true journal."""
        record = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "run": self.run_id, "event": event,
                  **({"lab": self.lab_id} if self.lab_id else {}), **redact_obj(fields)}
        line = json.dumps(record, sort_keys=False, default=str) + "\n"
        fd = open_state_file(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self) -> Reading:
        """Every line that is a JSON object with an `event`; the numbers of the others."""
        out = Reading()
        try:
            fd = open_state_file(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return out
        with os.fdopen(fd, "rb") as fh:
            number = 0
            while raw := fh.readline(MAX_LINE + 1):  # a line is never read whole past the bound
                number += 1
                if len(raw) > MAX_LINE and not raw.endswith(b"\n"):
                    while (rest := fh.readline(MAX_LINE)) and not rest.endswith(b"\n"):
                        pass  # skip the rest of an over-long line, a bounded piece at a time
                    out.unusable.append(number)
                    continue
                if not raw.strip():
                    continue
                try:
                    ev = json.loads(raw.decode("utf-8"))
                except (ValueError, RecursionError, UnicodeDecodeError):
                    out.unusable.append(number)  # a line cut by a crash, or not labup's
                    continue
                if isinstance(ev, dict) and isinstance(ev.get("event"), str) and isinstance(ev.get("run", ""), str):
                    out.events.append(ev)
                else:
                    out.unusable.append(number)
        return out

    def set_aside(self) -> Path | None:
        """Rename a journal that is not wholly this lab's (kept for reading); the next write starts anew."""
        if not self.path.exists():
            return None
        kept = self.path.with_name(f"journal.{time.strftime('%Y%m%dT%H%M%S')}.set-aside.jsonl")
        os.rename(self.path, kept)
        return kept

    def start(self, command: str, phases: list[str]) -> None:
        self.write("run-start", command=command, phases=phases, pid=os.getpid(),
                   host=socket.gethostname())

    def events(self) -> Iterator[dict[str, Any]]:
        yield from self.read().events

    def foreign(self, reading: Reading | None = None) -> bool:
        """True when some entry names another lab (or none: written before labs were named)."""
        events = (reading or self.read()).events
        return any(ev.get("lab") != self.lab_id for ev in events) if self.lab_id else False

    def pending_undos(self, phase: str | None = None, reading: Reading | None = None) -> list[PendingUndo]:
        """Applied changes not undone yet, newest first (what `labup rollback` would undo). Entries
        whose lab is not this one carry `foreign`: reported, never executed."""
        applied: dict[tuple[str, str, str], PendingUndo] = {}
        for ev in (reading or self.read()).events:
            key = (str(ev.get("run", "")), str(ev.get("phase", "")), str(ev.get("step", "")))
            if ev.get("event") == "applied" and isinstance(ev.get("undo"), dict):
                foreign = None
                if self.lab_id and ev.get("lab") != self.lab_id:
                    foreign = ("written for another lab (a copied or hand-edited journal)" if ev.get("lab")
                               else "not marked with this lab's identity (an old or hand-written entry)")
                applied[key] = PendingUndo(*key, ev["undo"], str(ev.get("ts", "")), foreign)
            elif ev.get("event") == "undone":
                applied.pop((str(ev.get("of_run", key[0])), key[1], key[2]), None)
        pending = [p for p in applied.values() if phase in (None, p.phase)]
        return list(reversed(pending))
