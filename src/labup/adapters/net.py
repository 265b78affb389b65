"""The network, as verify sees it from the operator's machine: ARP, HTTP and TLS toward the VIP.

The only module that opens sockets for verify. Every call takes a `timeout` (seconds left for the
check) and never blocks past it. Nothing here needs root: ARP is triggered by an ordinary UDP datagram
and read back from the kernel's neighbour table. Functions return plain facts; judging them is the
checks' job (labup.checks).
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

# the discard service: a datagram to it is only a reason for the kernel to resolve the address
DISCARD_PORT = 9
# neighbour states in which the kernel holds a usable link-layer address (`ip neigh` spelling)
RESOLVED_STATES = frozenset({"REACHABLE", "STALE", "DELAY", "PROBE", "PERMANENT", "NOARP"})
_ATF_COM = 0x2  # /proc/net/arp flag: the entry is complete (has a hardware address)
_RTF_GATEWAY = 0x2  # /proc/net/route flag: the route goes through a gateway
_POLL_S = 0.05
_RESEND_S = 1.0  # the kernel gives up after ~3 probes 1 s apart: keep it asking until our deadline


# -- ARP / neighbour discovery ----------------------------------------------------------------------


@dataclass(frozen=True)
class Neighbour:
    """What the operator's machine learned about an address on its own link."""

    address: str
    mac: str | None = None  # None: nobody answered within the timeout
    state: str | None = None  # REACHABLE/STALE/... (`ip neigh`), "complete" (/proc/net/arp), FAILED
    device: str | None = None
    gateway: str | None = None  # set when the address is routed, not on-link: ARP cannot reach it
    error: str | None = None  # the kernel refused to send (e.g. no route)
    source: str = ""  # where the answer was read
    seconds: float = 0.0


def resolve_neighbour(address: str, timeout: float) -> Neighbour:
    """Make the kernel resolve `address` (ARP for IPv4, NDP for IPv6) and report the MAC it learned.

    Unprivileged: a UDP datagram to the discard port makes the kernel ask; the neighbour table then
    shows the answer. Repeated every second so an address that appears during the wait is still
    found. Returns when a MAC is known, when the address turns out to be routed (no ARP possible),
    or at the timeout.
    """
    started = time.monotonic()
    deadline = started + max(timeout, 0.0)
    ip = ipaddress.ip_address(address)
    route = _ipv4_route(address) if ip.version == 4 else None
    if route is not None and route[1]:
        # routed through a gateway: the kernel ARPs for the gateway, never for the VIP
        return Neighbour(address, device=route[0], gateway=route[1], source="/proc/net/route",
                         seconds=time.monotonic() - started)
    last_sent: float | None = None
    while True:
        now = time.monotonic()
        if last_sent is None or now - last_sent >= _RESEND_S:
            problem = _poke(address, ip.version)
            if problem:
                return Neighbour(address, error=problem, source="udp",
                                 seconds=time.monotonic() - started)
            last_sent = now
        found = _read_neighbour(address, ip.version, deadline)
        if found is not None and found.mac:
            return Neighbour(address, found.mac, found.state, found.device, source=found.source,
                             seconds=time.monotonic() - started)
        if time.monotonic() >= deadline:
            state = found.state if found is not None else None
            return Neighbour(address, state=state, device=found.device if found else None,
                             source=found.source if found else "", seconds=time.monotonic() - started)
        time.sleep(min(_POLL_S, max(deadline - time.monotonic(), 0.0)))


def _poke(address: str, version: int) -> str | None:
    """Send one datagram so the kernel resolves the address; an error text if it refuses at once."""
    family = socket.AF_INET if version == 4 else socket.AF_INET6
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"labup verify", (address, DISCARD_PORT))
    except OSError as exc:
        return f"{exc.strerror or exc} ({errno.errorcode.get(exc.errno or 0, '?')})"
    return None


def _proc_net(name: str) -> Path:
    # thread-self: /proc/net follows the process's netns, a thread may live in another one (setns)
    own = Path("/proc/thread-self/net") / name
    return own if own.exists() else Path("/proc/net") / name


def _ipv4_route(address: str) -> tuple[str, str | None] | None:
    """(device, gateway or None) of the longest-prefix IPv4 route to address; None if unknown.

    Reads /proc/net/route (main table only: policy routing is rare on an operator's laptop)."""
    try:
        lines = _proc_net("route").read_text().splitlines()[1:]
    except OSError:
        return None
    target = int(ipaddress.IPv4Address(address))
    best: tuple[int, str, str | None] | None = None
    for line in lines:
        cols = line.split()
        if len(cols) < 8:
            continue
        try:
            dest, gateway, flags, mask = (_le_ipv4(cols[1]), _le_ipv4(cols[2]), int(cols[3], 16),
                                          _le_ipv4(cols[7]))
        except ValueError:
            continue
        if target & mask != dest or not flags & 0x1:  # RTF_UP
            continue
        prefix = bin(mask).count("1")
        gw = str(ipaddress.IPv4Address(gateway)) if flags & _RTF_GATEWAY and gateway else None
        if best is None or prefix > best[0]:
            best = (prefix, cols[0], gw)
    return (best[1], best[2]) if best else None


def _le_ipv4(hex_text: str) -> int:
    """/proc/net/route prints addresses as host-order (little-endian) hex."""
    return int.from_bytes(int(hex_text, 16).to_bytes(4, "little"), "big")


def _read_neighbour(address: str, version: int, deadline: float) -> Neighbour | None:
    if version == 4:
        return _read_proc_arp(address)
    return _read_ip_neigh(address, deadline)


def _read_proc_arp(address: str) -> Neighbour | None:
    """The IPv4 entry from /proc/net/arp: no process to spawn, so polling it is cheap."""
    try:
        lines = _proc_net("arp").read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        cols = line.split()
        if len(cols) >= 6 and cols[0] == address:
            complete = int(cols[2], 16) & _ATF_COM and cols[3] != "00:00:00:00:00:00"
            return Neighbour(address, cols[3].lower() if complete else None,
                             "complete" if complete else "incomplete", cols[5], source="/proc/net/arp")
    return None


def _read_ip_neigh(address: str, deadline: float) -> Neighbour | None:
    """The entry from `ip -j neigh show to ADDR` (IPv6: /proc has no NDP table)."""
    import json

    from labup.adapters.process import find_tool, run_tool

    ip_tool = find_tool("ip")
    if ip_tool is None:
        return None
    try:
        out = run_tool(ip_tool, ["-j", "neigh", "show", "to", address],
                       timeout=max(deadline - time.monotonic(), 0.5)).stdout
        entries = json.loads(out or "[]")
    except Exception:  # unreadable this round: the caller polls again until its deadline
        return None
    for entry in entries:
        states = [str(s) for s in entry.get("state", [])]
        mac = entry.get("lladdr")
        usable = bool(mac) and bool(set(states) & RESOLVED_STATES)
        return Neighbour(address, str(mac).lower() if usable else None, "/".join(states) or None,
                         entry.get("dev"), source="ip neigh")
    return None


# -- HTTP ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    reason: str
    location: str | None
    server: str | None
    body_start: str  # the first bytes of the body, to show what answered instead of a redirect
    headers: dict[str, str] = field(default_factory=dict)


def http_get(address: str, host: str, timeout: float, port: int = 80, path: str = "/") -> HttpAnswer:
    """GET http://address:port/path with a Host header; redirects are reported, never followed.

    Raises OSError subclasses as the kernel reports them (ConnectionRefusedError, TimeoutError, ...)."""
    import http.client

    conn = http.client.HTTPConnection(_url_host(address), port, timeout=max(timeout, 0.05))
    try:
        conn.request("GET", path, headers={"Host": host, "User-Agent": "labup-verify",
                                           "Connection": "close"})
        resp = conn.getresponse()
        body = resp.read(512)
        return HttpAnswer(resp.status, resp.reason, resp.getheader("Location"), resp.getheader("Server"),
                          body.decode("utf-8", "replace"), {k: v for k, v in resp.getheaders()})
    finally:
        conn.close()


def _url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


# -- TLS ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsAnswer:
    """The certificate a server presented for an SNI name, and whether it verified."""

    der: bytes  # the leaf, DER
    verified: bool  # chain and host name checked against the trust store (+ ca_file)
    verify_error: str | None = None  # OpenSSL's reason when not verified
    verify_code: int | None = None
    tls_version: str | None = None


def tls_certificate(address: str, sni: str, timeout: float, port: int = 443,
                    ca_file: str | os.PathLike[str] | None = None) -> TlsAnswer:
    """Handshake with `address:port` for `sni`, verifying against the system trust (and ca_file).

    When verification fails, a second handshake without verification fetches the certificate anyway,
    so the check can say *what* is served (Traefik's default cert, a staging cert, a wrong name).
    Raises OSError subclasses for connection problems, ssl.SSLError for handshake failures."""
    import ssl

    deadline = time.monotonic() + max(timeout, 0.05)
    ctx = ssl.create_default_context()
    if ca_file:
        ctx.load_verify_locations(cafile=str(ca_file))
    try:
        der, version = _handshake(ctx, address, sni, port, deadline)
        return TlsAnswer(der, True, tls_version=version)
    except ssl.SSLCertVerificationError as exc:
        error, code = exc.verify_message or str(exc), exc.verify_code
    loose = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    loose.check_hostname = False
    loose.verify_mode = ssl.CERT_NONE  # only to read the certificate: nothing is trusted or sent
    der, version = _handshake(loose, address, sni, port, deadline)
    return TlsAnswer(der, False, error, code, version)


def _handshake(ctx: object, address: str, sni: str, port: int, deadline: float) -> tuple[bytes, str | None]:
    import ssl

    assert isinstance(ctx, ssl.SSLContext)
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    with socket.create_connection((address, port), timeout=left) as raw:
        raw.settimeout(max(deadline - time.monotonic(), 0.05))
        with ctx.wrap_socket(raw, server_hostname=sni) as tls:
            der = tls.getpeercert(binary_form=True)
            version = tls.version()
    if not der:
        raise ssl.SSLError("the server presented no certificate")
    return der, version
