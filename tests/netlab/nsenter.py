"""Run Python code inside a network namespace from the test process itself.

Python 3.11 has no ``os.setns``, so we call libc's ``setns(2)`` through ctypes. A network namespace
switch applies to the calling *thread* only, so each call runs in a fresh thread: the test's own threads
stay in the root namespace, while any socket created in the worker thread belongs to the target
namespace for its whole life (and can then be served from any thread).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = "/run/netns"

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.setns.restype = ctypes.c_int


def setns_current_thread(netns_name: str) -> None:
    """Move the calling thread into the named netns (as created by ``ip netns add``)."""
    fd = os.open(os.path.join(NETNS_RUN_DIR, netns_name), os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({netns_name}): {os.strerror(err)}")
    finally:
        os.close(fd)


def call_in_netns(netns_name: str, fn: Callable[[], T], timeout: float = 30.0) -> T:
    """Run ``fn()`` in a new thread that lives in ``netns_name``; return its result or re-raise."""
    box: dict[str, object] = {}

    def runner() -> None:
        try:
            setns_current_thread(netns_name)
            box["result"] = fn()
        except BaseException as exc:  # handed back to the caller's thread below
            box["error"] = exc

    # daemon: a stuck fn must never keep the test process (and its namespaces) alive
    thread = threading.Thread(target=runner, name=f"netns-{netns_name}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"call_in({netns_name}) did not return within {timeout} s")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["result"]  # type: ignore[return-value]
