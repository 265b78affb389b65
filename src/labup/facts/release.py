"""A Helm release's history, values and manifest, read once per run from Helm's own storage.

`helm history`, `helm status` and `helm get values` each cost a process and two API requests (GET
/version, then the list below); Helm 4's `status` also reads every resource of the release. Helm's
default storage driver (`secret`, Helm 3 and 4) keeps each revision in a Secret, so one list request
answers all of them. Seen with the real helm 4.1.4 and 3.17.3 against tests/kubeemu (install,
upgrade, a failed `upgrade --wait`), the Secret of revision 3:

    name: sh.helm.release.v1.rel.v3    type: helm.sh/release.v1
    labels: {modifiedAt: '1796370965', name: rel, owner: helm, status: failed, version: '3'}
    data: {release: <the API's base64 of helm's base64 of gzip (1f 8b 08 ...) of the release JSON>}
    JSON: {name: rel, namespace: t, version: 3, config: {image: {tag: v3}}, manifest: '---...',
           info: {status: failed, description: 'Upgrade "rel" failed: ...', first_deployed, last_deployed},
           chart: {metadata: {name: traefik, version: 41.3.0, appVersion: v3.7.11}, templates, values, ...}}
           (Helm 4 adds apply_method, Helm 3 info.deleted)

and helm itself reads them with `GET .../secrets?labelSelector=name=rel,owner=helm`. `helm history -o
json` shows each as {revision: version, status: info.status, chart: "<name>-<version>", app_version:
chart.metadata.appVersion, description: info.description, updated: info.last_deployed}; `helm get
values` is the latest revision's `config`; `helm get manifest` its `manifest`. As in helm, the JSON
decides (not the labels), and a payload without the gzip header is taken as plain JSON (releases
stored before helm compressed them).

Values may hold secrets: they stay in memory, are never logged nor journaled, and an error names the
Secret, never its content. A payload is refused past MAX_RELEASE_BYTES decompressed.

With HELM_DRIVER set to another driver (configmap, sql, memory), or HELM_KUBE* settings that point helm
at another cluster or identity than labup's kubeconfig, the reads go through the helm CLI as before
(each still asked once per run). Any helm write through the run's adapter drops the snapshot.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import os
import threading
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from labup.adapters.helm import HelmAdapter, HelmNotFound, Revision
from labup.errors import Unreadable
from labup.facts.kube import kube_reads

if TYPE_CHECKING:
    from labup.adapters.kube import KubeAdapter
    from labup.engine.context import Context
    from labup.engine.shared import RunShared

MAX_RELEASE_BYTES = 16 * 1024 * 1024  # one release's JSON, decompressed (helm's chart files included)
_GZIP = b"\x1f\x8b\x08"
_SECRET_DRIVERS = ("", "secret", "secrets")  # HELM_DRIVER values that mean the Secrets driver
# helm settings from the environment that make it talk to another cluster, or as another user, than the
# kubeconfig labup reads (`helm --help`, "Environment variables")
_HELM_CLUSTER_ENV = ("HELM_KUBECONTEXT", "HELM_KUBEAPISERVER", "HELM_KUBETOKEN", "HELM_KUBEASUSER",
                     "HELM_KUBEASGROUPS", "HELM_KUBECAFILE", "HELM_KUBETLS_SERVER_NAME",
                     "HELM_KUBEINSECURE_SKIP_TLS_VERIFY")


def shared_name(release: str, namespace: str) -> str:
    return f"release-facts:{namespace}/{release}"


def storage_readable(env: Mapping[str, str] | None = None) -> str | None:
    """None when helm keeps releases where labup can read them (the Secrets driver, the kubeconfig's
    cluster and user); else why not (the helm CLI is asked instead)."""
    env = os.environ if env is None else env
    driver = env.get("HELM_DRIVER", "").strip().lower()
    if driver not in _SECRET_DRIVERS:
        return f"HELM_DRIVER={driver}"
    redirected = [name for name in _HELM_CLUSTER_ENV if env.get(name)]
    return f"{redirected[0]} is set" if redirected else None


# -- one revision, decoded ------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredRevision:
    revision: Revision
    values: dict[str, Any] = field(repr=False)  # may hold secrets: never in a repr
    manifest: str = field(repr=False)


def decode_secret(secret: Mapping[str, Any], limit: int = MAX_RELEASE_BYTES) -> StoredRevision:
    """One release Secret, as helm decodes it. Unreadable naming the Secret when it does not decode."""
    meta = secret.get("metadata") or {}
    where = f"{meta.get('namespace') or '?'}/{meta.get('name') or '?'}"

    def bad(why: str) -> Unreadable:  # raised `from None`: a chained error could quote the data
        return Unreadable(f"Helm's release record {where} (a Secret) cannot be read: {why}",
                          hint=f"helm keeps this revision there; `kubectl -n {meta.get('namespace') or '?'} "
                               f"get secret {meta.get('name') or '?'}` shows whether it is helm's")

    raw = (secret.get("data") or {}).get("release")
    if not isinstance(raw, str) or not raw:
        raise bad("it has no `release` data") from None
    if len(raw) > 2 * limit:  # base64 twice of a payload already over the bound
        raise bad(f"it is over {_size(limit)}") from None
    try:
        payload = base64.b64decode(base64.b64decode(raw, validate=True), validate=True)
    except (binascii.Error, ValueError):
        raise bad("its data is not base64") from None
    if payload[:3] == _GZIP:
        try:
            payload = _gunzip(payload, limit)
        except ValueError as exc:
            raise bad(str(exc)) from None
        except zlib.error:
            raise bad("its data is not gzip") from None
    if len(payload) > limit:
        raise bad(f"it is over {_size(limit)}") from None
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError):  # UnicodeDecodeError included; RecursionError: nested too deep
        raise bad("its data is not JSON") from None
    version = doc.get("version") if isinstance(doc, dict) else None
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise bad("it holds no release revision") from None
    info = doc.get("info") if isinstance(doc.get("info"), dict) else {}
    chart = doc.get("chart") if isinstance(doc.get("chart"), dict) else {}
    about = chart.get("metadata") if isinstance(chart.get("metadata"), dict) else None
    # helm history prints MISSING for a release stored without its chart
    chart_text = f"{about.get('name') or ''}-{about.get('version') or ''}" if about else "MISSING"
    app_version = str(about.get("appVersion") or "") if about else "MISSING"
    revision = Revision(revision=version, status=str(info.get("status") or ""), chart=chart_text,
                        app_version=app_version, description=str(info.get("description") or ""),
                        updated=str(info.get("last_deployed") or ""))
    config = doc.get("config")
    return StoredRevision(revision, config if isinstance(config, dict) else {}, str(doc.get("manifest") or ""))


def _size(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MiB" if limit >= 1024 * 1024 else f"{limit} bytes"


def _gunzip(data: bytes, limit: int) -> bytes:
    """gzip members one after another (as Go's reader), refused past `limit` bytes of output."""
    out = bytearray()
    while data:
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out += inflate.decompress(data, limit + 1 - len(out))
        if len(out) > limit:
            raise ValueError(f"it is over {_size(limit)} once decompressed")
        if not inflate.eof:
            raise ValueError("its gzip data is cut short")
        data = inflate.unused_data
    return bytes(out)


# -- the snapshot ---------------------------------------------------------------------------------


class ReleaseFacts:
    """What `helm history`, `helm get values` and `helm get manifest` say of one release, each read
    at most once; safe to share between threads (verify's checks)."""

    what = "read release"  # for messages, e.g. "list helm's release Secrets of traefik"

    def __init__(self, release: str, namespace: str) -> None:
        self.release = release
        self.namespace = namespace
        self._lock = threading.Lock()

    def history(self) -> list[Revision]:
        """Every revision, oldest first; [] when there is no such release."""
        raise NotImplementedError

    def latest(self) -> Revision | None:
        history = self.history()
        return history[-1] if history else None

    def values(self, revision: int | None = None) -> dict[str, Any]:
        """The values the revision (default: the latest) was given: `helm get values` without --all."""
        raise NotImplementedError

    def manifest(self, revision: int | None = None) -> str:
        raise NotImplementedError


class StoredRelease(ReleaseFacts):
    """From Helm's release Secrets: one list request, decoded in memory."""

    def __init__(self, kube: Callable[[], KubeAdapter], release: str, namespace: str) -> None:
        super().__init__(release, namespace)
        self._kube = kube
        self._stored: dict[int, StoredRevision] | None = None
        self.what = f"list release {release}'s records (helm's Secrets in namespace {namespace})"

    def _load(self) -> dict[int, StoredRevision]:
        with self._lock:
            if self._stored is None:
                secrets = self._kube().list_secrets(self.namespace, label_selector=f"name={self.release},owner=helm")
                decoded = (decode_secret(s) for s in secrets)
                self._stored = {d.revision.revision: d for d in sorted(decoded, key=lambda d: d.revision.revision)}
            return self._stored

    def history(self) -> list[Revision]:
        return [stored.revision for stored in self._load().values()]

    def values(self, revision: int | None = None) -> dict[str, Any]:
        return copy.deepcopy(self._pick(revision, "get values").values)

    def manifest(self, revision: int | None = None) -> str:
        return self._pick(revision, "get manifest").manifest

    def _pick(self, revision: int | None, what: str) -> StoredRevision:
        stored = self._load()
        number = revision if revision is not None else (max(stored) if stored else None)
        if number is None or number not in stored:
            raise HelmNotFound(f"helm {what}: release: not found", "release: not found")
        return stored[number]


class CliRelease(ReleaseFacts):
    """Through the helm CLI (another storage driver): each of history/values/manifest asked once."""

    def __init__(self, helm: Callable[[], HelmAdapter], release: str, namespace: str) -> None:
        super().__init__(release, namespace)
        self._helm = helm
        self._history: list[Revision] | None = None
        self._values: dict[int | None, dict[str, Any]] = {}
        self._manifests: dict[int | None, str] = {}
        self.what = f"helm history {release}"

    def history(self) -> list[Revision]:
        with self._lock:
            if self._history is None:
                self._history = self._helm().history(self.release, self.namespace)
            return list(self._history)

    def values(self, revision: int | None = None) -> dict[str, Any]:
        with self._lock:
            if revision not in self._values:
                self._values[revision] = self._helm().get_values(self.release, self.namespace, revision)
            return copy.deepcopy(self._values[revision])

    def manifest(self, revision: int | None = None) -> str:
        with self._lock:
            if revision not in self._manifests:
                self._manifests[revision] = self._helm().get_manifest(self.release, self.namespace, revision)
            return self._manifests[revision]


def snapshot(shared: RunShared, release: str, namespace: str, kube: Callable[[], KubeAdapter],
             helm: Callable[[], HelmAdapter], *, fresh: bool = False) -> ReleaseFacts:
    """The run's snapshot of the release (made on first use, no I/O until asked). `kube` and `helm`
    give the adapter to read with, only when a read is due; `fresh` drops what was read before."""
    name = shared_name(release, namespace)
    if fresh:
        shared.drop(name)
    if storage_readable() is None:
        return shared.get(name, lambda: StoredRelease(kube, release, namespace))
    return shared.get(name, lambda: CliRelease(helm, release, namespace))


def forget(shared: RunShared, release: str, namespace: str) -> None:
    """A helm write happened (or may have): the release and its namespace's workloads and pods."""
    shared.drop(shared_name(release, namespace))
    kube_reads(shared).forget_workloads(namespace)


# -- for phases -----------------------------------------------------------------------------------


def helm_adapter(ctx: Context) -> HelmAdapter:
    """The run's helm (Unreadable when there is none); each write through it drops what the run
    read of that release."""

    def make(c: Context) -> HelmAdapter:
        h = HelmAdapter.from_context(c)
        h.after_write.append(lambda release, namespace: forget(c.shared, release, namespace))
        return h

    return ctx.adapter("helm", make)  # type: ignore[no-any-return]


def release_facts(ctx: Context, release: str | None = None, namespace: str | None = None, *,
                  fresh: bool = False) -> ReleaseFacts:
    """The run's snapshot of the lab's release (or of a journaled one, for an undo)."""
    from labup.adapters.kube import shared as kube

    t = ctx.lab.traefik
    return snapshot(ctx.shared, release or t.release, namespace or t.namespace, lambda: kube(ctx),
                    lambda: helm_adapter(ctx), fresh=fresh)
