"""Fresh answers on this machine's own link: the kernel's neighbour entry with its ages (netlink), and
an ARP request of our own (raw socket, needs CAP_NET_RAW).

A cached neighbour entry outlives the address it names by minutes (REACHABLE for 15-45 s, then STALE
until garbage-collected), so "the kernel has a MAC for it" proves nothing about now. The ages the kernel
keeps per entry (`confirmed`, `updated`, in clock ticks) tell when an answer was last seen: callers take
only an entry confirmed after they started. Used by adapters.net; nothing here judges.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
import time
from dataclasses import dataclass

# rtnetlink (linux/rtnetlink.h, linux/neighbour.h)
_RTM_NEWNEIGH, _RTM_GETNEIGH = 28, 30
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_NLM_F_REQUEST, _NLM_F_DUMP = 0x1, 0x300
_NDA_DST, _NDA_LLADDR, _NDA_CACHEINFO = 1, 2, 3
_NUD_STATES = ((0x01, "INCOMPLETE"), (0x02, "REACHABLE"), (0x04, "STALE"), (0x08, "DELAY"), (0x10, "PROBE"),
               (0x20, "FAILED"), (0x40, "NOARP"), (0x80, "PERMANENT"))
# ARP (RFC 826) over Ethernet
_ETH_P_ARP = 0x0806
_ARP_REQUEST, _ARP_REPLY = 1, 2
_BROADCAST = b"\xff" * 6


@dataclass(frozen=True)
class NeighEntry:
    """One neighbour-table entry as the kernel holds it, with when it last heard from the neighbour."""

    mac: str | None
    states: tuple[str, ...]  # e.g. ("REACHABLE",), ("STALE",), ("FAILED",)
    device: str | None
    confirmed_at: float  # time.monotonic() of the last answer the kernel saw (ARP reply, TCP progress)
    updated_at: float  # time.monotonic() of the last state change

    @property
    def state(self) -> str:
        return "/".join(self.states) or "NONE"

    @property
    def static(self) -> bool:
        return bool({"PERMANENT", "NOARP"} & set(self.states))


def read_entry(address: str) -> NeighEntry | None:
    """The kernel's entry for `address` in the calling thread's network namespace, or None.

    One RTM_GETNEIGH dump over netlink: unprivileged, no process spawned, ages in clock ticks (10 ms)
    rather than the whole seconds `ip -s neigh` prints."""
    ip = ipaddress.ip_address(address)
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    now = time.monotonic()
    for entry_ip, entry in _dump(family, now):
        if entry_ip == ip.packed:
            return entry
    return None


def _dump(family: int, now: float) -> list[tuple[bytes, NeighEntry]]:
    request = struct.pack("=LHHLL", 16 + 12, _RTM_GETNEIGH, _NLM_F_REQUEST | _NLM_F_DUMP, 1, 0)
    request += struct.pack("=BBHiHBB", family, 0, 0, 0, 0, 0, 0)
    found: list[tuple[bytes, NeighEntry]] = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        sock.settimeout(2.0)
        sock.send(request)
        while True:
            data = sock.recv(65536)
            offset = 0
            while offset + 16 <= len(data):
                length, kind = struct.unpack_from("=LH", data, offset)
                if length < 16:
                    return found
                if kind == _NLMSG_DONE:
                    return found
                if kind == _NLMSG_ERROR:
                    (code,) = struct.unpack_from("=i", data, offset + 16)
                    if code:
                        raise OSError(-code, os.strerror(-code))
                    return found
                if kind == _RTM_NEWNEIGH:
                    parsed = _parse_neigh(data[offset + 16:offset + length], now)
                    if parsed is not None:
                        found.append(parsed)
                offset += (length + 3) & ~3


def _parse_neigh(body: bytes, now: float) -> tuple[bytes, NeighEntry] | None:
    if len(body) < 12:
        return None
    _family, _p1, _p2, ifindex, state, _flags, _kind = struct.unpack_from("=BBHiHBB", body)
    dst, lladdr, cache = b"", None, None
    offset = 12
    while offset + 4 <= len(body):
        length, kind = struct.unpack_from("=HH", body, offset)
        if length < 4:
            break
        value = body[offset + 4:offset + length]
        if kind == _NDA_DST:
            dst = value
        elif kind == _NDA_LLADDR:
            lladdr = value
        elif kind == _NDA_CACHEINFO and len(value) >= 12:
            cache = struct.unpack_from("=LLL", value)  # confirmed, used, updated: ticks ago
        offset += (length + 3) & ~3
    tick = 1.0 / (os.sysconf("SC_CLK_TCK") or 100)
    confirmed_ago, _used_ago, updated_ago = cache if cache else (0, 0, 0)
    states = tuple(name for bit, name in _NUD_STATES if state & bit)
    mac = lladdr.hex(":") if lladdr and any(lladdr) else None
    try:
        device = socket.if_indextoname(ifindex)
    except OSError:
        device = None
    # no cache info (never the case on Linux): the entry's ages are unknown, so treat it as old
    confirmed_at = now - confirmed_ago * tick if cache else float("-inf")
    updated_at = now - updated_ago * tick if cache else float("-inf")
    return dst, NeighEntry(mac, states, device, confirmed_at, updated_at)


# -- our own ARP request ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ArpReply:
    mac: str
    seconds: float  # after the first request was sent


def arp_request(device: str, address: str, deadline: float, *, resend_s: float = 1.0,
                settle_s: float = 0.2) -> list[ArpReply]:
    """Broadcast "who has `address`?" on `device` and collect the answers until `deadline`.

    Needs CAP_NET_RAW: raises PermissionError without it (the caller then falls back to the
    neighbour table). The request is repeated every `resend_s`. After the first answer, listens
    `settle_s` longer so a second device claiming the same address (a conflict) is seen too (on one
    Layer-2 segment every device answers the same broadcast within milliseconds). An
    unsolicited (gratuitous) announcement of the address counts as an answer: it is fresh too."""
    target = ipaddress.IPv4Address(address).packed
    source_ip = _source_address(address)
    started = time.monotonic()
    replies: dict[str, ArpReply] = {}
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(_ETH_P_ARP)) as sock:
        sock.bind((device, _ETH_P_ARP))
        own_mac: bytes = sock.getsockname()[4]
        frame = (_BROADCAST + own_mac + struct.pack("!H", _ETH_P_ARP)
                 + struct.pack("!HHBBH", 1, 0x0800, 6, 4, _ARP_REQUEST) + own_mac + source_ip + b"\0" * 6 + target)
        last_sent = float("-inf")
        end = deadline
        while True:
            now = time.monotonic()
            if now >= end:
                break
            if not replies and now - last_sent >= resend_s:
                sock.send(frame)
                last_sent = now
            wait = min(end, last_sent + resend_s if not replies else end) - now
            sock.settimeout(max(wait, 0.001))
            try:
                packet, meta = sock.recvfrom(2048)
            except TimeoutError:
                continue
            sender = _arp_sender(packet, target)
            if sender is None or sender == own_mac or meta[2] == socket.PACKET_OUTGOING:
                continue
            mac = sender.hex(":")
            if mac not in replies:
                replies[mac] = ArpReply(mac, time.monotonic() - started)
                end = min(deadline, time.monotonic() + settle_s)
    return sorted(replies.values(), key=lambda r: r.seconds)


def _arp_sender(packet: bytes, target: bytes) -> bytes | None:
    """The sender MAC of an ARP packet that says `target` is at that MAC (reply or announcement)."""
    if len(packet) < 42 or packet[12:14] != b"\x08\x06":
        return None
    htype, ptype, hlen, plen, op = struct.unpack_from("!HHBBH", packet, 14)
    if (htype, ptype, hlen, plen) != (1, 0x0800, 6, 4) or op not in (_ARP_REQUEST, _ARP_REPLY):
        return None
    sender_mac, sender_ip = packet[22:28], packet[28:32]
    if sender_ip != target:
        return None
    return sender_mac


def _source_address(address: str) -> bytes:
    """The address the kernel would send from toward `address` (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((address, 9))
        return ipaddress.IPv4Address(sock.getsockname()[0]).packed
