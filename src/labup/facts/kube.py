"""Kubernetes objects labup reads more than once in a run, read once: Traefik's namespace, its
workload and its pods.

Kept in the run's RunShared ("kube-reads"), so the namespace and traefik phases and verify's checks
(inside `labup apply`, the same RunShared) share one reading. Each read takes the adapter to use on a
miss (a phase passes the run's, a check one bounded by its deadline). Only answers are kept: a failed
read is tried again by whoever asks next (the retry policy decides how often).

A write labup makes drops what it changed: the namespace step's create/label/delete drops the
namespace; a helm write, and the pod step's wait for a rollout, drop the namespace's workloads and
pods, so the runner's check after the change and verify read them afresh. A converged run (no write,
no wait) shares one reading between the pod step and verify.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labup.adapters.kube import KubeAdapter
    from labup.engine.shared import RunShared

Obj = dict[str, Any]
SHARED_NAME = "kube-reads"
_Key = tuple[str, ...]


class _Slot:
    def __init__(self) -> None:
        self.lock = threading.Lock()  # one reader per object; others wait for its answer
        self.filled = False
        self.value: Any = None


class KubeReads:
    """One per run (RunShared "kube-reads"); safe to use from verify's concurrent checks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[_Key, _Slot] = {}

    # -- reads ------------------------------------------------------------------------------------

    def namespace(self, k: KubeAdapter, name: str, *, fresh: bool = False) -> Obj | None:
        """The namespace, or None when it does not exist."""
        return self._get(("namespace", name), lambda: k.get_namespace(name), fresh)  # type: ignore[no-any-return]

    def workload(self, k: KubeAdapter, kind: str, namespace: str, name: str, *, fresh: bool = False) -> Obj | None:
        """A Deployment or DaemonSet, or None when absent."""
        return self._get(("workload", namespace, kind, name),  # type: ignore[no-any-return]
                         lambda: k.get_workload(kind, namespace, name), fresh)

    def pods(self, k: KubeAdapter, namespace: str, labels: Mapping[str, str], *, fresh: bool = False) -> list[Obj]:
        """The pods matching every label; one entry whatever order the labels come in."""
        pairs = sorted((str(key), str(value)) for key, value in labels.items())
        selector = ",".join(f"{key}={value}" for key, value in pairs)
        return self._get(("pods", namespace, selector),  # type: ignore[no-any-return]
                         lambda: k.list_pods(namespace, label_selector=selector), fresh)

    # -- what a write changed ---------------------------------------------------------------------

    def forget_namespace(self, name: str) -> None:
        self._forget(lambda key: key[:2] == ("namespace", name))

    def forget_workloads(self, namespace: str) -> None:
        """The namespace's workloads and pods (after a helm write, during and after a rollout)."""
        self._forget(lambda key: key[0] in ("workload", "pods") and key[1] == namespace)

    # -- plumbing ---------------------------------------------------------------------------------

    def _get(self, key: _Key, read: Callable[[], Any], fresh: bool) -> Any:
        with self._lock:
            if fresh:
                self._slots.pop(key, None)
            slot = self._slots.setdefault(key, _Slot())
        with slot.lock:
            if not slot.filled:
                value = read()  # an error leaves the slot empty: the next caller reads again
                with self._lock:
                    if self._slots.get(key) is slot:  # not dropped by a write meanwhile
                        slot.value, slot.filled = value, True
                return copy.deepcopy(value)
            return copy.deepcopy(slot.value)  # a caller's edits never reach the others

    def _forget(self, match: Callable[[_Key], bool]) -> None:
        with self._lock:
            for key in [key for key in self._slots if match(key)]:
                del self._slots[key]


def kube_reads(shared: RunShared) -> KubeReads:
    """The run's KubeReads."""
    return shared.get(SHARED_NAME, KubeReads)
