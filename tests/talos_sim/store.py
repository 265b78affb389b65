"""The lab state file shared by the test process and every `talosctl` subprocess.

Read-modify-write happens under an exclusive fcntl lock on a sibling `.lock` file, so parallel
talosctl calls (labup may fan out over nodes) never lose each other's updates.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from talos_sim import runtime
from talos_sim.model import Lab

ENV_VAR = "TALOS_SIM_STATE"


class StateFile:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")

    @classmethod
    def from_env(cls) -> StateFile:
        value = os.environ.get(ENV_VAR)
        if not value:
            raise RuntimeError(f"{ENV_VAR} is not set: the talosctl simulator needs a state file")
        return cls(value)

    @contextmanager
    def _lock(self, mode: int) -> Iterator[None]:
        with open(self.lock_path, "a+") as handle:
            fcntl.flock(handle, mode)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _load(self) -> Lab:
        return Lab.from_dict(json.loads(self.path.read_text()))

    def _store(self, lab: Lab) -> None:
        runtime.recompute(lab)  # the VIP follows every change, whoever made it
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(lab.to_dict(), indent=1))
        os.replace(tmp, self.path)  # atomic: a reader never sees half a file

    def read(self) -> Lab:
        with self._lock(fcntl.LOCK_SH):
            return self._load()

    def write(self, lab: Lab) -> None:
        with self._lock(fcntl.LOCK_EX):
            self._store(lab)

    @contextmanager
    def edit(self) -> Iterator[Lab]:
        """Hold the lock, hand out the lab, write it back (recomputed) when the block ends."""
        with self._lock(fcntl.LOCK_EX):
            lab = self._load()
            yield lab
            self._store(lab)
