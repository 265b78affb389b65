"""Downloads are bounded (issue 11): https only (or http to loopback), a deadline over the whole
transfer (a mirror trickling bytes never trips a read timeout), odd headers are not a crash."""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from labup.adapters import download
from labup.errors import PermanentError


@contextmanager
def raw_server(reply: bytes, trickle: bytes = b"", every_s: float = 0.3) -> Iterator[str]:
    """One connection on loopback: send `reply` (headers and all), then `trickle` byte by byte."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(reply)
            for byte in trickle:
                if stop.wait(every_s):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/helm.tar.gz"
    finally:
        stop.set()
        listener.close()
        thread.join(timeout=3)


def test_a_trickling_mirror_is_abandoned_at_the_deadline() -> None:
    with raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", trickle=b"x" * 100) as url:
        start = time.monotonic()
        with pytest.raises(PermanentError, match="gave up"), download.open_url(url) as got:
            got.copy_to(io.BytesIO(), deadline=time.monotonic() + 1.0)
        assert time.monotonic() - start < 2.5


def test_a_content_length_that_is_not_a_number_is_no_crash() -> None:
    with raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\nConnection: close\r\n\r\nhello") as url, \
            download.open_url(url) as got:
        assert got.length is None
        buf = io.BytesIO()
        got.copy_to(buf)
    assert buf.getvalue() == b"hello"


@pytest.mark.parametrize("url", ["http://mirror.example.net/helm.tar.gz", "ftp://mirror.example.net/x",
                                 "file:///etc/passwd"])
def test_only_https_or_loopback(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_socket(*args: object, **kw: object) -> None:
        raise AssertionError("a connection was attempted")

    monkeypatch.setattr(socket, "create_connection", no_socket)
    with pytest.raises(PermanentError, match="only https"), download.open_url(url):
        pass
