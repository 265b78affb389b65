"""What tests see of the traffic: a request log to count writes, and injected faults."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    query: dict[str, str]
    content_type: str
    status: int
    user_agent: str = ""

    @property
    def is_write(self) -> bool:
        return self.method in WRITE_METHODS

    @property
    def is_watch(self) -> bool:
        return self.query.get("watch") in ("true", "1")


class RequestLog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[LoggedRequest] = []

    def add(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._entries.append(entry)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def entries(self, method: str | None = None, path: str | None = None,
                writes_only: bool = False) -> list[LoggedRequest]:
        """Filter by method and a regex searched in the path (`re.search`)."""
        rx = re.compile(path) if path else None
        with self._lock:
            return [e for e in self._entries
                    if (method is None or e.method == method)
                    and (rx is None or rx.search(e.path))
                    and (not writes_only or e.is_write)]


@dataclass
class Fault:
    method: str  # "*" for any
    path: re.Pattern[str]
    status: int
    remaining: int
    message: str = field(default="")
    # "": answer `status`. "eof"/"reset": serve the request (the write is committed), then close the
    # connection without an answer (a clean close: the client reads EOF; a reset: RST), as an API
    # server or a proxy dying between committing and answering would.
    drop: str = field(default="")

    def matches(self, method: str, path: str) -> bool:
        return self.remaining > 0 and self.method in ("*", method) and bool(self.path.search(path))


class FaultInjector:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, method: str, path: str, status: int, count: int = 1, message: str = "",
            drop: str = "") -> Fault:
        fault = Fault(method.upper(), re.compile(path), status, count, message, drop)
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, method: str, path: str) -> Fault | None:
        """The first armed fault matching this request, consuming one of its shots."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.remaining -= 1
                    return fault
        return None

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
