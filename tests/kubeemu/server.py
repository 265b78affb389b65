"""KubeEmulator: the store, controllers and HTTP server wired together, on 127.0.0.1 only."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterable
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from . import discovery
from .admission import Admission, AdmissionHook
from .controllers import Controllers
from .handler import ApiHandler
from .kubeconfig import write_kubeconfig
from .resources import Registry, ResourceType
from .scheduling import Scheduler, make_node
from .store import Store
from .traffic import Fault, FaultInjector, RequestLog

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


class KubeEmulator:
    """An in-memory Kubernetes API over real HTTP. Use as a context manager or start()/stop()."""

    def __init__(self, *, token: str | None = None, require_auth: bool = False, nodes: Iterable[str] = ("emu-node-1",),
                 kube_version: str = discovery.KUBE_VERSION, max_watch_seconds: float = 60.0,
                 listen_socket: socket.socket | None = None) -> None:
        # A wrong bearer token always gets 401. A missing one only with require_auth: client-go
        # (helm) never sends credentials to a plain-http server, the Python client does.
        self.token = token
        self.require_auth = require_auth
        self.kube_version = kube_version
        self.max_watch_seconds = max_watch_seconds  # caps client timeoutSeconds so stop() is prompt
        # A socket bound (e.g. to 127.0.0.1 inside a network namespace) by the caller: served instead of
        # a fresh one in the test process's own namespace. The emulator closes it on stop().
        self.listen_socket = listen_socket
        self.registry = Registry()
        self.store = Store(self.registry)
        self.admission = Admission(self.store)
        self.controllers = Controllers(self.store, self.registry, self.admission)
        self.store.listeners.append(self.controllers.on_event)
        self.log = RequestLog()
        self.faults = FaultInjector()
        # fields another field manager owns through an Update (kubectl scale/edit): (kind, namespace,
        # name) -> [(dotted path, "kubectl-scale", "apps/v1")]; a server-side apply changing one conflicts
        self.field_owners: dict[tuple[str, str | None, str], list[tuple[str, str, str]]] = {}
        self.internal_errors: list[str] = []  # emulator bugs seen while serving; tests assert empty
        # what each pod's container "wrote" ((namespace, pod) -> lines), served by GET .../pods/NAME/log
        self.pod_logs: dict[tuple[str, str], list[str]] = {}
        self._logs_lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        for ns in DEFAULT_NAMESPACES:
            self.create("v1", "Namespace", {"metadata": {"name": ns}})
        for i, name in enumerate(nodes):
            self.create("v1", "Node", make_node(name, i))

    def append_log(self, namespace: str, pod: str, *lines: str) -> None:
        with self._logs_lock:
            self.pod_logs.setdefault((namespace, pod), []).extend(lines)

    def read_log(self, namespace: str, pod: str, tail_lines: int | None, limit_bytes: int | None) -> bytes:
        """Like the kubelet: the last `tailLines` lines, then at most `limitBytes` bytes of them."""
        with self._logs_lock:
            lines = list(self.pod_logs.get((namespace, pod), []))
        if tail_lines is not None:
            lines = lines[-tail_lines:] if tail_lines > 0 else []
        data = "".join(f"{line}\n" for line in lines).encode()
        return data[:limit_bytes] if limit_bytes is not None else data

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self) -> KubeEmulator:
        handler = type("BoundApiHandler", (ApiHandler,), {"emu": self})
        if self.listen_socket is None:
            self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        else:
            self._httpd = _serve_socket(self.listen_socket, handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name="kubeemu", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.store.close()  # ends open watches
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> KubeEmulator:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "start() first"
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_kubeconfig(self, path: str | os.PathLike[str], context: str = "emu", token: str | None = None,
                         namespace: str = "default") -> Path:
        """token=None uses the emulator's own token (if any); pass another to test a wrong one."""
        return write_kubeconfig(path, self.url, context=context,
                                token=self.token if token is None else token, namespace=namespace)

    # --- knobs for tests -----------------------------------------------------------------------
    def register(self, rt: ResourceType) -> None:
        """Serve one more kind (CRDs created through the API register themselves)."""
        self.registry.register(rt)

    def inject_fault(self, method: str, path: str, status: int, count: int = 1, message: str = "") -> Fault:
        """The next `count` requests with METHOD ("*" = any) whose path matches regex `path` get `status`."""
        return self.faults.add(method, path, status, count, message)

    def drop_after_commit(self, method: str, path: str, count: int = 1, how: str = "eof") -> Fault:
        """The next `count` matching requests are served (a write is stored) but never answered: the
        connection is closed (`how="eof"`) or reset (`how="reset"`) instead."""
        if how not in ("eof", "reset"):
            raise ValueError(f"how must be eof or reset, not {how!r}")
        return self.faults.add(method, path, 0, count, drop=how)

    def own_field(self, api_version: str, kind: str, name: str, namespace: str | None, path: str,
                  manager: str) -> None:
        """Record that `manager` (an Update, e.g. `kubectl scale`: "kubectl-scale") owns `path` (".spec.replicas")
        of the object: a server-side apply by another manager that sets it to another value gets the
        API server's 409 Conflict, unless it forces (`force=true`), which takes the field over."""
        self._rt(api_version, kind)
        self.field_owners.setdefault((kind, namespace, name), []).append((path, manager, api_version))

    def never_ready(self, name: str, image: str | None = None) -> None:
        """Pods created from now on for Deployment/DaemonSet `name` (or "namespace/name") run but never
        become ready; with `image`, only pods whose template uses that image (a "broken release")."""
        self.controllers.never_ready.add((name, image))
        self.controllers.resync()

    def add_admission_hook(self, hook: AdmissionHook) -> None:
        self.admission.hooks.append(hook)

    def set_scheduler(self, scheduler: Scheduler) -> None:
        self.controllers.scheduler = scheduler
        self.controllers.resync()

    # --- direct object access (no HTTP, not logged) --------------------------------------------
    def _rt(self, api_version: str, kind: str) -> ResourceType:
        rt = self.registry.by_kind(api_version, kind)
        if rt is None:
            raise KeyError(f"kind {api_version}/{kind} is not served")
        return rt

    def create(self, api_version: str, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        rt = self._rt(api_version, kind)
        return self.store.create(rt, obj.get("metadata", {}).get("namespace"), obj)

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        return self.store.get(self._rt(api_version, kind), namespace, name)

    def find(self, api_version: str, kind: str, name: str, namespace: str | None = None
             ) -> dict[str, Any] | None:
        return self.store.find(self._rt(api_version, kind), namespace, name)

    def list(self, api_version: str, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return self.store.list(self._rt(api_version, kind), namespace)[0]

    def update(self, api_version: str, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        return self.store.update(self._rt(api_version, kind), meta.get("namespace"), meta["name"], obj)


def _serve_socket(sock: socket.socket, handler: type[ApiHandler]) -> ThreadingHTTPServer:
    """A server on a socket the caller bound: the sockets it accepts live where that one was made."""
    host, port = sock.getsockname()[:2]
    if host != "127.0.0.1":
        raise ValueError(f"kubeemu serves on 127.0.0.1 only, not {host}")
    httpd = ThreadingHTTPServer((host, port), handler, bind_and_activate=False)
    httpd.socket.close()  # the unbound one the constructor made
    httpd.socket = sock
    httpd.server_address = (host, port)
    httpd.server_activate()  # listen() (again, if the caller did): harmless
    return httpd
