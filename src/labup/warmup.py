"""Import the heavy libraries a run will need in the background, while it waits on the network.

The kubernetes client takes ~0.25 s to import, jsonschema ~0.1 s; an apply first spends longer than
that waiting for talosctl. A thread that imports them meanwhile makes the later import free. The real
user calls `ready()` first: importing a package while another thread is half-way through it can see
it half-initialised (kubernetes.config imports names from kubernetes.client). Not a daemon: exit waits
for it (bounded), so the interpreter never stops in the middle of an import.
"""

from __future__ import annotations

import contextlib
import importlib
import threading

KUBERNETES = ("kubernetes.client", "kubernetes.config")
SCHEMA = ("jsonschema",)  # the traefik phase checks its values against the chart's schema (~0.1 s)


_RUNNING: list[threading.Thread] = []


def ready() -> None:
    """Wait until the background imports (if any) are done; then importing them is safe and free."""
    for thread in list(_RUNNING):
        thread.join()


def start(modules: tuple[str, ...]) -> threading.Thread:
    def run() -> None:
        for name in modules:
            with contextlib.suppress(Exception):  # a failure is met (and said) again by the real user
                importlib.import_module(name)

    thread = threading.Thread(target=run, name="labup-warmup")
    _RUNNING.append(thread)
    thread.start()
    return thread
