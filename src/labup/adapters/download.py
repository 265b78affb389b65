"""HTTP downloads over the standard library: a timeout on every socket operation, a sha256 computed
while streaming, and every failure sorted into TransientError (worth a retry: refused, reset, cut
short, timed out, HTTP 5xx/429) or PermanentError (retrying cannot help: 404, a bad certificate).

Nothing here retries: the caller wraps each request in ctx.retry, so the lab's policy applies.
Environment proxies (https_proxy, no_proxy) are honoured, as every download tool does.
"""

from __future__ import annotations

import hashlib
import http.client
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any
from urllib.parse import urlsplit

from labup import __version__
from labup.engine.retry import is_transient
from labup.errors import LabupError, PermanentError, TransientError

TIMEOUT_S = 30.0  # per connect and per read, not for the whole transfer: a slow link is fine
CHUNK = 256 * 1024
MAX_BYTES = 512 * 1024 * 1024  # a helm archive is ~20 MB: anything this big is not one
MAX_TEXT = 64 * 1024

_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


class ChecksumMismatch(PermanentError):
    """The download does not match its published sha256: never installed, never retried."""


class _NoDowngrade(urllib.request.HTTPRedirectHandler):
    """Follow redirects, but never from https to plain http (a mirror must not strip TLS)."""

    def redirect_request(self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        if urlsplit(req.full_url).scheme == "https" and urlsplit(newurl).scheme != "https":
            raise PermanentError(f"GET {req.full_url}: refused a redirect from https to {newurl}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class Download:
    """An open response: its length (when the server says) and a body to copy or read."""

    def __init__(self, url: str, response: Any) -> None:
        self.url = url
        self._response = response
        length = response.headers.get("Content-Length")
        self.length: int | None = int(length) if length and length.isdigit() else None

    def copy_to(self, dest: IO[bytes], on_chunk: Callable[[int], None] | None = None,
                limit: int = MAX_BYTES, deadline: float | None = None) -> str:
        """Stream the body into dest; return its sha256 (hex). A body cut short is transient; one
        still coming at `deadline` (time.monotonic()) is abandoned: a mirror trickling a byte every
        few seconds never trips a read timeout, yet would hold the lab's lock for hours."""
        if self.length is not None and self.length > limit:
            raise PermanentError(f"GET {self.url}: {self.length} bytes is more than the {limit} allowed")
        digest = hashlib.sha256()
        received = 0
        started = time.monotonic()
        while True:
            if deadline is not None and time.monotonic() > deadline:
                raise PermanentError(f"GET {self.url}: only {received} bytes after {time.monotonic() - started:.0f}s; "
                                     "gave up (retry.total_s bounds a download)",
                                     hint="the mirror is too slow: try again later or set helm.download_url")
            try:
                chunk = self._response.read1(CHUNK)  # what has arrived: the deadline is checked between reads
            except Exception as exc:
                raise network_error(exc, self.url) from exc
            if not chunk:
                break
            received += len(chunk)
            if received > limit:
                raise PermanentError(f"GET {self.url}: more than the {limit} bytes allowed")
            digest.update(chunk)
            try:
                dest.write(chunk)
            except OSError as exc:  # the local disk, not the network: no retry will help
                raise PermanentError(f"could not store the download of {self.url}: {exc}") from exc
            if on_chunk:
                on_chunk(len(chunk))
        if self.length is not None and received != self.length:
            # http.client returns a short body without complaint when the peer just closes
            raise TransientError(f"GET {self.url}: connection closed after {received} of "
                                 f"{self.length} bytes")
        return digest.hexdigest()

    def text(self, limit: int = MAX_TEXT) -> str:
        """The whole (small) body as text."""
        try:
            body = self._response.read(limit + 1)
        except Exception as exc:
            raise network_error(exc, self.url) from exc
        if len(body) > limit:
            raise PermanentError(f"GET {self.url}: more than {limit} bytes for a small text file")
        if self.length is not None and len(body) != self.length:
            raise TransientError(f"GET {self.url}: connection closed after {len(body)} of "
                                 f"{self.length} bytes")
        return body.decode("utf-8", "replace")


@contextmanager
def open_url(url: str, *, timeout: float = TIMEOUT_S) -> Iterator[Download]:
    """GET url; failures come out sorted (TransientError or PermanentError), the connection is
    always closed. Only https, except to this machine itself (a mirror on loopback: tests, a local
    cache): a plain-http mirror elsewhere could swap both the archive and its checksum."""
    parts = urlsplit(url)
    if parts.scheme != "https" and not (parts.scheme == "http" and _is_loopback(parts.hostname or "")):
        raise PermanentError(f"GET {url}: only https downloads (or http to this machine's loopback)",
                             hint="set helm.download_url to an https mirror")
    request = urllib.request.Request(url, headers={"User-Agent": f"labup/{__version__}"})
    opener = urllib.request.build_opener(_NoDowngrade)
    try:
        response = opener.open(request, timeout=timeout)
    except LabupError:
        raise
    except Exception as exc:
        raise network_error(exc, url) from exc
    try:
        yield Download(url, response)
    finally:
        response.close()


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def fetch_text(url: str, *, timeout: float = TIMEOUT_S, limit: int = MAX_TEXT) -> str:
    with open_url(url, timeout=timeout) as got:
        return got.text(limit)


def network_error(exc: BaseException, url: str) -> LabupError:
    """Sort a urllib/http.client/socket failure into transient or permanent, with a readable message."""
    if isinstance(exc, LabupError):
        return exc
    if isinstance(exc, urllib.error.HTTPError):
        text = f"GET {url}: HTTP {exc.code} {exc.reason}"
        if exc.code == 429 or 500 <= exc.code < 600:
            return TransientError(text)
        hint = ("is this version published for this platform at the mirror (helm.download_url)?"
                if exc.code == 404 else None)
        return PermanentError(text, hint=hint)
    reason: BaseException = exc
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException):
        reason = exc.reason  # urllib wraps connect errors; the socket error inside decides
    text = f"GET {url}: {_describe(reason)}"
    if isinstance(reason, socket.gaierror):
        # a name that does not resolve now may resolve in a moment only if the resolver said so
        return TransientError(text) if reason.errno == socket.EAI_AGAIN else PermanentError(
            text, hint="check the host name in helm.download_url and this machine's DNS")
    if isinstance(reason, http.client.HTTPException) or is_transient(reason):
        return TransientError(text)  # dropped, reset, refused, cut short, timed out
    return PermanentError(text)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    if isinstance(exc, http.client.IncompleteRead):
        return f"connection closed mid-body ({len(exc.partial)} bytes read)"
    return str(exc) or type(exc).__name__


def parse_sha256sum(text: str, filename: str, url: str) -> str:
    """The digest from a `.sha256sum` file (`<sha256>  <file>`, or the bare digest), lower case.

    A file naming another archive is refused: it would 'verify' the wrong thing."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    parts = line.split()
    if not parts or not _SHA256.match(parts[0]):
        raise PermanentError(f"{url}: not a sha256sum file (expected '<64 hex digits>  {filename}')")
    if len(parts) > 1 and parts[1].lstrip("*") != filename:
        raise PermanentError(f"{url}: names '{parts[1]}', not {filename}")
    return parts[0].lower()
