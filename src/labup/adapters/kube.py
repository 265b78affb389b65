"""The Kubernetes API, for every part of labup (phase namespace, phase traefik, verify's checks).

Built on the official client's kubeconfig loading and HTTP layer (auth, TLS, proxies), but not on its
generated typed APIs: importing `CoreV1Api` alone costs ~1.5 s here, more than the whole rest of a
labup run. Requests go through `ApiClient.call_api` on explicit paths and return the API's own JSON
as plain dicts (JSON-safe: steps can journal what they read).

Rules every call follows:
- `kubernetes` is imported at first use, never when labup is imported (`labup --help` stays fast).
- A request timeout on every call (`kubernetes.timeout_s`), and the client's own urllib3 retries are
  off: labup's retry policy (`ctx.retry`) is the only one, so attempts are bounded and counted once.
- Errors become labup's: 5xx/429/timeouts/connection errors -> `KubeUnavailable` (a TransientError,
  retried); 401 -> "the kubeconfig's credentials were refused"; 403 -> the permission that is missing;
  404/409 -> `KubeNotFound`/`KubeConflict`, which callers handle where they expect them.
- Nothing from the kubeconfig (token, keys) is ever put in a message: messages are also redacted.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from labup.errors import PermanentError, TransientError, Unreadable
from labup.redact import redact

if TYPE_CHECKING:
    from labup.config import Lab
    from labup.engine.context import Context

Obj = dict[str, Any]
T = TypeVar("T")

KUBECONFIG_HINT = ("set kubernetes.kubeconfig in lab.yaml (or $KUBECONFIG); on Talos, "
                   "`talosctl -n <control-plane address> kubeconfig <path>` writes one")
_PAGE = 500  # list page size: homelab lists fit in one page, big ones are followed with `continue`


# -- errors ---------------------------------------------------------------------------------------


API_HINT = "is the cluster up, and kubernetes.kubeconfig's server reachable from here?"


@dataclass(frozen=True)
class Call:
    """What a request does, in RBAC terms: a 403 names exactly this permission."""

    verb: str  # get, list, create, patch, delete
    resource: str  # plural, e.g. "namespaces"
    namespace: str | None = None  # None: cluster-scoped
    group: str = ""  # "" for the core group

    @property
    def permission(self) -> str:
        resource = f"{self.resource}.{self.group}" if self.group else self.resource
        scope = f"in namespace `{self.namespace}`" if self.namespace else "(cluster-scoped)"
        return f"`{self.verb}` on `{resource}` {scope}"


class KubeApiError(PermanentError):
    """The API answered with an error that retrying cannot fix."""

    def __init__(self, message: str, hint: str | None = None, *, status: int | None = None,
                 reason: str = "") -> None:
        super().__init__(redact(message), hint)
        self.status = status
        self.reason = reason


class KubeUnauthorized(KubeApiError):
    """401: the kubeconfig's token or client certificate was refused."""


class KubeForbidden(KubeApiError):
    """403: the kubeconfig's user lacks a permission (`call` names it)."""

    def __init__(self, message: str, hint: str | None = None, *, status: int | None = 403,
                 reason: str = "Forbidden", call: Call | None = None) -> None:
        super().__init__(message, hint, status=status, reason=reason)
        self.call = call


class KubeNotFound(KubeApiError):
    """404: the object (or the kind) does not exist."""


class KubeConflict(KubeApiError):
    """409: AlreadyExists on create, or a write raced another one."""


class KubeUnavailable(TransientError):
    """Worth a retry: 5xx, 429, a timeout, a refused or reset connection."""

    def __init__(self, message: str, hint: str | None = None, *, status: int | None = None) -> None:
        super().__init__(redact(message), hint)
        self.status = status


def error_for_status(call: Call, status: int, body: bytes | str | None, server: str,
                     kubeconfig: str = "the kubeconfig") -> Exception:
    """The labup error for an HTTP error answer of the API server (pure: unit-tested)."""
    reason, said = _status_body(body)
    detail = f"{status} {reason}".strip() + (f": {said}" if said else "")
    if status == 401:
        return KubeUnauthorized(
            f"the kubeconfig's credentials were refused by the Kubernetes API at {server} ({detail})",
            hint=f"the token or client certificate in {kubeconfig} is wrong or expired; check "
                 "kubernetes.context, or write a fresh kubeconfig (Talos: `talosctl kubeconfig`)",
            status=status, reason=reason or "Unauthorized")
    if status == 403:
        return KubeForbidden(
            f"permission denied: labup needs {call.permission}, which the kubeconfig's user does not "
            f"have ({detail})",
            hint="grant it to that user (a ClusterRole for cluster-scoped resources), or point "
                 "kubernetes.kubeconfig / kubernetes.context at an admin kubeconfig",
            reason=reason or "Forbidden", call=call)
    if status == 429 or status >= 500:
        return KubeUnavailable(f"the Kubernetes API at {server} could not {call.verb} "
                               f"{call.resource} ({detail})", status=status)
    kind = {404: KubeNotFound, 409: KubeConflict}.get(status, KubeApiError)
    return kind(f"the Kubernetes API refused to {call.verb} {call.resource} ({detail})",
                status=status, reason=reason)


def error_for_transport(call: Call, exc: BaseException, server: str) -> Exception:
    """The labup error for a request that got no HTTP answer (pure: unit-tested)."""
    text = _exc_text(exc)
    if _is_certificate_error(exc):  # retrying cannot fix a certificate the kubeconfig does not trust
        return KubeApiError(f"TLS with the Kubernetes API at {server} failed: {text}",
                            hint="the kubeconfig's certificate-authority does not match this server; "
                                 "write a fresh kubeconfig (Talos: `talosctl kubeconfig`)")
    if type(exc).__name__ == "LocationValueError":
        return KubeApiError(f"the kubeconfig's server address {server!r} is not usable: {text}",
                            hint=KUBECONFIG_HINT)
    return KubeUnavailable(f"no answer from the Kubernetes API at {server} to {call.verb} "
                           f"{call.resource}: {text}")


def _status_body(body: bytes | str | None) -> tuple[str, str]:
    """(reason, message) of a `Status` body; raw text (cut short) if it is not one."""
    if not body:
        return "", ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        doc = json.loads(text)
    except ValueError:
        return "", text.strip()[:200]
    if not isinstance(doc, dict):
        return "", text.strip()[:200]
    return str(doc.get("reason") or ""), str(doc.get("message") or "")


def _exc_text(exc: BaseException) -> str:
    # urllib3 wraps the socket error; its innermost reason is the readable part
    reason = getattr(exc, "reason", None)
    inner = reason if isinstance(reason, BaseException) else exc
    return (str(inner) or type(inner).__name__).strip().splitlines()[0][:200]


def _is_certificate_error(exc: BaseException) -> bool:
    import ssl

    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        reason = getattr(seen, "reason", None)
        seen = reason if isinstance(reason, BaseException) else (seen.__cause__ or seen.__context__)
    return False


# -- kubeconfig -----------------------------------------------------------------------------------


def kubeconfig_paths(lab_value: Path | None, env: Mapping[str, str] | None = None) -> tuple[list[Path], str]:
    """Where the kubeconfig is, and where that choice came from: lab.yaml, else $KUBECONFIG (a
    path list, merged like kubectl does), else ~/.kube/config."""
    env = os.environ if env is None else env
    if lab_value is not None:
        return [lab_value], "kubernetes.kubeconfig in lab.yaml"
    if env.get("KUBECONFIG"):
        paths = [Path(p).expanduser() for p in env["KUBECONFIG"].split(os.pathsep) if p]
        if paths:
            return paths, "$KUBECONFIG"
    return [Path("~/.kube/config").expanduser()], "the default ~/.kube/config"


# -- the adapter ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Contents:
    """What deleting a namespace would take with it (`namespace_contents`)."""

    found: list[str] = field(default_factory=list)  # "pods/traefik-abc", "ingressroutes.traefik.io/x"
    unchecked: list[str] = field(default_factory=list)  # kinds labup could not list, with why


class KubeAdapter:
    """One per run (`ctx.adapter("kube", KubeAdapter.from_context)`); safe to share across threads.

    Creating it does no I/O: the kubeconfig is read at the first request (or `check_config()`).
    """

    def __init__(self, kubeconfig: Path | None, context: str | None, timeout_s: float,
                 env: Mapping[str, str] | None = None) -> None:
        self.paths, self.source = kubeconfig_paths(kubeconfig, env)
        self.context = context
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._api: Any = None
        self._load_error: Unreadable | None = None

    @classmethod
    def from_lab(cls, lab: Lab, timeout_s: float | None = None) -> KubeAdapter:
        """timeout_s: a shorter bound than kubernetes.timeout_s (verify passes the time it has left)."""
        k = lab.kubernetes
        return cls(k.kubeconfig, k.context, min(k.timeout_s, timeout_s) if timeout_s else k.timeout_s)

    @classmethod
    def from_context(cls, ctx: Context) -> KubeAdapter:
        return cls.from_lab(ctx.lab)

    # -- configuration ----------------------------------------------------------------------------

    @property
    def where(self) -> str:
        """The kubeconfig, as the user should read it in a message (never its content)."""
        files = os.pathsep.join(str(p) for p in self.paths)
        context = f", context {self.context}" if self.context else ""
        return f"{files} ({self.source}{context})"

    def check_config(self) -> None:
        """Read the kubeconfig (no request): Unreadable with the path and a hint if it cannot be used."""
        self._client()

    def _client(self) -> Any:
        with self._lock:
            if self._load_error is not None:
                raise self._load_error
            if self._api is None:
                try:
                    self._api = self._load()
                except Unreadable as exc:
                    self._load_error = exc  # the same answer for every later call of this run
                    raise
            return self._api

    def _load(self) -> Any:
        existing = [p for p in self.paths if p.is_file()]
        if not existing:
            raise Unreadable(f"no kubeconfig at {self.where}", hint=KUBECONFIG_HINT)
        for path in existing:
            if not os.access(path, os.R_OK):
                raise Unreadable(f"cannot read the kubeconfig {path} ({self.source}): permission denied",
                                 hint=KUBECONFIG_HINT)
        from labup import warmup

        warmup.ready()  # never import kubernetes while the background import is half-way through it
        from kubernetes.client.api_client import ApiClient
        from kubernetes.client.configuration import Configuration
        from kubernetes.config.kube_config import load_kube_config

        from labup import __version__
        from labup.adapters import kubeexec

        kubeexec.install(self.timeout_s)  # an exec plugin gets the API calls' deadline
        config = Configuration()
        try:
            # persist_config=False: labup never rewrites the user's kubeconfig (token refreshes)
            load_kube_config(config_file=os.pathsep.join(str(p) for p in existing), context=self.context,
                             client_configuration=config, persist_config=False)
        except Exception as exc:  # ConfigException, YAML errors, a failing exec plugin: all "unusable"
            raise Unreadable(f"the kubeconfig {self.where} cannot be used: "
                             f"{redact(_exc_text(exc))}", hint=KUBECONFIG_HINT) from None
        # Off: urllib3 retries (default 3) and client-go-style Retry-After retries. labup's policy
        # retries the whole step, bounded, and each attempt is one request the server sees.
        config.retries = False
        config.client_go_retries = False
        api = ApiClient(configuration=config)
        api.user_agent = f"labup/{__version__}"  # shows in the API server's audit log
        return api

    # -- one request --------------------------------------------------------------------------------

    def request(self, method: str, path: str, call: Call, *, query: Mapping[str, Any] | None = None,
                body: Any = None, content_type: str | None = None) -> Obj:
        """One HTTP request, no retry; the decoded JSON answer, or a labup error."""
        data = self._send(method, path, call, query=query, body=body, content_type=content_type,
                          accept="application/json")
        if not data:
            return {}
        try:
            decoded = json.loads(data)
        except ValueError:
            raise KubeApiError(f"the Kubernetes API at {self.server} answered {call.verb} {call.resource} "
                               "with something that is not JSON") from None
        return decoded if isinstance(decoded, dict) else {"value": decoded}

    @property
    def server(self) -> str:
        return str(self._client().configuration.host)

    def _send(self, method: str, path: str, call: Call, *, query: Mapping[str, Any] | None = None,
              body: Any = None, content_type: str | None = None, accept: str) -> bytes:
        api = self._client()
        headers = {"Accept": accept}
        if content_type:
            headers["Content-Type"] = content_type
        params = [(k, v) for k, v in (query or {}).items() if v is not None]
        serialized = api.param_serialize(method=method, resource_path=path, query_params=params or None,
                                         header_params=headers, body=body, auth_settings=["BearerToken"])
        server = str(api.configuration.host)
        try:
            response = api.call_api(*serialized, _request_timeout=self.timeout_s)
            data = response.read()
        except Exception as exc:  # urllib3's HTTPError family and socket errors: no HTTP answer
            raise error_for_transport(call, exc, server) from None
        if not 200 <= response.status < 300:
            raise error_for_status(call, response.status, data, server, self.where)
        return bytes(data or b"")

    def _list(self, path: str, call: Call, query: Mapping[str, Any] | None = None,
              limit: int | None = None) -> list[Obj]:
        """Every item of a list (following `continue`), or the first `limit` items."""
        items: list[Obj] = []
        token: str | None = None
        while True:
            page = self.request("GET", path, call, query={**(query or {}), "limit": limit or _PAGE,
                                                          "continue": token})
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token or (limit and len(items) >= limit):
                return items[:limit] if limit else items

    def _find(self, path: str, call: Call) -> Obj | None:
        """GET one object, or None when it does not exist."""
        try:
            return self.request("GET", path, call)
        except KubeNotFound:
            return None

    def _delete(self, path: str, call: Call) -> bool:
        """DELETE one object; False when it was already gone."""
        try:
            self.request("DELETE", path, call)
        except KubeNotFound:
            return False
        return True

    # -- namespaces -------------------------------------------------------------------------------

    def get_namespace(self, name: str) -> Obj | None:
        """The namespace, or None if it does not exist."""
        return self._find(f"/api/v1/namespaces/{_q(name)}", Call("get", "namespaces"))

    def create_namespace(self, name: str, labels: Mapping[str, str] | None = None,
                         annotations: Mapping[str, str] | None = None) -> Obj:
        """Create it; KubeConflict if it already exists."""
        meta: Obj = {"name": name}
        if labels:
            meta["labels"] = dict(labels)
        if annotations:
            meta["annotations"] = dict(annotations)
        return self.request("POST", "/api/v1/namespaces", Call("create", "namespaces"),
                            body={"apiVersion": "v1", "kind": "Namespace", "metadata": meta},
                            content_type="application/json")

    def patch_namespace_labels(self, name: str, labels: Mapping[str, str | None]) -> Obj:
        """Set these labels (a None value removes the label); every other label is left as it is.

        A JSON merge patch: it names only these keys, so it cannot undo a concurrent change to others.
        """
        return self.request("PATCH", f"/api/v1/namespaces/{_q(name)}", Call("patch", "namespaces"),
                            body={"metadata": {"labels": dict(labels)}},
                            content_type="application/merge-patch+json")

    def delete_namespace(self, name: str, uid: str | None = None) -> bool:
        """Start deleting it (everything in it goes too); False if it was already gone.

        With `uid`, the API server deletes only that very object, not a namespace of the same name
        created since (a delete precondition).
        """
        body: Obj = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            self.request("DELETE", f"/api/v1/namespaces/{_q(name)}", Call("delete", "namespaces"),
                         body=body, content_type="application/json")
        except KubeNotFound:
            return False
        return True

    def namespace_contents(self, namespace: str, per_kind: int = 20) -> Contents:
        """Everything in the namespace that deleting it would delete, of every namespaced kind the
        server serves (found by discovery, so custom resources such as Traefik's IngressRoutes count).

        Not counted: events, and what Kubernetes puts in every namespace by itself (the
        `kube-root-ca.crt` ConfigMap, the `default` ServiceAccount and its legacy token Secret).
        Helm release Secrets DO count: deleting them would orphan the release.
        A kind that cannot be listed (403, an aggregated API that is down) lands in `unchecked`.
        """
        found: list[str] = []
        unchecked: list[str] = []
        for base, group, plural in self._namespaced_kinds(unchecked):
            call = Call("list", plural, namespace, group)
            try:
                items = self._list(f"{base}/namespaces/{_q(namespace)}/{plural}", call, limit=per_kind)
            except (KubeForbidden, KubeUnavailable) as exc:
                unchecked.append(f"{plural}{'.' + group if group else ''} ({exc.message})")
                continue
            except KubeNotFound:  # the kind went away since discovery
                continue
            kind = f"{plural}.{group}" if group else plural
            found += [f"{kind}/{(o.get('metadata') or {}).get('name')}" for o in items
                      if not _created_by_kubernetes(group, plural, o)]
        return Contents(found, unchecked)

    def _namespaced_kinds(self, unchecked: list[str]) -> Iterator[tuple[str, str, str]]:
        """(base path, group, plural) of every listable namespaced kind, preferred versions only."""
        core = self.request("GET", "/api/v1", Call("get", "discovery (/api/v1)"))
        yield from (("/api/v1", "", plural) for plural in _listable(core))
        groups = self.request("GET", "/apis", Call("get", "discovery (/apis)"))
        for g in groups.get("groups") or []:
            gv = ((g.get("preferredVersion") or {}).get("groupVersion")) or ""
            if not gv:
                continue
            try:
                doc = self.request("GET", f"/apis/{gv}", Call("get", f"discovery (/apis/{gv})"))
            except (KubeUnavailable, KubeForbidden) as exc:  # e.g. metrics-server down: unknown, not empty
                unchecked.append(f"{gv} ({exc.message})")
                continue
            except KubeNotFound:
                continue
            yield from ((f"/apis/{gv}", str(g.get("name") or ""), plural) for plural in _listable(doc))

    # -- secrets, workloads, pods, nodes, events (traefik phase, verify) --------------------------

    def list_secrets(self, namespace: str, label_selector: str | None = None) -> list[Obj]:
        """Secrets of the namespace, their data included (e.g. Helm's release records): the caller
        must never print or journal what it gets."""
        return self._list(f"/api/v1/namespaces/{_q(namespace)}/secrets", Call("list", "secrets", namespace),
                          {"labelSelector": label_selector})

    def get_secret(self, namespace: str, name: str) -> Obj | None:
        """One Secret (data included: never print or journal it), or None when absent."""
        return self._find(f"/api/v1/namespaces/{_q(namespace)}/secrets/{_q(name)}", Call("get", "secrets", namespace))

    def put_secret(self, namespace: str, name: str, data: Mapping[str, bytes], labels: Mapping[str, str],
                   existing: Obj | None, *, secret_type: str = "Opaque",
                   annotations: Mapping[str, str] | None = None) -> Obj:
        """Create the Secret, or replace `existing` (its resourceVersion: a concurrent change is a
        KubeConflict, never overwritten). Returns what the API stored."""
        import base64

        meta: Obj = {"name": name, "namespace": namespace, "labels": dict(labels)}
        if annotations:
            meta["annotations"] = dict(annotations)
        body: Obj = {"apiVersion": "v1", "kind": "Secret", "type": secret_type, "metadata": meta,
                     "data": {k: base64.b64encode(v).decode() for k, v in data.items()}}
        if existing is None:
            return self.request("POST", f"/api/v1/namespaces/{_q(namespace)}/secrets",
                                Call("create", "secrets", namespace), body=body, content_type="application/json")
        meta["resourceVersion"] = (existing.get("metadata") or {}).get("resourceVersion")
        return self.request("PUT", f"/api/v1/namespaces/{_q(namespace)}/secrets/{_q(name)}",
                            Call("update", "secrets", namespace), body=body, content_type="application/json")

    def delete_secret(self, namespace: str, name: str) -> bool:
        """False when it was already gone."""
        return self._delete(f"/api/v1/namespaces/{_q(namespace)}/secrets/{_q(name)}",
                            Call("delete", "secrets", namespace))

    def create_pod(self, namespace: str, pod: Obj) -> Obj:
        return self.request("POST", f"/api/v1/namespaces/{_q(namespace)}/pods", Call("create", "pods", namespace),
                            body=pod, content_type="application/json")

    def get_pod(self, namespace: str, name: str) -> Obj | None:
        return self._find(f"/api/v1/namespaces/{_q(namespace)}/pods/{_q(name)}", Call("get", "pods", namespace))

    def delete_pod(self, namespace: str, name: str) -> bool:
        """Start deleting it (its controller, if any, makes a new one); False when already gone."""
        return self._delete(f"/api/v1/namespaces/{_q(namespace)}/pods/{_q(name)}", Call("delete", "pods", namespace))

    def get_workload(self, kind: str, namespace: str, name: str) -> Obj | None:
        """A Deployment or DaemonSet (apps/v1), or None when absent."""
        plural = {"Deployment": "deployments", "DaemonSet": "daemonsets"}[kind]
        return self._find(f"/apis/apps/v1/namespaces/{_q(namespace)}/{plural}/{_q(name)}",
                          Call("get", plural, namespace, "apps"))

    def list_pods(self, namespace: str, label_selector: str | None = None,
                  field_selector: str | None = None) -> list[Obj]:
        return self._list(f"/api/v1/namespaces/{_q(namespace)}/pods", Call("list", "pods", namespace),
                          {"labelSelector": label_selector, "fieldSelector": field_selector})

    def pod_log(self, namespace: str, name: str, tail_lines: int = 2000, limit_bytes: int = 1 << 20) -> str:
        """The last lines the pod's (first) container wrote: Traefik's own account of ACME."""
        data = self._send("GET", f"/api/v1/namespaces/{_q(namespace)}/pods/{_q(name)}/log",
                          Call("get", "pods/log", namespace),
                          query={"tailLines": tail_lines, "limitBytes": limit_bytes}, accept="text/plain")
        return data.decode("utf-8", "replace")

    def get_node(self, name: str) -> Obj | None:
        """The node, or None if there is no node of that name."""
        return self._find(f"/api/v1/nodes/{_q(name)}", Call("get", "nodes"))

    def list_nodes(self, label_selector: str | None = None) -> list[Obj]:
        return self._list("/api/v1/nodes", Call("list", "nodes"), {"labelSelector": label_selector})

    def get_custom(self, group: str, version: str, plural: str, namespace: str, name: str) -> Obj | None:
        """One namespaced custom object (a cert-manager Certificate, a Traefik TLSStore), or None."""
        return self._find(f"/apis/{group}/{version}/namespaces/{_q(namespace)}/{plural}/{_q(name)}",
                          Call("get", plural, namespace, group))

    def create_custom(self, group: str, version: str, plural: str, namespace: str, body: Obj) -> Obj:
        return self.request("POST", f"/apis/{group}/{version}/namespaces/{_q(namespace)}/{plural}",
                            Call("create", plural, namespace, group), body=body, content_type="application/json")

    def replace_custom(self, group: str, version: str, plural: str, namespace: str, body: Obj) -> Obj:
        """PUT with the body's resourceVersion: a concurrent change is a KubeConflict, never overwritten."""
        name = body["metadata"]["name"]
        return self.request("PUT", f"/apis/{group}/{version}/namespaces/{_q(namespace)}/{plural}/{_q(name)}",
                            Call("update", plural, namespace, group), body=body, content_type="application/json")

    def delete_custom(self, group: str, version: str, plural: str, namespace: str, name: str) -> bool:
        """False when it was already gone."""
        return self._delete(f"/apis/{group}/{version}/namespaces/{_q(namespace)}/{plural}/{_q(name)}",
                            Call("delete", plural, namespace, group))

    def list_events(self, namespace: str, field_selector: str | None = None) -> list[Obj]:
        """Events of the namespace (e.g. `involvedObject.name=traefik-abc`): why a pod is Pending,
        why a ReplicaSet cannot create pods (`violates PodSecurity`)."""
        return self._list(f"/api/v1/namespaces/{_q(namespace)}/events", Call("list", "events", namespace),
                          {"fieldSelector": field_selector})


# -- helpers for callers ----------------------------------------------------------------------------


def shared(ctx: Context) -> KubeAdapter:
    """The run's one Kubernetes adapter (phases and steps share it)."""
    return ctx.adapter("kube", KubeAdapter.from_context)  # type: ignore[no-any-return]


def read(ctx: Context, fn: Callable[[], T], what: str) -> T:
    """A Kubernetes (or helm) read: retried, then Unreadable (see Context.read)."""
    return ctx.read(fn, what, hint=API_HINT)


def labels_of(obj: Mapping[str, Any] | None) -> dict[str, str]:
    return dict(((obj or {}).get("metadata") or {}).get("labels") or {})


def annotations_of(obj: Mapping[str, Any] | None) -> dict[str, str]:
    return dict(((obj or {}).get("metadata") or {}).get("annotations") or {})


def is_terminating(obj: Mapping[str, Any]) -> bool:
    meta = obj.get("metadata") or {}
    return bool(meta.get("deletionTimestamp")) or (obj.get("status") or {}).get("phase") == "Terminating"


_SKIPPED_KINDS = {("", "events"), ("events.k8s.io", "events")}  # history, not content


def _listable(doc: Mapping[str, Any]) -> list[str]:
    group = str(doc.get("groupVersion") or "").rpartition("/")[0]
    return [str(r["name"]) for r in doc.get("resources") or []
            if r.get("namespaced") and "/" not in str(r.get("name", "/")) and "list" in (r.get("verbs") or [])
            and (group, r.get("name")) not in _SKIPPED_KINDS]


def _created_by_kubernetes(group: str, plural: str, obj: Mapping[str, Any]) -> bool:
    meta = obj.get("metadata") or {}
    name = meta.get("name")
    if group:
        return False
    if plural == "configmaps":
        return bool(name == "kube-root-ca.crt")
    if plural == "serviceaccounts":
        return bool(name == "default")
    if plural == "secrets":
        return (obj.get("type") == "kubernetes.io/service-account-token"
                and (meta.get("annotations") or {}).get("kubernetes.io/service-account.name") == "default")
    return False


def _q(name: str) -> str:
    return quote(name, safe="")
