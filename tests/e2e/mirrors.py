"""Make the simulated systems agree with the real network.

- `VipMirror`: Talos elects the VIP holder in the simulator's state file; the mirror puts the VIP on
  that node's namespace (with the gratuitous ARP Talos sends), moves it on failover, removes it when
  no node holds it. Until labup's patch makes Talos bring the VIP up, nothing answers ARP for it.
- `PodMirror`: when Traefik's pod is Running and Ready on node X (a kubeemu.cluster hook), the stand-in
  HTTPS server (308 on :80, TLS on :443) starts in X's namespace; when the pod goes, it stops. A pod
  not on the host network is not mirrored: without hostNetwork nothing would answer on the node's
  address (the chart's Service is disabled), as on a real cluster.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .acme import Issuance
from .background import Background
from kubeemu.cluster import PodOnNode
from netlab import Issued, NetLab
from talos_sim.store import StateFile


class VipMirror(Background):
    """A thread polling the simulator's state file (cheap: it reparses only when the file changed)."""

    def __init__(self, net: NetLab, state: StateFile, vip: str, netns_by_address: dict[str, str],
                 interval: float = 0.01) -> None:
        self.net, self.state, self.vip = net, state, vip
        self.netns_by_address = dict(netns_by_address)
        self.interval = interval
        self.holder: str | None = None  # the netlab node the VIP is on now
        self.moves: list[str | None] = []  # every holder it applied, in order (None: removed)
        self.errors: list[str] = []
        self._changed = threading.Condition()
        super().__init__("vip-mirror")

    def start(self) -> VipMirror:
        self._sync()  # the state as it is now, before anything runs
        super().start()
        return self

    def wait_for(self, netns: str | None, timeout: float = 5.0) -> bool:
        """Until the VIP is on `netns` (None: on no node)."""
        with self._changed:
            return self._changed.wait_for(lambda: self.holder == netns, timeout)

    def _loop(self) -> None:
        seen: tuple[int, int, int] | None = None
        while not self._stop.wait(self.interval):
            try:
                st = os.stat(self.state.path)
            except FileNotFoundError:
                continue
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)  # the file is replaced on every write
            if stamp != seen:
                seen = stamp
                self._sync()

    def _sync(self) -> None:
        try:
            address = self.state.read().holders.get(self.vip)
            target = self.netns_by_address.get(address) if address else None
            if address and target is None:
                raise RuntimeError(f"Talos elected {address}, which has no namespace in this lab")
            if target == self.holder:
                return
            if target is None:
                self.net.remove_vip()
            elif self.holder is None:
                self.net.add_vip(target, self.vip)
            else:
                self.net.move_vip(target)
        except Exception as exc:  # reported through .errors: the lab's close() asserts it is empty
            self.errors.append(repr(exc))
            return
        with self._changed:
            self.holder = target
            self.moves.append(target)
            self._changed.notify_all()


@dataclass
class PodMirror:
    """Stand-in servers for pods, one per node (two pods on one node share it; it stops with the last)."""

    net: NetLab
    netns_by_node: dict[str, str]  # Kubernetes node name -> netlab node
    cert: Issued  # what the stand-in presents when `decide` is None
    follow: Callable[[PodOnNode], bool]  # which pods are Traefik
    # Traefik's ACME behaviour (e2e.acme.AcmeSim.decide): which certificate, and from when
    decide: Callable[[PodOnNode], Issuance] | None = None
    forget: Callable[[PodOnNode], None] | None = None
    log: list[tuple[str, str, str]] = field(default_factory=list)  # ("start"|"stop", netns, pod name)
    _pods: dict[str, set[str]] = field(default_factory=dict)  # netns -> uids of pods served there
    _servers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def on_running(self, pod: PodOnNode) -> None:
        if not self.follow(pod) or not pod.host_network:
            return
        netns = self.netns_by_node[pod.node]
        with self._lock:
            uids = self._pods.setdefault(netns, set())
            uids.add(pod.uid)
            if netns not in self._servers:
                if self.decide is None:
                    self._servers[netns] = self.net.start_standin(netns, self.cert.cert_path, self.cert.key_path)
                else:
                    plan = self.decide(pod)
                    acme = (plan.issued.cert_path, plan.issued.key_path, plan.flag) if plan.issued else None
                    self._servers[netns] = self.net.start_standin(netns, plan.default.cert_path,
                                                                  plan.default.key_path, acme=acme)
                self.log.append(("start", netns, pod.name))

    def on_gone(self, pod: PodOnNode) -> None:
        netns = self.netns_by_node.get(pod.node)
        with self._lock:
            uids = self._pods.get(netns or "", set())
            if pod.uid not in uids:
                return
            uids.discard(pod.uid)
            if self.forget is not None:
                self.forget(pod)
            if not uids and netns in self._servers:
                _terminate(self._servers.pop(netns))
                self.log.append(("stop", netns, pod.name))

    def serving(self) -> list[str]:
        """Namespaces where a stand-in runs now."""
        with self._lock:
            return sorted(n for n, p in self._servers.items() if p.poll() is None)

    def wait_serving(self, expected: list[str], timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while self.serving() != sorted(expected):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def stop_all(self) -> None:
        with self._lock:
            for proc in self._servers.values():
                _terminate(proc)
            self._servers.clear()
            self._pods.clear()


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=3)
    if proc.stdout:
        proc.stdout.close()
