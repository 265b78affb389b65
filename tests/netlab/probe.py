"""Client-side probes, meant to run inside a namespace via ``lab.call_in(node, lambda: ...)``.

They do what labup's verify does on the wire (HTTP redirect, TLS certificate), with short timeouts so a
broken lab fails a test instead of hanging it.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from dataclasses import dataclass

from cryptography import x509


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: dict[str, str]
    body: bytes


def http_get(addr: str, port: int = 80, host: str | None = None, path: str = "/", timeout: float = 3.0) -> HttpAnswer:
    conn = http.client.HTTPConnection(addr, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host or addr})
        resp = conn.getresponse()
        return HttpAnswer(resp.status, dict(resp.getheaders()), resp.read())
    finally:
        conn.close()


@dataclass(frozen=True)
class TlsAnswer:
    cert: x509.Certificate  # the leaf the server presented
    verified: bool  # chain + hostname checked against the given CA (False: not checked)
    status: int  # HTTP status of GET / over the TLS connection


def tls_get(addr: str, sni: str, cafile: str | None = None, port: int = 443, timeout: float = 3.0) -> TlsAnswer:
    """Connect to ``addr`` with SNI ``sni``. With ``cafile`` the chain and name must verify (else
    ``ssl.SSLCertVerificationError``); without it, the certificate is fetched unverified."""
    if cafile:
        ctx = ssl.create_default_context(cafile=cafile)
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((addr, port), timeout=timeout) as raw,
        ctx.wrap_socket(raw, server_hostname=sni) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n".encode())
        status_line = tls.recv(4096).split(b"\r\n", 1)[0]
    return TlsAnswer(x509.load_der_x509_certificate(der), bool(cafile), int(status_line.split()[1]))


def tcp_connect(addr: str, port: int, timeout: float = 3.0) -> None:
    """Open and close a TCP connection; raises ConnectionRefusedError etc. as the kernel reports."""
    socket.create_connection((addr, port), timeout=timeout).close()
