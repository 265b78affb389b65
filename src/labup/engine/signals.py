"""SIGINT/SIGTERM/SIGHUP become an Interrupted exception during a run, and are held off during rollback.

SIGHUP is what a dropped SSH session or a closed terminal sends: it must roll back like SIGTERM, not
end the run silently with its lock and a half-done helm upgrade left behind."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from labup.errors import Interrupted


class SignalGuard:
    """Raise Interrupted in the main thread on SIGINT/SIGTERM/SIGHUP; while `shielded`, only record it."""

    def __init__(self, notify: Callable[[str], None]) -> None:
        self.notify = notify
        self.shielded = False
        self.received: str | None = None
        self._previous: dict[int, object] = {}

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.shielded:
            self.notify(f"{name} received during rollback: finishing the rollback first")
            self.received = self.received or name
            return
        self.received = name
        raise Interrupted(name)

    def __enter__(self) -> SignalGuard:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]

    @contextmanager
    def shield(self) -> Iterator[None]:
        self.shielded = True
        try:
            yield
        finally:
            self.shielded = False
