"""vip-arp takes only a fresh answer: our own ARP request (root) or a neighbour entry the kernel
confirmed during the check. Unit level: the kernel and the wire are replaced by recorded answers, and
no packet is sent (the real-namespace tests in test_verify_net.py send them)."""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path

import pytest

from labup.adapters import neigh, net

VIP = "198.51.100.250"
CP_MAC = "02:6c:61:62:00:0a"
OTHER_MAC = "02:6c:61:62:00:0b"
ROUTE_TABLE = (
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
    "eth9\t006433C6\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n"  # 198.51.100.0/24 on-link
)


@pytest.fixture
def quiet_wire(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """An on-link route for VIP, and every way of sending replaced by a recorder."""
    (tmp_path / "route").write_text(ROUTE_TABLE)
    monkeypatch.setattr(net, "_proc_net", lambda name: tmp_path / name)
    sent: list[str] = []
    monkeypatch.setattr(net, "_poke", lambda addr, version: sent.append(f"udp {addr}"))
    monkeypatch.setattr(net, "_nudge", lambda addr, version: sent.append(f"tcp {addr}") or [])
    return sent


def no_raw(*args: object, **kw: object) -> list[neigh.ArpReply]:
    raise PermissionError(1, "Operation not permitted")


def entry(mac: str | None, state: str, confirmed_at: float, updated_at: float | None = None) -> neigh.NeighEntry:
    return neigh.NeighEntry(mac, (state,), "eth9", confirmed_at, confirmed_at if updated_at is None else updated_at)


def test_own_arp_request_answers_with_the_replying_mac(quiet_wire: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []

    def fake_request(device: str, address: str, deadline: float) -> list[neigh.ArpReply]:
        calls.append((device, address))
        return [neigh.ArpReply(CP_MAC, 0.01)]

    monkeypatch.setattr(neigh, "arp_request", fake_request)
    monkeypatch.setattr(neigh, "read_entry", lambda addr: entry(OTHER_MAC, "STALE", time.monotonic() - 60))
    got = net.resolve_neighbour(VIP, timeout=1)
    assert calls == [("eth9", VIP)] and got.source == net.ARP_REQUEST
    # the cache's stale idea of the MAC is reported, never taken as the answer
    assert (got.mac, got.cached_mac, got.others) == (CP_MAC, OTHER_MAC, ())
    assert quiet_wire == []  # the own request needs no datagram to make the kernel ask


def test_own_arp_request_reports_a_second_answer_as_a_conflict(quiet_wire: list[str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    two = [neigh.ArpReply(CP_MAC, 0.01), neigh.ArpReply(OTHER_MAC, 0.02)]
    monkeypatch.setattr(neigh, "arp_request", lambda *a: two)
    monkeypatch.setattr(neigh, "read_entry", lambda addr: None)
    got = net.resolve_neighbour(VIP, timeout=1)
    assert got.mac == CP_MAC and got.others == (OTHER_MAC,)


def test_no_reply_to_own_request_fails_even_with_a_cached_entry(quiet_wire: list[str],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(neigh, "arp_request", lambda *a: [])
    monkeypatch.setattr(neigh, "read_entry", lambda addr: entry(CP_MAC, "REACHABLE", time.monotonic() - 2))
    got = net.resolve_neighbour(VIP, timeout=0.2)
    assert got.mac is None and got.cached_mac == CP_MAC and got.source == net.ARP_REQUEST


def test_unprivileged_a_cached_entry_from_before_never_passes(quiet_wire: list[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(neigh, "arp_request", no_raw)
    confirmed = time.monotonic() - 2.0  # a passing verify two seconds ago left it REACHABLE
    monkeypatch.setattr(neigh, "read_entry", lambda addr: entry(CP_MAC, "REACHABLE", confirmed))
    start = time.monotonic()
    got = net.resolve_neighbour(VIP, timeout=0.4)
    assert time.monotonic() - start < 0.9
    assert got.mac is None and got.cached_mac == CP_MAC and got.state == "REACHABLE"
    assert got.source == net.NEIGHBOUR_CONFIRMED and "CAP_NET_RAW" in (got.method_note or "")
    assert f"udp {VIP}" in quiet_wire and f"tcp {VIP}" in quiet_wire


def test_unprivileged_an_entry_confirmed_during_the_check_passes(quiet_wire: list[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(neigh, "arp_request", no_raw)
    old = time.monotonic() - 30
    reads: list[float] = []

    def read(addr: str) -> neigh.NeighEntry:
        reads.append(time.monotonic())
        if len(reads) < 3:
            return entry(CP_MAC, "STALE", old)
        return entry(CP_MAC, "REACHABLE", reads[2] - 0.001)  # an answer heard just now

    monkeypatch.setattr(neigh, "read_entry", read)
    got = net.resolve_neighbour(VIP, timeout=2)
    assert got.mac == CP_MAC and got.state == "REACHABLE" and got.source == net.NEIGHBOUR_CONFIRMED
    assert len(reads) == 3


def test_unprivileged_failed_during_the_check_ends_early(quiet_wire: list[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(neigh, "arp_request", no_raw)
    old = time.monotonic() - 30
    reads: list[int] = []

    def read(addr: str) -> neigh.NeighEntry:
        reads.append(1)
        if len(reads) < 3:
            return entry(None, "FAILED", old)  # FAILED from an earlier attempt: not this check's verdict
        return entry(None, "FAILED", old, updated_at=time.monotonic())

    monkeypatch.setattr(neigh, "read_entry", read)
    start = time.monotonic()
    got = net.resolve_neighbour(VIP, timeout=5)
    assert got.state == "FAILED" and got.mac is None and time.monotonic() - start < 1


def test_static_entries_are_never_proof(quiet_wire: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(neigh, "arp_request", no_raw)
    static = neigh.NeighEntry(CP_MAC, ("PERMANENT",), "eth9", time.monotonic(), time.monotonic())
    monkeypatch.setattr(neigh, "read_entry", lambda addr: static)
    got = net.resolve_neighbour(VIP, timeout=0.2)
    assert got.mac is None and got.cached_mac == CP_MAC


def _neigh_message(ip: bytes, mac: bytes, state: int, ages: tuple[int, int, int]) -> bytes:
    def attr(kind: int, value: bytes) -> bytes:
        raw = struct.pack("=HH", 4 + len(value), kind) + value
        return raw + b"\0" * (-len(raw) % 4)

    return (struct.pack("=BBHiHBB", socket.AF_INET, 0, 0, 1, state, 0, 1)
            + attr(1, ip) + attr(2, mac) + attr(3, struct.pack("=LLLL", *ages, 1)))


def test_netlink_entry_ages_become_moments() -> None:
    now = 1000.0
    tick = 1.0 / 100
    dst, got = neigh._parse_neigh(_neigh_message(bytes([198, 51, 100, 250]), bytes.fromhex("026c6162000a"),
                                                 0x04, (250, 10, 120)), now)
    assert dst == bytes([198, 51, 100, 250])
    assert got.mac == CP_MAC and got.states == ("STALE",) and got.device == "lo"
    assert got.confirmed_at == pytest.approx(now - 250 * tick) and got.updated_at == pytest.approx(now - 120 * tick)


def test_arp_packets_are_read_only_when_they_claim_the_address() -> None:
    target = bytes([198, 51, 100, 250])
    mac = bytes.fromhex("026c6162000a")
    header = b"\xff" * 6 + mac + b"\x08\x06"
    reply = header + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2) + mac + target + b"\0" * 6 + bytes(4)
    assert neigh._arp_sender(reply, target) == mac
    asking = header + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + bytes([198, 51, 100, 1]) + b"\0" * 6 + target
    assert neigh._arp_sender(asking, target) is None  # someone else asking FOR the VIP is no answer
    assert neigh._arp_sender(reply[:30], target) is None


def test_read_entry_reads_this_namespaces_table() -> None:
    # a real netlink dump (no packet leaves): loopback addresses have no neighbour entry
    assert neigh.read_entry("127.0.0.1") is None
