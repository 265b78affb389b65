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

from talos_sim.model import Lab

ENV_VAR = "TALOS_SIM_STATE"


class StateFile:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        # os.path, not pathlib: every talosctl call is a fresh process and imports add up
        self.path = os.fspath(path)
        self.lock_path = self.path + ".lock"

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
        with open(self.path) as handle:
            return Lab.from_dict(json.load(handle))

    def _store(self, lab: Lab, before: str | None = None) -> None:
        if before is None or _fingerprint(lab) != before:
            from talos_sim import runtime  # lazy: parsing configs is the costly part of a call

            runtime.recompute(lab)  # the VIP follows every change, whoever made it
        tmp = self.path + ".tmp"
        with open(tmp, "w") as handle:
            json.dump(lab.to_dict(), handle, indent=1)
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
            before = _fingerprint(lab)
            yield lab
            self._store(lab, before)


def _fingerprint(lab: Lab) -> str:
    """Everything the VIP election depends on."""
    nodes = [(n.address, n.config, n.machinetype, n.version, [link.name for link in n.links]) for n in lab.nodes]
    return json.dumps([nodes, lab.etcd_bootstrapped, lab.holders])
