"""One reading of the lab for `labup status`, and its --json document (SCHEMA_VERSION).

Every part is a `Part`: its value, or `unknown` with the reason it could not be read. A part that
was read and found absent (no release, no namespace) is known: its value says so.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from labup.checks.kube_facts import TraefikPod

T = TypeVar("T")

SCHEMA_VERSION = 1
PSA_PREFIX = "pod-security.kubernetes.io/"


@dataclass(frozen=True)
class Part(Generic[T]):
    value: T | None = None
    unknown: str | None = None  # why it could not be read; None when `value` is what was read


@dataclass(frozen=True)
class NodeView:
    name: str  # lab.yaml = Kubernetes node name
    address: str
    role: str  # from lab.yaml (verify checks it against Talos)
    talos_version: str | None = None
    talos_unknown: str | None = None
    holds_vip: bool | None = None  # None: its addresses could not be read (talos_unknown says why)
    ready: bool | None = None  # Kubernetes' Ready condition; None: unknown or not a Kubernetes node
    ready_unknown: str | None = None


@dataclass(frozen=True)
class Release:
    name: str
    namespace: str
    revision: int | None = None  # None: no such release
    status: str | None = None
    chart: str | None = None  # <name>-<version>, as `helm history` shows it
    app_version: str | None = None
    deployed_at: dt.datetime | None = None


@dataclass(frozen=True)
class Certificate:
    domain: str  # the SNI asked for (traefik.domains[0])
    subject: str
    issuer: str  # the issuer's common name (or its whole name)
    staging: bool
    verified: bool
    verify_error: str | None
    traefik_default: bool  # Traefik's self-signed stand-in: ACME has not delivered
    not_after: dt.datetime

    def days_left(self, now: dt.datetime) -> int:
        return int((self.not_after - now).total_seconds() // 86_400)


@dataclass(frozen=True)
class Namespace:
    name: str
    exists: bool
    labels: dict[str, str] = field(default_factory=dict)  # the pod-security.kubernetes.io/* labels only

    def psa(self, mode: str) -> str | None:
        return self.labels.get(PSA_PREFIX + mode)


@dataclass(frozen=True)
class RunView:
    run: str
    at: dt.datetime | None
    command: str
    exit_code: int | None  # None: the run never wrote its end (killed, or still running)
    rolled_back: bool = False
    error: str | None = None

    @property
    def outcome(self) -> str:
        if self.exit_code is None:
            return "unfinished"
        if self.exit_code == 0:
            return "ok"
        if self.exit_code == 3:
            return "failed, rollback incomplete"
        return "failed, rolled back" if self.rolled_back else f"failed (exit {self.exit_code})"


@dataclass(frozen=True)
class Placement:
    """Is there a ready Traefik pod on the VIP's holder? `paradox` None: it cannot be told."""

    paradox: bool | None
    summary: str


@dataclass(frozen=True)
class LabStatus:
    lab: str
    vip: str
    at: dt.datetime  # when it was read: ages and days left are counted from it
    seconds: float
    timeout_s: float
    nodes: tuple[NodeView, ...]
    traefik: Part[tuple[TraefikPod, ...]]
    release: Part[Release]
    certificate: Part[Certificate]
    namespace: Part[Namespace]
    runs: Part[tuple[RunView, ...]]
    domain: str = ""
    release_name: str = ""
    traefik_namespace: str = ""

    # -- judgements -------------------------------------------------------------------------------

    @property
    def holders(self) -> list[str]:
        return [n.name for n in self.nodes if n.holds_vip]

    @property
    def holder(self) -> Part[str]:
        """The node holding the VIP: value None (known) when no node does, unknown when the nodes
        that could hold it could not be read."""
        if self.holders:
            return Part(", ".join(self.holders))
        unread = [n for n in self.nodes if n.holds_vip is None]
        if unread:
            reasons = list(dict.fromkeys(n.talos_unknown or "not read" for n in unread))
            who = "" if len(unread) == len(self.nodes) else f"{', '.join(n.name for n in unread)}: "
            return Part(unknown=who + "; ".join(reasons))
        return Part(None)

    def pods_on(self, node: str) -> list[TraefikPod]:
        return [p for p in self.traefik.value or () if p.node == node]

    def placement(self) -> Placement:
        holder = self.holder
        if holder.unknown is not None:
            return Placement(None, "cannot tell where Traefik should be: the VIP's holder is unknown")
        if holder.value is None:
            return Placement(None, f"no node holds the VIP {self.vip}")
        if self.traefik.unknown is not None:
            return Placement(None, "cannot tell whether Traefik runs on the VIP's node: its pods are unknown")
        pods = self.traefik.value or ()
        if not pods:
            return Placement(None, f"no Traefik pod in namespace {self.traefik_namespace}")
        holders = self.holders
        if any(p.ready and p.node in holders for p in pods):
            return Placement(False, f"a ready Traefik pod runs on {holder.value}, the VIP's node")
        ready = sorted({p.node or "?" for p in pods if p.ready})
        where = f"Traefik ready on {', '.join(ready)}" if ready else "no Traefik pod is ready"
        return Placement(True, f"paradox: VIP on {holder.value} has no ready Traefik pod ({where}): "
                               "run `labup apply`")

    # -- the --json document ----------------------------------------------------------------------

    def as_dict(self) -> dict[str, Any]:
        holder, placement = self.holder, self.placement()
        return {
            "command": "status", "ok": True, "exit_code": 0, "schema_version": SCHEMA_VERSION,
            "lab": self.lab, "at": self.at.isoformat(), "seconds": round(self.seconds, 3),
            "timeout_s": self.timeout_s,
            "vip": {"address": self.vip, "holder": holder.value, "holders": self.holders,
                    "unknown": holder.unknown},
            "nodes": [_node(n, self) for n in self.nodes],
            "traefik": {"namespace": self.traefik_namespace,
                        "pods": None if self.traefik.value is None else [_pod(p) for p in self.traefik.value],
                        "unknown": self.traefik.unknown},
            "release": _release(self.release, self.release_name, self.traefik_namespace),
            "certificate": _certificate(self.certificate, self.domain, self.at),
            "namespace": _namespace(self.namespace, self.traefik_namespace),
            "runs": {"last": None if self.runs.value is None else [_run(r) for r in self.runs.value],
                     "unknown": self.runs.unknown},
            "paradox": {"found": placement.paradox, "summary": placement.summary},
        }


def _iso(when: dt.datetime | None) -> str | None:
    return when.isoformat() if when else None


def _pod(p: TraefikPod) -> dict[str, Any]:
    return {"name": p.name, "node": p.node, "ready": p.ready, "phase": p.phase, "host_network": p.host_network}


def _node(n: NodeView, status: LabStatus) -> dict[str, Any]:
    return {"name": n.name, "address": n.address, "role": n.role, "talos_version": n.talos_version,
            "talos_unknown": n.talos_unknown, "holds_vip": n.holds_vip, "ready": n.ready,
            "ready_unknown": n.ready_unknown,
            "traefik_pods": None if status.traefik.value is None else [p.name for p in status.pods_on(n.name)]}


def _release(part: Part[Release], name: str, namespace: str) -> dict[str, Any]:
    r = part.value or Release(name, namespace)
    return {"name": r.name, "namespace": r.namespace, "exists": None if part.unknown else r.revision is not None,
            "revision": r.revision, "status": r.status, "chart": r.chart, "app_version": r.app_version,
            "deployed_at": _iso(r.deployed_at), "unknown": part.unknown}


def _certificate(part: Part[Certificate], domain: str, now: dt.datetime) -> dict[str, Any]:
    c = part.value
    if c is None:
        return {"domain": domain, "subject": None, "issuer": None, "staging": None, "verified": None,
                "verify_error": None, "traefik_default": None, "not_after": None, "days_left": None,
                "unknown": part.unknown}
    return {"domain": c.domain, "subject": c.subject, "issuer": c.issuer, "staging": c.staging,
            "verified": c.verified, "verify_error": c.verify_error, "traefik_default": c.traefik_default,
            "not_after": c.not_after.isoformat(), "days_left": c.days_left(now), "unknown": None}


def _namespace(part: Part[Namespace], name: str) -> dict[str, Any]:
    ns = part.value
    return {"name": name, "exists": ns.exists if ns else None,
            **{mode: ns.psa(mode) if ns else None for mode in ("enforce", "audit", "warn")},
            "unknown": part.unknown}


def _run(r: RunView) -> dict[str, Any]:
    return {"run": r.run, "at": _iso(r.at), "command": r.command, "outcome": r.outcome,
            "exit_code": r.exit_code, "error": r.error}
