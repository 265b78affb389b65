"""What Talos says about the lab's nodes, read once per run, each fact for all nodes in one talosctl call.

`talosctl -n A,B,C get KIND -o json` asks every node through one endpoint (its apid proxies to each)
and tags every object with the `node` it came from, so a fact costs one call however many nodes the
lab has. Kinds: links, addresses, nodename, machineconfig (also the node's role: `machine.type`, what
Talos' own MachineTypeController reads), version (`Versions.runtime.talos.dev`, Talos >= 1.10).

A node that fails does not hide the others. talosctl <= 1.13 prints the others' objects and an error
naming no node; talosctl 1.14 prints nothing when any node fails (`<node>: error getting server
version`): the nodes that were only collateral are asked again on their own, once.

A write invalidates what it changed (`drop`): a patch drops that node's config and everyone's
addresses (the VIP may move). Values are per (kind, node): a failure is kept too, so an unreachable
node is retried by the policy once, not again by every step that asks.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from labup.adapters.talos import (
    Address,
    Link,
    MachineConfig,
    TalosAdapter,
    TalosFailed,
    load_config,
    parse_address,
    parse_link,
)
from labup.errors import LabupError, TransientError, Unreadable

if TYPE_CHECKING:
    from labup.config import Lab

    Retry = Callable[[Callable[[], Any], str], Any]

KINDS = ("links", "addresses", "nodename", "machineconfig", "version")
_RESOURCE = {"machineconfig": ("machineconfig", "v1alpha1"), "version": ("version", "version")}


SHARED_NAME = "talos-facts"


class TalosFacts:
    """One per run (RunShared "talos-facts"); safe to use from verify's concurrent checks."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self._lock = threading.Lock()
        self._kind_locks = {kind: threading.Lock() for kind in KINDS}
        self._known: dict[tuple[str, str], Any] = {}  # (kind, node address) -> value or LabupError
        self._stopping = threading.Event()

    # -- the facts --------------------------------------------------------------------------------

    def links(self, node: str, **how: Any) -> list[Link]:
        return [parse_link(r) for r in self._get("links", node, **how)]

    def addresses(self, node: str, **how: Any) -> list[Address]:
        return [parse_address(r) for r in self._get("addresses", node, **how)]

    def nodename(self, node: str, **how: Any) -> str:
        for res in self._get("nodename", node, **how):
            spec = res.get("spec") or {}
            if isinstance(spec, dict) and spec.get("nodename"):
                return str(spec["nodename"])
        raise TalosFailed(f"talosctl get nodename on {node}: no node name in the answer", detail="no nodename")

    def machineconfig(self, node: str, **how: Any) -> MachineConfig:
        """The running config, parsed in memory only (its text is the cluster's secrets)."""
        found = self._get("machineconfig", node, **how)
        spec = found[0].get("spec") if found else None
        if not isinstance(spec, str):
            raise TalosFailed(f"talosctl get machineconfig on {node}: no config in the answer", detail="no config")
        return MachineConfig(load_config(spec, node))

    def machinetype(self, node: str, **how: Any) -> str:
        """controlplane | init | worker, from the config's machine.type; `unknown` when it has none."""
        v1 = next((d for d in self.machineconfig(node, **how).documents if not d.get("kind")), {})
        kind = (v1.get("machine") or {}).get("type")
        return str(kind) if kind else "unknown"

    def version(self, node: str, **how: Any) -> str:
        """The Talos tag the node runs, e.g. `v1.13.0`."""
        for res in self._get("version", node, **how):
            spec = res.get("spec") or {}
            if isinstance(spec, dict) and spec.get("version"):
                return str(spec["version"])
        raise TalosFailed(f"talosctl get version on {node}: no version in the answer (Talos < 1.10?)",
                          detail="no version", hint="labup supports Talos 1.10 and newer")

    def prefetch(self, kinds: tuple[str, ...], **how: Any) -> None:
        """Read these facts for all nodes at once, concurrently (the calls wait on the network, not
        on Python); failures are kept and raised to whoever asks for that fact."""
        first = self.lab.nodes[0].address
        # not daemons: a daemon stopped at exit can leave a talosctl (and its timeout timer) behind
        readers = [threading.Thread(target=self._quietly, args=(kind, first, how), name=f"labup-talos-{kind}")
                   for kind in kinds if not all(self.known(kind, n.address) for n in self.lab.nodes)]
        for thread in readers:
            thread.start()
        try:
            for thread in readers:
                thread.join()
        except BaseException:  # interrupted: the readers finish the call they are in, start no other
            self._stopping.set()
            raise

    def _quietly(self, kind: str, node: str, how: dict[str, Any]) -> None:
        # any failure, even a signal's (the child got the Ctrl-C too): whoever asks later meets it
        with contextlib.suppress(Exception):
            self._get(kind, node, **how)

    # -- invalidation -----------------------------------------------------------------------------

    def drop(self, kind: str, node: str | None = None) -> None:
        """Forget a fact (of one node, or of all) so the next read asks Talos again."""
        with self._lock:
            for key in [k for k in self._known if k[0] == kind and (node is None or k[1] == node)]:
                del self._known[key]

    def known(self, kind: str, node: str) -> bool:
        with self._lock:
            return (kind, node) in self._known

    # -- plumbing ---------------------------------------------------------------------------------

    def _get(self, kind: str, node: str, *, retry: Retry | None = None, timeout: float | None = None
             ) -> list[dict[str, Any]]:
        """The node's objects of `kind`; the first ask reads every lab node still unknown at once.

        retry: the phases' policy (ctx.retry); None: one attempt (verify's checks, under a deadline).
        timeout: seconds for the talosctl call (default talos.timeout_s)."""
        with self._kind_locks[kind]:
            if not self.known(kind, node):
                wanted = [n.address for n in self.lab.nodes if not self.known(kind, n.address)]
                if node not in wanted:
                    wanted.append(node)
                self._load(kind, wanted, retry, timeout)
        with self._lock:
            found = self._known[(kind, node)]
        if isinstance(found, LabupError):
            raise found
        return found  # type: ignore[no-any-return]

    def _load(self, kind: str, nodes: list[str], retry: Retry | None, timeout: float | None) -> None:
        adapter = TalosAdapter(self.lab, timeout_s=timeout)
        resource, rid = _RESOURCE.get(kind, (kind, None))
        pending = list(nodes)

        def attempt() -> None:
            if self._stopping.is_set():
                raise Unreadable("labup is stopping: not asked")
            answer = adapter.get_each(pending, resource, rid)
            collateral = [n for n in answer.failed if _collateral(answer.failed[n], n, answer.failed)]
            if collateral and len(collateral) < len(pending):  # talosctl 1.14: one node failed them all
                again = adapter.get_each(collateral, resource, rid)
                answer.found.update(again.found)
                for n in collateral:
                    answer.failed.pop(n, None)
                answer.failed.update(again.failed)
            self._keep(kind, answer.found)
            transient = [n for n, exc in answer.failed.items() if isinstance(exc, TransientError)]
            self._keep(kind, {n: exc for n, exc in answer.failed.items() if n not in transient})
            pending[:] = transient
            if transient:
                raise answer.failed[transient[0]]

        try:
            if retry is None:
                attempt()
            else:
                retry(attempt, f"talos: get {resource} on {', '.join(pending)}")
        except (TransientError, Unreadable) as exc:
            self._keep(kind, {n: exc for n in pending})
        except LabupError as exc:  # the whole call failed the same way for everyone (no talosctl, TLS)
            self._keep(kind, {n: exc for n in pending})

    def _keep(self, kind: str, values: dict[str, Any]) -> None:
        with self._lock:
            for node, value in values.items():
                self._known[(kind, node)] = value


def _collateral(exc: LabupError, node: str, failed: dict[str, LabupError]) -> bool:
    """This node's error names another node and not this one: it failed because that one did."""
    text = exc.message.split(": ", 1)[-1]
    names_other = any(other != node and text.startswith(f"{other}:") for other in failed)
    return names_other and not text.startswith(f"{node}:")


def facts(lab: Lab, shared: Any) -> TalosFacts:
    """The run's snapshot, from a RunShared."""
    return shared.get(SHARED_NAME, lambda: TalosFacts(lab))  # type: ignore[no-any-return]
