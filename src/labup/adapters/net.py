"""The network, as verify sees it from the operator's machine: ARP, HTTP and TLS toward the VIP.

The only module that opens sockets for verify (with adapters.neigh for the link layer). Every call
takes a `timeout` (seconds left for the check) and never blocks past it. ARP is our own request when
the process may send raw frames (root), otherwise the kernel's neighbour entry, taken only when the
kernel confirmed it during the call. Functions return plain facts; judging them is the checks' job.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

# the discard service: a datagram to it is only a reason for the kernel to resolve the address
DISCARD_PORT = 9
_RTF_GATEWAY = 0x2  # /proc/net/route flag: the route goes through a gateway
_POLL_S = 0.05
_TICK_SLACK_S = 0.025
_RESEND_S = 1.0  # the kernel gives up after ~3 probes 1 s apart: keep it asking until our deadline


# -- ARP / neighbour discovery ----------------------------------------------------------------------

ARP_REQUEST = "arp-request"  # our own ARP request on the wire (CAP_NET_RAW)
NEIGHBOUR_CONFIRMED = "neighbour-confirmed"  # the kernel's entry, confirmed after the check started
# TCP ports a Talos control plane (apid, kube-apiserver) or Traefik listens on at the VIP: a completed
# handshake makes the kernel confirm the neighbour entry (tcp_ack -> dst_confirm), which a datagram never does
CONFIRM_PORTS = (50000, 6443, 443, 80)


@dataclass(frozen=True)
class Neighbour:
    """What the operator's machine learned about an address on its own link *during the check*."""

    address: str
    mac: str | None = None  # None: no fresh answer within the timeout
    state: str | None = None  # "reply" (own ARP), REACHABLE/STALE/... (kernel), FAILED
    device: str | None = None
    gateway: str | None = None  # set when the address is routed, not on-link: ARP cannot reach it
    error: str | None = None  # the kernel refused to send (e.g. no route)
    source: str = ""  # how the answer was obtained: ARP_REQUEST or NEIGHBOUR_CONFIRMED
    seconds: float = 0.0
    cached_mac: str | None = None  # the kernel's entry from before the check: never proof on its own
    others: tuple[str, ...] = ()  # more MACs answering for the same address (an address conflict)
    method_note: str | None = None  # why the own-request method was not used


def resolve_neighbour(address: str, timeout: float) -> Neighbour:
    """Prove that `address` answers on this machine's link now, and with which MAC.

    With CAP_NET_RAW (IPv4): our own ARP request on the interface that routes to the address. Without
    it: the kernel resolves the address (a UDP datagram, TCP connections to the ports the VIP serves)
    and only an entry the kernel confirmed after this call started counts. A cached entry from
    before never passes. Returns at the first fresh answer, when the address turns out to be routed,
    when the kernel marks it FAILED during the call, or at the timeout.
    """
    from labup.adapters import neigh

    started = time.monotonic()
    deadline = started + max(timeout, 0.0)
    ip = ipaddress.ip_address(address)
    route = _ipv4_route(address) if ip.version == 4 else None
    if route is not None and route[1]:
        # routed through a gateway: the kernel ARPs for the gateway, never for the VIP
        return Neighbour(address, device=route[0], gateway=route[1], source="/proc/net/route",
                         seconds=time.monotonic() - started)
    note = None
    if ip.version == 4 and route is not None:
        try:
            replies = neigh.arp_request(route[0], address, deadline)
        except PermissionError:
            note = "no CAP_NET_RAW: own ARP request not possible"
        except OSError as exc:
            note = f"own ARP request failed: {exc.strerror or exc}"
        else:
            cached = _cached_mac(address)
            if replies:
                return Neighbour(address, replies[0].mac, "reply", route[0], source=ARP_REQUEST,
                                 seconds=replies[0].seconds, cached_mac=cached,
                                 others=tuple(r.mac for r in replies[1:]))
            return Neighbour(address, device=route[0], source=ARP_REQUEST, seconds=time.monotonic() - started,
                             cached_mac=cached)
    elif ip.version == 6:
        note = "IPv6: no ARP; neighbour discovery read from the kernel"
    return _confirmed_neighbour(address, ip.version, started, deadline, note)


def _cached_mac(address: str) -> str | None:
    from labup.adapters import neigh

    try:
        entry = neigh.read_entry(address)
    except OSError:
        return None
    return entry.mac if entry else None


def _confirmed_neighbour(address: str, version: int, started: float, deadline: float,
                         note: str | None) -> Neighbour:
    from labup.adapters import neigh

    try:
        before = neigh.read_entry(address)  # before anything is sent: what the cache knew already
    except OSError:
        before = None
    nudges: list[socket.socket] = []
    last_sent: float | None = None
    entry = None
    try:
        while True:
            now = time.monotonic()
            if last_sent is None or now - last_sent >= _RESEND_S:
                problem = _poke(address, version)
                if problem:
                    return Neighbour(address, error=problem, source="udp", seconds=now - started,
                                     method_note=note)
                nudges += _nudge(address, version)
                last_sent = now
            try:
                entry = neigh.read_entry(address)
            except OSError:
                entry = None
            if entry is not None:
                if entry.mac and not entry.static and _newer(entry.confirmed_at, before and before.confirmed_at,
                                                             started):
                    return Neighbour(address, entry.mac, entry.state, entry.device, source=NEIGHBOUR_CONFIRMED,
                                     seconds=entry.confirmed_at - started, method_note=note)
                if "FAILED" in entry.states and _newer(entry.updated_at, before and before.updated_at, started):
                    return Neighbour(address, state="FAILED", device=entry.device, source=NEIGHBOUR_CONFIRMED,
                                     seconds=time.monotonic() - started, method_note=note)
            if time.monotonic() >= deadline:
                return Neighbour(address, state=entry.state if entry else None,
                                 device=entry.device if entry else None, source=NEIGHBOUR_CONFIRMED,
                                 seconds=time.monotonic() - started,
                                 cached_mac=entry.mac if entry else None, method_note=note)
            time.sleep(min(_POLL_S, max(deadline - time.monotonic(), 0.0)))
    finally:
        for sock in nudges:
            sock.close()


def _newer(moment: float, before: float | None, started: float) -> bool:
    """Did the kernel record `moment` during this call? Its ages come in 10 ms ticks, so two readings
    of one unchanged timestamp can differ by about two ticks: demand more than that."""
    if moment < started - _TICK_SLACK_S:
        return False
    return before is None or moment > before + _TICK_SLACK_S


def _poke(address: str, version: int) -> str | None:
    """Send one datagram so the kernel resolves the address; an error text if it refuses at once."""
    family = socket.AF_INET if version == 4 else socket.AF_INET6
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"labup verify", (address, DISCARD_PORT))
    except OSError as exc:
        return f"{exc.strerror or exc} ({errno.errorcode.get(exc.errno or 0, '?')})"
    return None


def _nudge(address: str, version: int) -> list[socket.socket]:
    """Start (never wait for) TCP connections to the VIP's usual ports; the caller closes them.

    A handshake that completes is an answer from the VIP, and the kernel records it on the neighbour
    entry; a refused or unanswered one changes nothing."""
    family = socket.AF_INET if version == 4 else socket.AF_INET6
    opened = []
    for port in CONFIRM_PORTS:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        # closing sends a reset at once: no FIN handshake or TIME_WAIT left behind on either side
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.connect_ex((address, port))
        opened.append(sock)
    return opened


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
    # the server may have switched certificates between the two handshakes (Traefik, the moment ACME
    # delivers): the one just read is judged only after it failed verification itself
    try:
        again, version = _handshake(ctx, address, sni, port, deadline)
    except ssl.SSLCertVerificationError as exc:
        return TlsAnswer(der, False, exc.verify_message or str(exc), exc.verify_code, version)
    return TlsAnswer(again, True, tls_version=version) if again == der else TlsAnswer(der, False, error, code, version)


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
