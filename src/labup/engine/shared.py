"""What one run reads once and shares: adapters and fact snapshots, by name, created on first use.

Phases (through Context) and verify's checks (through CheckContext, from several threads at once)
hold the same `RunShared`, so `labup apply` reads a fact once for all its phases and checks.
A snapshot drops what a write changed itself (see labup.facts); `drop(name)` forgets a whole object.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class RunShared:
    def __init__(self) -> None:
        self._lock = threading.RLock()  # a factory may ask for another shared object
        self._objects: dict[str, Any] = {}

    def get(self, name: str, factory: Callable[[], T]) -> T:
        """The object called `name`, made by `factory()` the first time (once, whichever thread asks)."""
        with self._lock:
            if name not in self._objects:
                self._objects[name] = factory()
            return self._objects[name]  # type: ignore[no-any-return]

    def drop(self, name: str) -> None:
        with self._lock:
            self._objects.pop(name, None)
