"""A daemon thread that polls until stopped: the shape of the lab's mirrors and of the ACME simulation."""

from __future__ import annotations

import threading


class Background:
    """Subclasses implement `_loop()` (checking `self._stop`) and may extend `start()`."""

    def __init__(self, name: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def _loop(self) -> None:
        raise NotImplementedError

    def start(self) -> Background:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
