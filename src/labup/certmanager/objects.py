"""topology ha: cert-manager's Issuer (ACME, HTTP-01 through Traefik) and Certificate (traefik.domains,
into the Secret Traefik's default TLS store serves), in Traefik's namespace.

labup creates them itself, not through a Helm release: Helm 4's --wait=watcher reads a Certificate's
Ready=False as "in progress" (kstatus checkReadyCondition, cli-utils), so a release holding one would
wait for Let's Encrypt and roll Traefik back when the order fails, hiding the reason. verify waits for
the certificate instead (traefik.cert_timeout_s) and names cert-manager's reason.

Converged when each object carries labup's label and what labup sets is in its spec (keys the API
server or cert-manager add are not labup's to judge). Undo deletes what the run created and puts back
the spec it replaced.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from labup.adapters.kube import read
from labup.adapters.kube import shared as kube
from labup.engine.model import Observation, Step
from labup.errors import PreflightError

if TYPE_CHECKING:
    from labup.config import Lab
    from labup.engine.context import Context

GROUP, VERSION = "cert-manager.io", "v1"
PLURALS = {"Issuer": "issuers", "Certificate": "certificates"}
LABELS = {"app.kubernetes.io/managed-by": "labup"}
TEMPLATE = "objects.yaml.tmpl"


def desired(lab: Lab) -> list[dict[str, Any]]:
    """The Issuer and the Certificate, filled from lab.yaml (each caller gets its own copy)."""
    from labup.traefik import template
    from labup.traefik.values import LETSENCRYPT_PRODUCTION, LETSENCRYPT_STAGING, TLS_SECRET

    acme = lab.traefik.acme
    params = {"resolver": acme.resolver, "email": acme.email,
              "acme_server": LETSENCRYPT_STAGING if acme.staging else LETSENCRYPT_PRODUCTION,
              "account_secret": f"{acme.resolver}-account-key", "ingress_class": lab.traefik.release,
              "tls_secret": TLS_SECRET, "dns_names": list(lab.traefik.domains)}
    filled = template.fill(template.load_template("certmanager", TEMPLATE), params)
    out = []
    for key in ("issuer", "certificate"):
        obj = filled[key]
        obj["metadata"] = {**obj["metadata"], "namespace": lab.traefik.namespace, "labels": dict(LABELS)}
        out.append(obj)
    return out


def contains(live: Any, wanted: Any) -> bool:
    """Every key and value of `wanted` is in `live` (lists compared whole)."""
    if isinstance(wanted, Mapping):
        return isinstance(live, Mapping) and all(k in live and contains(live[k], v) for k, v in wanted.items())
    return bool(live == wanted)


class IssuerAndCertificate(Step):
    name = "certificate"

    def __init__(self, ctx: Context) -> None:
        self.lab = ctx.lab  # no I/O: `labup rollback` builds steps just to undo
        self.namespace = ctx.lab.traefik.namespace

    def preflight(self, ctx: Context) -> None:
        desired(self.lab)  # a broken template stops the run before any write

    def observe(self, ctx: Context) -> Observation:
        k = kube(ctx)
        todo = []
        for obj in desired(self.lab):
            kind, name = obj["kind"], obj["metadata"]["name"]
            live = read(ctx, lambda kd=kind, nm=name: k.get_custom(GROUP, VERSION, PLURALS[kd], self.namespace, nm),
                        f"read {kind} {name}")
            if live is None:
                todo.append(f"create {kind} {name}")
            elif not contains(live.get("metadata", {}).get("labels") or {}, LABELS):
                raise PreflightError(f"{kind} {self.namespace}/{name} exists and is not labup's: left alone",
                                     hint=f"rename or remove it (`kubectl -n {self.namespace} get {PLURALS[kind]}`), "
                                          "or set traefik.acme.resolver to another name")
            elif not contains(live.get("spec") or {}, obj["spec"]):
                todo.append(f"update {kind} {name}")
        where = f"in namespace {self.namespace}"
        if not todo:
            return Observation(True, f"Issuer {self.lab.traefik.acme.resolver} and Certificate for "
                                     f"{', '.join(self.lab.traefik.domains)} {where} are labup's")
        return Observation(False, f"{'; '.join(todo)} {where} (cert-manager then orders the certificate, or keeps "
                                  "the one its Secret holds)")

    def apply(self, ctx: Context, seen: Observation) -> dict[str, Any]:
        k = kube(ctx)
        created: list[str] = []
        replaced: dict[str, Any] = {}
        for obj in desired(self.lab):
            kind, name = obj["kind"], obj["metadata"]["name"]
            live = k.get_custom(GROUP, VERSION, PLURALS[kind], self.namespace, name)
            if live is None:
                k.create_custom(GROUP, VERSION, PLURALS[kind], self.namespace, obj)
                created.append(kind)
            elif not contains(live.get("spec") or {}, obj["spec"]):
                body = copy.deepcopy(live)
                body["spec"] = {**(live.get("spec") or {}), **obj["spec"]}
                k.replace_custom(GROUP, VERSION, PLURALS[kind], self.namespace, body)
                replaced[kind] = live.get("spec")  # no secret in a spec: names, an email, a URL
        # journaled: which objects, and the specs replaced
        return {"namespace": self.namespace, "names": {o["kind"]: o["metadata"]["name"] for o in desired(self.lab)},
                "created": created, "replaced": replaced}

    def undo(self, ctx: Context, data: dict[str, Any]) -> str:
        k = kube(ctx)
        namespace, names = str(data["namespace"]), dict(data.get("names") or {})
        done = []
        for kind in data.get("created") or []:
            if k.delete_custom(GROUP, VERSION, PLURALS[kind], namespace, names[kind]):
                done.append(f"deleted {kind} {names[kind]}")
        for kind, spec in (data.get("replaced") or {}).items():
            live = k.get_custom(GROUP, VERSION, PLURALS[kind], namespace, names[kind])
            if live is not None:
                k.replace_custom(GROUP, VERSION, PLURALS[kind], namespace, {**live, "spec": spec})
                done.append(f"put back {kind} {names[kind]}'s spec")
        return "; ".join(done) or "nothing of it is left to undo"

    def owns(self, ctx: Context, data: dict[str, Any]) -> str | None:
        if data.get("namespace") != self.namespace:
            return f"it names namespace {data.get('namespace')!r}, not Traefik's {self.namespace}"
        if set(data.get("names") or {}) - set(PLURALS):
            return "it names objects labup does not make"
        return None

