"""One labup run per lab at a time: an flock'ed file under .labup/ naming its holder.

The kernel drops an flock when its process dies, so a lock left by a killed run is recovered
safely: the next run gets the lock and says whose stale record it replaced.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from labup.engine.journal import open_state_file
from labup.errors import LockHeld


class LabLock:
    def __init__(self, state_dir: Path, run_id: str) -> None:
        self.path = state_dir / "lock"
        self.run_id = run_id
        self._fd: int | None = None
        self.recovered_from: dict[str, Any] | None = None

    def acquire(self) -> LabLock:
        fd = open_state_file(self.path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd)
            os.close(fd)
            since = holder.get("since", "?")
            raise LockHeld(
                f"another labup run holds this lab's lock: pid {holder.get('pid', '?')} on "
                f"{holder.get('host', '?')} since {since} ({holder.get('command', '?')})",
                hint=f"wait for it to finish; the lock is {self.path}") from None
        previous = _read(fd)
        if previous.get("pid"):
            self.recovered_from = previous  # its process is gone: the kernel released its flock
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "run": self.run_id}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        self._fd = fd
        return self

    def set_command(self, command: str) -> None:
        if self._fd is not None:
            record = _read(self._fd) | {"command": command}
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, json.dumps(record).encode(), 0)

    def release(self) -> None:
        if self._fd is None:
            return
        os.ftruncate(self._fd, 0)  # an empty lock file means "released cleanly"
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> LabLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read(fd: int) -> dict[str, Any]:
    try:
        raw = os.pread(fd, 4096, 0)
        data = json.loads(raw) if raw.strip() else {}
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}
