"""NetLab: a throw-away Layer-2 network of real Linux network namespaces.

Topology (nothing is ever added to the root namespace):

    <prefix>br   bridge namespace: br0 with one veth port per node (port named after the node)
    <prefix>cp   control plane  ens18 192.0.2.10/24   (the VIP goes here first)
    <prefix>wk   worker         ens18 192.0.2.11/24
    <prefix>cl   client         ens18 192.0.2.100/24  (where labup's checks run)

Only 192.0.2.0/24 (TEST-NET-1) is used, and no namespace has a route out, so no packet can leave.
Cleanup is layered: ``close()`` on exit of the ``with`` block, an ``atexit`` hook for anything still
open, and ``sweep_stale()`` at the next start for namespaces of processes that were SIGKILLed.
"""

from __future__ import annotations

import atexit
import ipaddress
import itertools
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .garp import send_garp
from .nsenter import NETNS_RUN_DIR, call_in_netns

T = TypeVar("T")

NAME_PREFIX = "nlab-"  # every namespace this harness makes starts with it; nothing else does
LAB_NET = ipaddress.ip_network("192.0.2.0/24")
DEFAULT_VIP = "192.0.2.250"
IFNAME = "ens18"  # as on the Talos lab nodes
STANDIN_SERVER = Path(__file__).with_name("standin_server.py")
_STALE_RE = re.compile(rf"^{re.escape(NAME_PREFIX)}(\d+)-")


class NetLabError(RuntimeError):
    pass


@dataclass(frozen=True)
class Node:
    name: str  # short: it is also the bridge port's interface name (<= 15 chars)
    ip: str
    mac: str  # locally administered (02:...), so it can never clash with real hardware


DEFAULT_NODES: tuple[Node, ...] = (
    Node("cp", "192.0.2.10", "02:6c:61:62:00:0a"),
    Node("wk", "192.0.2.11", "02:6c:61:62:00:0b"),
    Node("cl", "192.0.2.100", "02:6c:61:62:00:64"),
)


def _in_lab_net(addr: str) -> str:
    if ipaddress.ip_address(addr) not in LAB_NET:
        raise NetLabError(f"{addr} is outside {LAB_NET}: the lab only ever uses TEST-NET-1")
    return addr


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if check and proc.returncode != 0:
        raise NetLabError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc


def list_netns(prefix: str = NAME_PREFIX) -> list[str]:
    """Names under /run/netns starting with ``prefix`` (the default: every netlab namespace)."""
    try:
        return sorted(n for n in os.listdir(NETNS_RUN_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        return []


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale() -> list[str]:
    """Delete netlab namespaces (and scratch dirs) whose creating process is gone, e.g. a SIGKILLed run.

    Returns the namespace names removed."""
    removed = []
    for name in list_netns():
        m = _STALE_RE.match(name)
        if m and not _pid_alive(int(m.group(1))):
            _ip("netns", "del", name, check=False)
            removed.append(name)
    for path in Path(tempfile.gettempdir()).glob(f"{NAME_PREFIX}*"):  # the labs' scratch dirs
        m = _STALE_RE.match(path.name)
        if m and path.is_dir() and not _pid_alive(int(m.group(1))):
            shutil.rmtree(path, ignore_errors=True)
    return removed


_LIVE: set[NetLab] = set()
_SEQ = itertools.count(1)


@atexit.register
def _close_all() -> None:
    for lab in list(_LIVE):
        lab.close()


def install_sigterm_cleanup() -> None:
    """On SIGTERM, close every open lab, then die of SIGTERM as before (atexit does not run on it).

    Only installed over the default action, and only from the main thread (signal's rule)."""

    def handler(signum: int, frame: object) -> None:
        _close_all()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    try:
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        pass


class NetLab:
    """Context manager owning the namespaces, the VIP and the processes of one lab."""

    def __init__(self, nodes: Sequence[Node] = DEFAULT_NODES) -> None:
        for node in nodes:
            _in_lab_net(node.ip)
            if not re.fullmatch(r"[a-z][a-z0-9]{0,14}", node.name) or node.name == "br0":
                raise NetLabError(f"bad node name {node.name!r}")
        self.nodes: dict[str, Node] = {n.name: n for n in nodes}
        # pid in the name lets sweep_stale() tell a dead run's leftovers from a live parallel run
        self.prefix = f"{NAME_PREFIX}{os.getpid()}-{next(_SEQ)}-"
        self.bridge_ns = self.prefix + "br"
        self.vip: str | None = None
        self.vip_holder: str | None = None
        self._procs: list[subprocess.Popen[Any]] = []
        self._created: list[str] = []
        self._tmp: Path | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> NetLab:
        sweep_stale()
        _LIVE.add(self)
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _add_netns(self, name: str) -> None:
        _ip("netns", "add", name)
        self._created.append(name)
        _ip("-n", name, "link", "set", "lo", "up")
        # no IPv6: keeps the neighbour tables and the wire to the ARP we are testing
        call_in_netns(name, _disable_ipv6)

    def _build(self) -> None:
        self._tmp = Path(tempfile.mkdtemp(prefix=self.prefix))
        br = self.bridge_ns
        self._add_netns(br)
        # STP off (the default): ports forward at once instead of after forward_delay
        _ip("-n", br, "link", "add", "br0", "type", "bridge", "stp_state", "0")
        _ip("-n", br, "link", "set", "br0", "up")
        for node in self.nodes.values():
            ns = self.netns_of(node.name)
            self._add_netns(ns)
            # both veth ends are born in lab namespaces: the root namespace never sees them
            _ip("-n", br, "link", "add", node.name, "type", "veth", "peer", "name", IFNAME, "netns", ns)
            _ip("-n", br, "link", "set", node.name, "master", "br0", "up")
            _ip("-n", ns, "link", "set", IFNAME, "address", node.mac)
            _ip("-n", ns, "addr", "add", f"{node.ip}/{LAB_NET.prefixlen}", "dev", IFNAME)
            _ip("-n", ns, "link", "set", IFNAME, "up")

    def close(self) -> None:
        """Stop our processes and delete exactly the namespaces we created. Idempotent."""
        for proc in self._procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self._procs:
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=2)
            for stream in (proc.stdout, proc.stderr):
                if stream:
                    stream.close()
        self._procs.clear()
        for name in reversed(self._created):  # nodes first, the bridge last
            _ip("netns", "del", name, check=False)
        self._created.clear()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        self.vip = self.vip_holder = None
        _LIVE.discard(self)

    def namespaces(self) -> list[str]:
        """This lab's namespaces that exist right now."""
        return list_netns(self.prefix)

    # -- nodes -----------------------------------------------------------------------------------
    def _node(self, node: str) -> Node:
        try:
            return self.nodes[node]
        except KeyError:
            raise NetLabError(f"no node {node!r} in this lab (have {sorted(self.nodes)})") from None

    def netns_of(self, node: str) -> str:
        return self.prefix + self._node(node).name

    def mac_of(self, node: str) -> str:
        return self._node(node).mac

    def ip_of(self, node: str) -> str:
        return self._node(node).ip

    def run(self, node: str, argv: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        """``subprocess.run`` under ``ip netns exec``; captures text output, 30 s timeout unless given."""
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("timeout", 30)
        return subprocess.run(["ip", "netns", "exec", self.netns_of(node), *argv], **kw)

    def popen(self, node: str, argv: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
        """``subprocess.Popen`` under ``ip netns exec``; the lab kills it on close."""
        proc = subprocess.Popen(["ip", "netns", "exec", self.netns_of(node), *argv], **kw)
        self._procs.append(proc)
        return proc

    def call_in(self, node: str, fn: Callable[[], T], timeout: float = 30.0) -> T:
        """Run ``fn()`` in a thread inside the node's namespace. Sockets it creates stay in there;
        subprocesses it starts inherit the namespace too."""
        return call_in_netns(self.netns_of(node), fn, timeout)

    # -- the VIP ---------------------------------------------------------------------------------
    def add_vip(self, node: str, vip: str = DEFAULT_VIP, garp: bool = True) -> None:
        """Put ``vip``/32 on the node's ens18 and announce it with a gratuitous ARP, as Talos does."""
        if self.vip_holder is not None:
            raise NetLabError(f"the VIP is already on {self.vip_holder}: use move_vip()")
        n = self._node(node)
        _ip("-n", self.netns_of(node), "addr", "add", f"{_in_lab_net(vip)}/32", "dev", IFNAME)
        self.vip, self.vip_holder = vip, node
        if garp:
            self.call_in(node, lambda: send_garp(IFNAME, n.mac, vip))

    def remove_vip(self) -> None:
        if self.vip_holder is None or self.vip is None:
            return
        _ip("-n", self.netns_of(self.vip_holder), "addr", "del", f"{self.vip}/32", "dev", IFNAME)
        self.vip_holder = None

    def move_vip(self, to_node: str, garp: bool = True) -> None:
        """Graceful failover: drop the VIP on its holder, add it on ``to_node`` (+ gratuitous ARP)."""
        vip = self.vip or DEFAULT_VIP
        self.remove_vip()
        self.add_vip(to_node, vip, garp=garp)

    # -- neighbour table (how labup resolves the VIP's MAC without root) --------------------------
    def neighbour(self, node: str, addr: str) -> dict[str, Any] | None:
        """The node's neighbour entry for ``addr`` from ``ip -j neigh`` (None if there is none)."""
        out = _ip("-n", self.netns_of(node), "-j", "neigh", "show", "to", addr, "dev", IFNAME).stdout
        entries = json.loads(out or "[]")
        return entries[0] if entries else None

    def flush_neighbours(self, node: str) -> None:
        _ip("-n", self.netns_of(node), "neigh", "flush", "dev", IFNAME)

    def resolve_mac(self, node: str, addr: str, timeout: float = 3.5) -> str | None:
        """Resolve ``addr`` from ``node`` the unprivileged way; see ``arp_resolve``."""
        return self.call_in(node, lambda: arp_resolve(addr, timeout), timeout=timeout + 5)

    # -- stand-in Traefik ------------------------------------------------------------------------
    def start_standin(
        self,
        node: str,
        cert: Path,
        key: Path,
        bind: str = "0.0.0.0",
        http_port: int = 80,
        https_port: int = 443,
        timeout: float = 5.0,
        acme: tuple[Path, Path, Path] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start the stand-in HTTPS server in the node's namespace and wait until it listens.

        `acme` (cert, key, flag file): serve `cert` until the flag file exists, then that certificate."""
        if bind != "0.0.0.0":
            _in_lab_net(bind)
        assert self._tmp is not None
        log = self._tmp / f"standin-{node}-{len(self._procs)}.log"
        argv = [
            sys.executable,
            str(STANDIN_SERVER),
            "--bind",
            bind,
            "--cert",
            str(cert),
            "--key",
            str(key),
            "--http-port",
            str(http_port),
            "--https-port",
            str(https_port),
            "--name",
            node,
        ]
        if acme is not None:
            argv += ["--acme-cert", str(acme[0]), "--acme-key", str(acme[1]), "--acme-when", str(acme[2])]
        with log.open("wb") as err:
            proc = self.popen(node, argv, stdout=subprocess.PIPE, stderr=err)
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = b""
        while time.monotonic() < deadline and proc.poll() is None:
            if select.select([proc.stdout], [], [], 0.05)[0]:
                line = proc.stdout.readline()
                break
        if line.strip() != b"READY":
            raise NetLabError(f"stand-in server on {node} did not start: {log.read_text()[-2000:]}")
        return proc


def _disable_ipv6() -> None:
    # /proc/sys/net is per network namespace of the opening thread
    for scope in ("all", "default", "lo"):
        Path(f"/proc/sys/net/ipv6/conf/{scope}/disable_ipv6").write_text("1")


# neighbour states in which the kernel holds a usable link-layer address
_RESOLVED = {"REACHABLE", "STALE", "DELAY", "PROBE", "PERMANENT", "NOARP"}


def arp_resolve(addr: str, timeout: float = 3.5) -> str | None:
    """Resolve ``addr`` to a MAC from the current thread's netns without privileges.

    A UDP datagram (to the discard port) makes the kernel ARP for the address; ``ip -j neigh``
    then shows the answer. Returns the MAC, or None when ARP fails (FAILED/INCOMPLETE) by the deadline.
    Bounded: the kernel gives up after 3 probes 1 s apart, and we stop at ``timeout`` regardless.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(b"labup", (addr, 9))
        except OSError:
            return None  # e.g. no route: nothing to resolve
    deadline = time.monotonic() + timeout
    while True:
        # a subprocess forked from this thread lives in the same netns as the thread
        out = subprocess.run(
            ["ip", "-j", "neigh", "show", "to", addr], capture_output=True, text=True, timeout=5
        ).stdout
        for entry in json.loads(out or "[]"):
            states = set(entry.get("state", []))
            if entry.get("lladdr") and states & _RESOLVED:
                return str(entry["lladdr"])
            if "FAILED" in states:
                return None
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)
