"""The reads behind `labup status`, each a part of the view, all at once under verify.timeout_s.

They run on the verify check engine (checks/engine.py: one thread each, one deadline, an overrun or a
bug becomes a result, never a hang or a traceback) and share its fact snapshots: two talosctl calls
for every node (addresses, version), four API requests (nodes, Traefik's pods, its namespace, Helm's
release records), one TLS handshake with the VIP, and the local journal. A read that fails leaves its
part unknown with the reason; the others stand.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from labup.checks.model import FAIL, PASS, Check, CheckContext, CheckResult
from labup.errors import LabupError, Unreadable
from labup.status.model import (
    PSA_PREFIX,
    Certificate,
    LabStatus,
    Namespace,
    NodeView,
    Part,
    Release,
    RunView,
)

if TYPE_CHECKING:
    from labup.config import Lab

LAST_RUNS = 5


def gather(lab: Lab, now: Callable[[], dt.datetime] | None = None) -> LabStatus:
    """Read every part at once; what is not read within verify.timeout_s is unknown."""
    from labup.checks.engine import run_checks

    clock = now or (lambda: dt.datetime.now().astimezone())
    started = time.monotonic()
    results = {r.name: r for r in run_checks(lab, list(REGISTRY), registry=REGISTRY)}
    talos, ready = _part(results["talos"]), _part(results["kube-nodes"])
    t = lab.traefik
    return LabStatus(
        lab=lab.name, vip=lab.vip.address, at=clock(), seconds=time.monotonic() - started,
        timeout_s=lab.verify.timeout_s, nodes=_nodes(lab, talos, ready),
        traefik=_part(results["traefik-pods"]), release=_part(results["release"]),
        certificate=_part(results["certificate"]), namespace=_part(results["namespace"]),
        runs=_part(results["runs"]), domain=t.domains[0] if t.domains else "", release_name=t.release,
        traefik_namespace=t.namespace)


def _part(result: CheckResult) -> Part[Any]:
    if result.status == PASS:
        return Part(result.data.get("value"))
    # an overrun's summary is the engine's "no answer within Ns": its hint says what was waited for
    return Part(unknown=result.summary + (f" ({result.hint})" if result.hint else ""))


def _read(name: str, read: Callable[[CheckContext], Any], timeout_hint: str) -> Check:
    """A read as a check: PASS carries the value, FAIL the reason it could not be read."""

    def run(ctx: CheckContext) -> CheckResult:
        try:
            return CheckResult(name, PASS, "", data={"value": read(ctx)})
        except LabupError as exc:
            return CheckResult(name, FAIL, _one_line(exc.message))

    return Check(name, run, timeout_hint)


def _one_line(text: str, limit: int = 240) -> str:
    joined = " ".join(line.strip() for line in text.splitlines() if line.strip())
    return joined if len(joined) <= limit else joined[: limit - 1] + "…"


# -- Talos: each node's version and whether it holds the VIP --------------------------------------


def read_talos(ctx: CheckContext) -> dict[str, tuple[str | None, bool | None, str | None]]:
    """node address -> (Talos version, holds the VIP, why something of it is unknown)."""
    from labup.checks.talos_facts import vip_link_of
    from labup.facts.talos import facts

    snapshot = facts(ctx.lab, ctx.shared)
    snapshot.prefetch(("addresses", "version"), timeout=max(ctx.remaining(), 0.1))  # both kinds at once
    out: dict[str, tuple[str | None, bool | None, str | None]] = {}
    for node in ctx.lab.nodes:
        version: str | None = None
        holds: bool | None = None
        why: str | None = None
        try:
            version = snapshot.version(node.address, timeout=max(ctx.remaining(), 0.1))
        except LabupError as exc:
            why = _one_line(exc.message)
        try:
            addresses = snapshot.addresses(node.address, timeout=max(ctx.remaining(), 0.1))
            holds = vip_link_of(addresses, ctx.lab.vip.address) is not None
        except LabupError as exc:
            why = why or _one_line(exc.message)
        out[node.address] = (version, holds, why)
    return out


# -- Kubernetes: nodes, Traefik's pods, its namespace, the release --------------------------------


def _kube(ctx: CheckContext) -> Any:
    from labup.checks.kube import kube_facts

    return kube_facts(ctx)


def read_kube_nodes(ctx: CheckContext) -> dict[str, bool]:
    """Kubernetes node name -> Ready."""
    nodes = _kube(ctx).kube.list_nodes()
    return {str((n.get("metadata") or {}).get("name")): any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (n.get("status") or {}).get("conditions") or []) for n in nodes}


def read_traefik_pods(ctx: CheckContext) -> tuple[Any, ...]:
    return tuple(_kube(ctx).traefik_pods())


def read_namespace(ctx: CheckContext) -> Namespace:
    name = ctx.lab.traefik.namespace
    labels = _kube(ctx).namespace_labels()
    if labels is None:
        return Namespace(name, exists=False)
    return Namespace(name, True, {k: v for k, v in labels.items() if k.startswith(PSA_PREFIX)})


def read_release(ctx: CheckContext) -> Release:
    t = ctx.lab.traefik
    history = _kube(ctx).release_history()
    if not history:
        return Release(t.release, t.namespace)
    latest = history[-1]
    return Release(t.release, t.namespace, latest.revision, latest.status, latest.chart, latest.app_version,
                   parse_time(latest.updated))


# -- the certificate the VIP serves ---------------------------------------------------------------


def read_certificate(ctx: CheckContext) -> Certificate:
    import ssl

    from labup.adapters import net
    from labup.checks.certinfo import parse_der

    lab = ctx.lab
    if not lab.traefik.domains:
        raise Unreadable("no domain in traefik.domains to ask the VIP for")
    if _nobody_holds_the_vip(ctx):  # it would only wait out the deadline for an ARP answer
        raise Unreadable(f"not asked: no node holds the VIP {lab.vip.address}")
    domain, where = lab.traefik.domains[0], f"{lab.vip.address}:443"
    try:
        answer = net.tls_certificate(lab.vip.address, domain, ctx.remaining(), ca_file=lab.verify.ca_file)
    except ConnectionRefusedError:
        raise Unreadable(f"{where} refused the connection") from None
    except TimeoutError:
        raise Unreadable(f"no TLS answer from {where} within {ctx.timeout_s:g}s") from None
    except ssl.SSLError as exc:
        raise Unreadable(f"TLS handshake with {where} failed: {exc.reason or exc}") from None
    except OSError as exc:
        raise Unreadable(f"cannot reach {where}: {exc.strerror or exc}") from None
    try:
        info = parse_der(answer.der)
    except ValueError as exc:
        raise Unreadable(f"the certificate {where} serves cannot be parsed: {exc}") from None
    return Certificate(domain, info.subject, info.issuer_cn or info.issuer, info.is_staging, answer.verified,
                       answer.verify_error, info.is_traefik_default, info.not_after)


def _nobody_holds_the_vip(ctx: CheckContext) -> bool:
    """Talos answered for every node, and none has the VIP. Waits a little for the Talos read (it
    usually answers well within that); a slow one (a node down) leaves the handshake most of the time."""
    talos = ctx.result_of("talos", within=ctx.timeout_s / 4)
    nodes = (talos.data.get("value") or {}).values() if talos and talos.status == PASS else ()
    return bool(nodes) and all(holds is False for _, holds, _ in nodes)


# -- the journal ----------------------------------------------------------------------------------


def read_runs(ctx: CheckContext) -> tuple[RunView, ...]:
    """This lab's last runs, newest first (entries of another lab are not this lab's history)."""
    from labup.engine.journal import Journal

    lab = ctx.lab
    if not lab.state_dir.is_dir() or lab.state_dir.is_symlink():
        if lab.state_dir.is_symlink():
            raise Unreadable(f"{lab.state_dir} is a symbolic link: labup never reads through one")
        return ()
    try:
        events = Journal(lab.state_dir, lab_id=lab.identity).read().events
    except OSError as exc:
        raise Unreadable(f"cannot read {lab.state_dir / 'journal.jsonl'}: {exc.strerror or exc}") from None
    return runs_of(events, lab.identity)[:LAST_RUNS]


def runs_of(events: list[dict[str, Any]], lab_id: str) -> tuple[RunView, ...]:
    """The runs the events tell of, newest first."""
    runs: dict[str, dict[str, Any]] = {}
    for ev in events:
        if ev.get("lab") != lab_id:
            continue
        run = runs.setdefault(str(ev.get("run", "")), {})
        kind = ev.get("event")
        if kind == "run-start":
            run.update(at=parse_time(str(ev.get("ts", ""))), command=str(ev.get("command") or "?"))
        elif kind == "run-end":
            code = ev.get("exit_code")
            run.update(exit_code=code if isinstance(code, int) and not isinstance(code, bool) else -1,
                       error=str(ev["error"]) if ev.get("error") else None)
        elif kind == "undone":
            run["rolled_back"] = True
    views = [RunView(run_id, r.get("at"), r["command"], r.get("exit_code"), r.get("rolled_back", False),
                     r.get("error")) for run_id, r in runs.items() if "command" in r]
    return tuple(reversed(views))


def parse_time(text: str) -> dt.datetime | None:
    """An ISO 8601 time (journal, helm's last_deployed with nanoseconds); None when it is not one."""
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


# -- putting the nodes together -------------------------------------------------------------------


def _nodes(lab: Lab, talos: Part[dict[str, Any]], ready: Part[dict[str, bool]]) -> tuple[NodeView, ...]:
    out = []
    for node in lab.nodes:
        version, holds, talos_why = (talos.value or {}).get(node.address, (None, None, talos.unknown))
        is_ready: bool | None = None
        ready_why = ready.unknown
        if ready.value is not None:
            is_ready = ready.value.get(node.name)
            ready_why = None if is_ready is not None else "not a node of the Kubernetes cluster"
        out.append(NodeView(node.name, node.address, node.role, version, talos_why, holds, is_ready, ready_why))
    return tuple(out)


REGISTRY: dict[str, Check] = {c.name: c for c in (
    _read("talos", read_talos, "talosctl did not answer in time: are the control planes reachable on port 50000?"),
    _read("kube-nodes", read_kube_nodes, "the Kubernetes API did not answer in time"),
    _read("traefik-pods", read_traefik_pods, "the Kubernetes API did not answer in time"),
    _read("namespace", read_namespace, "the Kubernetes API did not answer in time"),
    _read("release", read_release, "the Kubernetes API did not answer in time"),
    _read("certificate", read_certificate, "no TLS answer from the VIP in time"),
    _read("runs", read_runs, "the journal could not be read in time"),
)}
