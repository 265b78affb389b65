"""The namespace lab itself: real ARP, HTTP and TLS between network namespaces.

These prove the wire behaviour labup's ``verify`` relies on, with nothing faked: a client namespace
resolves the VIP by ARP, follows it when it moves, sees the 308 redirect and the TLS certificate.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest
from cryptography.x509.oid import NameOID

from netlab import DEFAULT_VIP as VIP
from netlab import CertSet, NetLab, NetLabError, list_netns
from netlab.fixtures import netns_unavailable_reason, require_netns
from netlab.lab import sweep_stale
from netlab.probe import http_get, tcp_connect, tls_get

pytestmark = pytest.mark.root


def cn_of(name: object) -> str:
    return str(name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)  # type: ignore[attr-defined]


# -- the harness ---------------------------------------------------------------------------------


def test_call_in_socket_lives_in_the_client_namespace(netlab: NetLab) -> None:
    listener = netlab.call_in("cl", lambda: socket.create_server(("0.0.0.0", 0)))
    port = listener.getsockname()[1]
    served: list[bytes] = []

    def serve() -> None:  # a thread of the test process, serving a socket that lives in cl
        conn, _ = listener.accept()
        with conn:
            served.append(conn.recv(100))
            conn.sendall(b"pong")

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        client = (
            "import socket,sys; s=socket.create_connection(('192.0.2.100', int(sys.argv[1])), timeout=3);"
            " s.sendall(b'ping'); print(s.recv(10).decode())"
        )
        out = netlab.run("cl", [sys.executable, "-c", client, str(port)], check=True)
        assert out.stdout.strip() == "pong"
        server.join(3)
        assert served == [b"ping"]
        # the root namespace has no such listener (loopback only: never send a packet elsewhere)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
    finally:
        listener.close()


def test_subprocess_started_by_call_in_inherits_the_namespace(netlab: NetLab) -> None:
    def addrs() -> str:
        return subprocess.run(["ip", "-br", "addr", "show", "ens18"], capture_output=True, text=True).stdout

    assert "192.0.2.100/24" in netlab.call_in("cl", addrs)
    assert "192.0.2.10/24" in netlab.call_in("cp", addrs)


def test_nodes_have_their_macs_on_ens18(netlab: NetLab) -> None:
    for node in ("cp", "wk", "cl"):
        out = netlab.run(node, ["cat", "/sys/class/net/ens18/address"], check=True).stdout.strip()
        assert out == netlab.mac_of(node)
        assert int(out.split(":")[0], 16) & 0b10  # locally administered


def test_addresses_outside_test_net_are_refused(netlab: NetLab) -> None:
    with pytest.raises(NetLabError, match=r"outside 192\.0\.2\.0/24"):
        netlab.add_vip("cp", "10.0.0.250")
    assert netlab.vip_holder is None


def test_cleanup_after_an_exception_inside_the_lab() -> None:
    require_netns()
    root_links_before = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    with pytest.raises(RuntimeError, match="boom"), NetLab() as lab:
        prefix = lab.prefix
        assert len(lab.namespaces()) == 4
        lab.add_vip("cp")
        raise RuntimeError("boom")
    assert list_netns(prefix) == []
    # nothing of ours ever appeared in the root namespace
    root_links_after = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    assert root_links_after == root_links_before
    assert "02:6c:61:62" not in root_links_after


def test_cleanup_kills_servers_and_deletes_namespaces(netlab_certs: CertSet) -> None:
    require_netns()
    with NetLab() as lab:
        prefix = lab.prefix
        good = netlab_certs.good
        proc = lab.start_standin("cp", good.cert_path, good.key_path)
    assert proc.poll() is not None
    assert list_netns(prefix) == []


def test_sweep_removes_leftovers_of_dead_runs_only(netlab: NetLab) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    leftover = f"nlab-{dead.pid}-1-cp"
    subprocess.run(["ip", "netns", "add", leftover], check=True)
    try:
        assert leftover in sweep_stale()
        assert leftover not in list_netns()
        assert len(netlab.namespaces()) == 4  # a live lab is never swept
    finally:
        subprocess.run(["ip", "netns", "del", leftover], capture_output=True)


# -- ARP: how labup finds the VIP holder without root ---------------------------------------------


def test_vip_resolves_to_the_control_plane_mac(netlab: NetLab) -> None:
    netlab.add_vip("cp")
    assert netlab.resolve_mac("cl", VIP) == netlab.mac_of("cp")
    entry = netlab.neighbour("cl", VIP)
    assert entry is not None and entry["state"] == ["REACHABLE"]


def test_gratuitous_arp_moves_the_client_cache_without_a_flush(netlab: NetLab) -> None:
    netlab.add_vip("cp")
    assert netlab.resolve_mac("cl", VIP) == netlab.mac_of("cp")
    netlab.move_vip("wk")
    # no traffic from cl since: only the worker's gratuitous ARP can have updated the entry
    entry = netlab.neighbour("cl", VIP)
    assert entry is not None and entry["lladdr"] == netlab.mac_of("wk")
    assert netlab.resolve_mac("cl", VIP) == netlab.mac_of("wk")


def test_without_gratuitous_arp_the_client_keeps_the_old_mac_until_flushed(netlab: NetLab) -> None:
    netlab.add_vip("cp")
    assert netlab.resolve_mac("cl", VIP) == netlab.mac_of("cp")
    netlab.move_vip("wk", garp=False)
    # the pitfall: a still-REACHABLE entry names the old holder (cp), though cp no longer has the VIP
    assert netlab.resolve_mac("cl", VIP) == netlab.mac_of("cp")
    netlab.flush_neighbours("cl")
    assert netlab.resolve_mac("cl", VIP) == netlab.mac_of("wk")


def test_without_vip_arp_fails_within_bounds(netlab: NetLab) -> None:
    start = time.monotonic()
    assert netlab.resolve_mac("cl", VIP) is None
    assert time.monotonic() - start < 4.0
    entry = netlab.neighbour("cl", VIP)
    assert entry is None or "lladdr" not in entry


# -- HTTP and TLS through the VIP ------------------------------------------------------------------


def test_http_redirects_to_https(netlab: NetLab, netlab_certs: CertSet) -> None:
    good = netlab_certs.good
    netlab.start_standin("cp", good.cert_path, good.key_path)
    netlab.add_vip("cp")
    ans = netlab.call_in("cl", lambda: http_get(VIP, host="tazlab.example:80", path="/dashboard/?x=1"))
    assert ans.status == 308
    assert ans.headers["Location"] == "https://tazlab.example/dashboard/?x=1"
    assert ans.headers["X-Standin-Node"] == "cp"
    ans = netlab.call_in("cl", lambda: http_get(VIP))
    assert ans.headers["Location"] == f"https://{VIP}/"


def test_tls_verifies_against_the_test_ca_with_sni(netlab: NetLab, netlab_certs: CertSet) -> None:
    good, ca = netlab_certs.good, str(netlab_certs.ca.cert_path)
    netlab.start_standin("cp", good.cert_path, good.key_path)
    netlab.add_vip("cp")
    ans = netlab.call_in("cl", lambda: tls_get(VIP, "tazlab.example", cafile=ca))
    assert ans.verified and ans.status == 200
    assert cn_of(ans.cert.subject) == "tazlab.example"
    with pytest.raises(ssl.SSLCertVerificationError):  # wrong name
        netlab.call_in("cl", lambda: tls_get(VIP, "other.example", cafile=ca))


def test_server_bound_to_the_vip_can_start_before_the_vip_exists(netlab: NetLab, netlab_certs: CertSet) -> None:
    good = netlab_certs.good
    netlab.start_standin("cp", good.cert_path, good.key_path, bind=VIP)  # IP_FREEBIND
    netlab.add_vip("cp")
    assert netlab.call_in("cl", lambda: http_get(VIP)).status == 308
    with pytest.raises(ConnectionRefusedError):  # bound to the VIP only
        netlab.call_in("cl", lambda: tcp_connect(netlab.ip_of("cp"), 80))


@pytest.mark.parametrize("mode", ["traefik-default", "staging", "expiring"])
def test_certificate_modes(netlab: NetLab, netlab_certs: CertSet, mode: str) -> None:
    issued, ca = netlab_certs.mode(mode), str(netlab_certs.ca.cert_path)
    netlab.start_standin("cp", issued.cert_path, issued.key_path)
    netlab.add_vip("cp")
    cert = netlab.call_in("cl", lambda: tls_get(VIP, "tazlab.example")).cert
    if mode == "traefik-default":
        assert cn_of(cert.subject) == "TRAEFIK DEFAULT CERT" == cn_of(cert.issuer)
    elif mode == "staging":
        assert cn_of(cert.issuer).startswith("(STAGING) ")
    else:
        left = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
        assert dt.timedelta(days=4) < left <= dt.timedelta(days=5)
    if mode == "expiring":  # still valid: only the expiry check can catch it
        assert netlab.call_in("cl", lambda: tls_get(VIP, "tazlab.example", cafile=ca)).verified
    else:
        with pytest.raises(ssl.SSLCertVerificationError):
            netlab.call_in("cl", lambda: tls_get(VIP, "tazlab.example", cafile=ca))


def test_connection_paradox_vip_answers_arp_but_port_80_is_refused(netlab: NetLab, netlab_certs: CertSet) -> None:
    # wall 5: the VIP sits on the control plane, Traefik runs on the worker
    good = netlab_certs.good
    netlab.start_standin("wk", good.cert_path, good.key_path)
    netlab.add_vip("cp")
    assert netlab.resolve_mac("cl", VIP) == netlab.mac_of("cp")
    with pytest.raises(ConnectionRefusedError):
        netlab.call_in("cl", lambda: tcp_connect(VIP, 80))
    # once the VIP follows Traefik, the same request is answered by the worker
    netlab.move_vip("wk")
    assert netlab.call_in("cl", lambda: http_get(VIP)).headers["X-Standin-Node"] == "wk"


# -- skip / fail policy (runs without root too) -------------------------------------------------


@pytest.mark.parametrize("required", [False, True])
def test_missing_root_skips_or_fails(monkeypatch: pytest.MonkeyPatch, required: bool) -> None:
    monkeypatch.setenv("LABUP_REQUIRE_ROOT", "1" if required else "0")
    expected = pytest.fail.Exception if required else pytest.skip.Exception
    with pytest.raises(expected, match=r"^needs root: "):
        require_netns("needs root: test")


def test_not_root_gives_a_needs_root_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    reason = netns_unavailable_reason.__wrapped__()
    assert reason is not None and reason.startswith("needs root:")
