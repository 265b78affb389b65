"""HTTP front: parse a Kubernetes API request, route it, answer JSON (or stream a watch)."""

from __future__ import annotations

import json
import socket
import struct
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

from . import discovery, patching, protobuf
from .errors import ApiError
from .resources import ResourceType
from .selectors import field_selector, label_selector
from .traffic import LoggedRequest

if TYPE_CHECKING:
    from .server import KubeEmulator

Obj = dict[str, Any]


@dataclass(frozen=True)
class Target:
    """A parsed resource path: /api/v1/namespaces/NS/PLURAL/NAME/SUB or its cluster-scoped forms."""

    rt: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None


class Response(Exception):
    """Raised by routes to answer; carries a JSON-able body."""

    def __init__(self, code: int, body: Any, content_type: str = "application/json") -> None:
        super().__init__(code)
        self.code = code
        self.body = body
        self.content_type = content_type


class ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked watches, like a real API server
    disable_nagle_algorithm = True  # headers and body go out in two writes: avoid 40 ms delayed-ACK stalls
    emu: KubeEmulator  # set on the subclass the server builds

    # --- plumbing ------------------------------------------------------------------------------
    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the RequestLog is the record."""

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, code: int, body: Any, content_type: str = "application/json",
              extra: dict[str, str] | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        if not self._logged:  # log before answering: a test reading the log right after sees it
            self._log(*self._request, code)
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _serve(self) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path).rstrip("/") or "/"
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        body = self._read_body()
        code = 500
        self._logged = False
        self._request = (path, query, content_type)
        try:
            self._check_auth()
            fault = self.emu.faults.take(self.command, path)
            if fault is not None and fault.drop:
                self._serve_then_drop(path, query, content_type, body, fault.drop)
                return
            if fault is not None:
                raise ApiError(fault.status, fault.message or f"injected fault: {fault.status}")
            self._route(path, query, content_type, body)
            code = 200  # a watch: already streamed and logged
        except Response as r:
            code = r.code
            self._send(r.code, r.body, r.content_type)
        except ApiError as e:
            code = e.code
            extra = {"Retry-After": "1"} if e.code == 429 else None
            self._send(e.code, e.status(), extra=extra)
        except Exception as e:  # an emulator bug must still answer, and be visible
            code = 500
            self._send(500, ApiError(500, f"kubeemu internal error: {e!r}").status())
            self.emu.internal_errors.append(f"{self.command} {self.path}: {e!r}")
        finally:
            if not self._logged:
                self._log(path, query, content_type, code)

    def _serve_then_drop(self, path: str, query: dict[str, str], content_type: str, body: bytes, how: str) -> None:
        """Route the request (its write is stored), then close the connection with no answer."""
        code = 200
        try:
            self._route(path, query, content_type, body)
        except Response as r:
            code = r.code
        except ApiError as e:
            code = e.code
        self._log(path, query, content_type, code)
        self.close_connection = True
        if how == "reset":  # SO_LINGER 0: close() sends RST, the client reads "connection reset by peer"
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        else:
            self.connection.shutdown(socket.SHUT_RDWR)

    def _log(self, path: str, query: dict[str, str], content_type: str, code: int) -> None:
        self._logged = True
        self.emu.log.add(LoggedRequest(self.command, path, query, content_type, code,
                                       self.headers.get("User-Agent", "")))

    def _check_auth(self) -> None:
        token = self.emu.token
        sent = self.headers.get("Authorization")
        if not token or (sent is None and not self.emu.require_auth):
            return  # client-go sends no credentials to an http:// server, so absence is allowed by default
        if sent != f"Bearer {token}":
            raise ApiError(401, "Unauthorized")

    # --- routing -------------------------------------------------------------------------------
    def _route(self, path: str, query: dict[str, str], content_type: str, body: bytes) -> None:
        emu = self.emu
        reg = emu.registry
        parts = [p for p in path.split("/") if p]
        if self.command == "GET":
            static = {
                "/version": lambda: discovery.version(emu.kube_version),
                "/api": lambda: discovery.core_versions(f"127.0.0.1:{emu.port}"),
                "/apis": lambda: discovery.group_list(reg),
                "/openapi/v3": lambda: discovery.openapi_v3_root(reg),
            }
            if path in static:
                raise Response(200, static[path]())
            if path in ("/healthz", "/readyz", "/livez"):
                raise Response(200, b"ok", "text/plain")
            if path.startswith("/openapi/v3/"):
                doc = discovery.openapi_v3_gv(reg, path.removeprefix("/openapi/v3/"))
                if doc is not None:
                    raise Response(200, doc)
            if path == "/api/v1" or (len(parts) == 3 and parts[0] == "apis"):
                group, ver = ("", "v1") if path == "/api/v1" else (parts[1], parts[2])
                doc = discovery.resource_list(reg, group, ver)
                if doc is not None:
                    raise Response(200, doc)
            if len(parts) == 2 and parts[0] == "apis":
                doc = discovery.group(reg, parts[1])
                if doc is not None:
                    raise Response(200, doc)
        target = self._target(parts)
        if target is None:
            raise ApiError(404, "the server could not find the requested resource")
        self._resource(target, query, content_type, body)

    def _target(self, parts: list[str]) -> Target | None:
        if len(parts) >= 3 and parts[:2] == ["api", "v1"]:
            group, ver, rest = "", "v1", parts[2:]
        elif len(parts) >= 4 and parts[0] == "apis":
            group, ver, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        namespace: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
            namespace, rest = rest[1], rest[2:]
        if len(rest) > 3:
            return None
        rt = self.emu.registry.lookup(group, ver, rest[0])
        if rt is None or (namespace is not None and not rt.namespaced):
            return None
        name = rest[1] if len(rest) > 1 else None
        if name is not None and rt.namespaced and namespace is None:
            return None  # /api/v1/pods/NAME is not a thing
        return Target(rt, namespace, name, rest[2] if len(rest) > 2 else None)

    # --- resources -----------------------------------------------------------------------------
    def _decode(self, content_type: str, body: bytes) -> Any:
        if not body:
            return None
        if content_type == protobuf.PROTOBUF:
            return protobuf.decode(body)
        try:
            if content_type in ("application/yaml", patching.APPLY_PATCH):
                return yaml.safe_load(body)
            return json.loads(body)
        except (ValueError, yaml.YAMLError) as exc:
            raise ApiError(400, f"cannot decode request body: {exc}") from exc

    def _resource(self, t: Target, query: dict[str, str], content_type: str, body: bytes) -> None:
        emu, rt, method = self.emu, t.rt, self.command
        dry_run = bool(query.get("dryRun"))
        if t.name is None:
            if method == "GET":
                match = self._matcher(query)
                if query.get("watch") in ("true", "1"):
                    self._watch(t, query, match)
                    return
                items, rv = emu.store.list(rt, t.namespace, match)
                raise Response(200, _list(rt, items, rv))
            if method == "POST":
                obj = self._decode(content_type, body)
                if not isinstance(obj, dict):
                    raise ApiError(400, "request body must be an object")
                obj = emu.admission.admit("CREATE", rt, t.namespace, obj)
                raise Response(201, emu.store.create(rt, t.namespace, obj, dry_run=dry_run))
            if method == "DELETE":
                items, rv = emu.store.list(rt, t.namespace, self._matcher(query))
                for item in items:
                    emu.store.delete(rt, t.namespace, item["metadata"]["name"], dry_run=dry_run)
                raise Response(200, _list(rt, items, rv))
            raise ApiError(405, f"method {method} not allowed on a collection")
        name = t.name
        if t.subresource == "log" and rt.kind == "Pod" and method == "GET":
            emu.store.get(rt, t.namespace, name)  # 404 for a pod that does not exist, as the API server says
            tail, limit = query.get("tailLines"), query.get("limitBytes")
            raise Response(200, emu.read_log(t.namespace or "", name, int(tail) if tail else None,
                                             int(limit) if limit else None), "text/plain")
        if method == "GET":
            raise Response(200, emu.store.get(rt, t.namespace, name))
        if method == "PUT":
            obj = self._decode(content_type, body)
            if not isinstance(obj, dict):
                raise ApiError(400, "request body must be an object")
            old = emu.store.get(rt, t.namespace, name)
            obj = emu.admission.admit("UPDATE", rt, t.namespace, obj, old)
            raise Response(200, emu.store.update(rt, t.namespace, name, obj, subresource=t.subresource,
                                                 dry_run=dry_run))
        if method == "PATCH":
            self._patch(t, name, query, content_type, body, dry_run)
        if method == "DELETE":
            options = self._decode_delete_options(content_type, body)
            propagation = query.get("propagationPolicy") or options.get("propagationPolicy") or "Background"
            old = emu.store.get(rt, t.namespace, name)
            emu.admission.admit("DELETE", rt, t.namespace, old, old)
            raise Response(200, emu.store.delete(rt, t.namespace, name, dry_run=dry_run,
                                                 propagation=propagation))
        raise ApiError(405, f"method {method} not allowed")

    def _decode_delete_options(self, content_type: str, body: bytes) -> Obj:
        if content_type == protobuf.PROTOBUF or not body:
            return {}  # typed clients may send DeleteOptions as protobuf: defaults are fine
        try:
            opts = json.loads(body)
        except ValueError:
            return {}
        return opts if isinstance(opts, dict) else {}

    def _patch(self, t: Target, name: str, query: dict[str, str], content_type: str, body: bytes,
               dry_run: bool) -> None:
        emu, rt = self.emu, t.rt
        if content_type not in patching.PATCH_TYPES:
            raise ApiError(415, f"the body of the request was in an unknown format - accepted media types "
                                f"include: {', '.join(patching.PATCH_TYPES)}")
        patch = self._decode(content_type, body)
        live = emu.store.find(rt, t.namespace, name)
        if content_type == patching.APPLY_PATCH:
            manager = query.get("fieldManager")
            if not manager:
                raise ApiError(422, "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: "
                                    "is required for apply patch")
            if not isinstance(patch, dict):
                raise ApiError(400, "apply patch must be an object")
            patch.setdefault("metadata", {})["name"] = name
            if live is None:
                obj = emu.admission.admit("CREATE", rt, t.namespace, patch)
                created = emu.store.create(rt, t.namespace, obj, dry_run=dry_run)
                if not dry_run:
                    emu.store.remember_applied(created["metadata"]["uid"], manager, patch)
                raise Response(201, created)
            patching.check_apply_conflicts(emu.field_owners.get((rt.kind, t.namespace, name), []), live, patch,
                                           force=query.get("force") == "true")
            uid = live["metadata"]["uid"]
            new = patching.apply_patch(live, patch, emu.store.last_applied(uid, manager))
            if not dry_run:
                emu.store.remember_applied(uid, manager, patch)
        else:
            if live is None:
                raise ApiError(404, f'{rt.plural} "{name}" not found',
                               details={"name": name, "group": rt.group, "kind": rt.plural})
            if content_type == patching.JSON_PATCH:
                new = patching.json_patch(live, patch)
            elif content_type == patching.MERGE_PATCH:
                new = patching.merge_patch(live, patch)
            else:
                new = patching.strategic_merge_patch(live, patch)
        new = emu.admission.admit("UPDATE", rt, t.namespace, new, live)
        raise Response(200, emu.store.update(rt, t.namespace, name, new, subresource=t.subresource,
                                             dry_run=dry_run))

    @staticmethod
    def _matcher(query: dict[str, str]) -> Any:
        by_label = label_selector(query.get("labelSelector"))
        by_field = field_selector(query.get("fieldSelector"))
        return lambda obj: by_label(obj) and by_field(obj)

    # --- watch ---------------------------------------------------------------------------------
    def _chunk(self, payload: Obj) -> None:
        data = json.dumps(payload).encode() + b"\n"
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _watch(self, t: Target, query: dict[str, str], match: Any) -> None:
        """Stream events as chunked JSON lines until timeoutSeconds, server stop or client hang-up."""
        emu, rt = self.emu, t.rt
        timeout = min(float(query.get("timeoutSeconds") or emu.max_watch_seconds), emu.max_watch_seconds)
        deadline = time.monotonic() + timeout
        rv_param = query.get("resourceVersion") or ""
        send_initial = query.get("sendInitialEvents") == "true"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._log(urlsplit(self.path).path.rstrip("/"), query, "", 200)  # now: watches last long
        try:
            if rv_param in ("", "0") or send_initial:
                items, last_rv = emu.store.list(rt, t.namespace, match)
                for item in items:
                    self._chunk({"type": "ADDED", "object": item})
                if send_initial:
                    # The watch-list protocol: a bookmark marks the end of the initial state.
                    self._chunk({"type": "BOOKMARK", "object": {
                        "apiVersion": rt.group_version, "kind": rt.kind,
                        "metadata": {"resourceVersion": str(last_rv),
                                     "annotations": {"k8s.io/initial-events-end": "true"}}}})
            else:
                last_rv = int(rv_param)
            while not emu.store.closed and (left := deadline - time.monotonic()) > 0:
                emu.store.wait_for_change(last_rv, min(left, 1.0))
                events = emu.store.events_after(last_rv)
                for ev in events:
                    last_rv = ev.rv
                    if (ev.rt.group, ev.rt.plural) != (rt.group, rt.plural):
                        continue
                    if t.namespace and ev.obj["metadata"].get("namespace") != t.namespace:
                        continue
                    if match(ev.obj):
                        self._chunk({"type": ev.type, "object": ev.obj})
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True


def _list(rt: ResourceType, items: list[Obj], rv: int) -> Obj:
    return {"apiVersion": rt.group_version, "kind": f"{rt.kind}List",
            "metadata": {"resourceVersion": str(rv)}, "items": items}

