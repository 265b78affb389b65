"""A helm release mirror on 127.0.0.1 for the helm phase tests: real archives built here from the real
helm binaries (.tools/helm/<version>/helm), their .sha256sum files, and the failures a mirror has
(connections dropped, 5xx, a wrong checksum). It records every request, so a test can prove that
a converged run or a dry run made none."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

HELM_DIR = Path(__file__).resolve().parents[1] / ".tools" / "helm"


def real_helm(version: str) -> Path:
    """`.tools/helm/<version>/helm`, checked to run here, or skip saying how to get it."""
    path = HELM_DIR / version / "helm"
    if not os.access(path, os.X_OK):
        pytest.skip(f"real helm {version} not installed at {path}: run `make install` "
                    "(or `python tools/fetch_helm.py .tools/helm`)")
    try:
        out = subprocess.run([str(path), "version", "--template", "{{.Version}}"], capture_output=True,
                             text=True, timeout=20, check=False).stdout.strip()
    except OSError as exc:  # e.g. the linux-amd64 build on another architecture
        pytest.skip(f"real helm {version} at {path} cannot run on this machine: {exc}")
    if out != f"v{version}":
        pytest.skip(f"real helm at {path} reports {out!r}, not v{version}")
    return path


def build_archive(binary: Path, version: str, tag: str) -> tuple[str, bytes]:
    """An archive laid out like helm's own: <tag>/, <tag>/helm (0755), <tag>/LICENSE, <tag>/README.md.
    Level 1 compression: the file is built on every test session, and the phase does not care."""
    name = f"helm-v{version}-{tag}.tar.gz"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
        folder = tarfile.TarInfo(tag)
        folder.type, folder.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(folder)
        tar.add(binary, arcname=f"{tag}/helm")
        for extra in ("LICENSE", "README.md"):
            data = f"{extra} of helm {version}\n".encode()
            info = tarfile.TarInfo(f"{tag}/{extra}")
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return name, buf.getvalue()


def sha256sum(name: str, data: bytes) -> bytes:
    """What helm publishes beside each archive: `<sha256>  <file name>`."""
    return f"{hashlib.sha256(data).hexdigest()}  {name}\n".encode()


class Mirror:
    """A threaded HTTP server serving `files` (name -> bytes) at /<name>."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = dict(files)
        self.requests: list[str] = []  # "GET /name", "DROP", "CONNECT host:443"
        self.drop_connections = 0  # close this many connections at once, before any answer
        self.fail_status: int | None = None  # answer every GET with this status
        self._lock = threading.Lock()
        mirror = self

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def verify_request(self, request: object, client_address: object) -> bool:
                with mirror._lock:
                    if mirror.drop_connections > 0:
                        mirror.drop_connections -= 1
                        mirror.requests.append("DROP")
                        return False  # socketserver closes it unanswered: a dropped connection
                return True

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _record(self) -> None:
                with mirror._lock:
                    mirror.requests.append(f"{self.command} {self.path}")

            def do_CONNECT(self) -> None:  # an https request sent through us as a proxy
                self._record()
                self.send_error(405)

            def do_GET(self) -> None:
                self._record()
                name = urlsplit(self.path).path.lstrip("/")  # proxy-form paths too
                if mirror.fail_status:
                    self.send_error(mirror.fail_status)
                    return
                data = mirror.files.get(name)
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                view = memoryview(data)
                for start in range(0, len(data), 1 << 20):
                    self.wfile.write(view[start:start + (1 << 20)])

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def gets(self) -> list[str]:
        return [r for r in self.requests if r.startswith("GET ")]

    def __enter__(self) -> Mirror:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def serving(files: dict[str, bytes]) -> Iterator[Mirror]:
    with Mirror(files) as mirror:
        yield mirror
