"""Why Traefik is not running where the VIP is: pure functions of what the Kubernetes API and helm
say (pods, nodes, events, release history), each returning words for the user and the fix.

The walls they name are FACTS.md §1: Pod Security (4), the connection paradox and the control-plane
taint (5), and a host port another pod already holds (3's cousin).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from labup.adapters.helm import Revision, mend_args

Obj = Mapping[str, Any]
CP_TAINT = "node-role.kubernetes.io/control-plane"
HOSTNAME = "kubernetes.io/hostname"
PSA_HINT = "label the namespace: labup phase namespace"
_PORTS_TAKEN = ("didn't have free ports", "address already in use", "port is already allocated")


@dataclass(frozen=True)
class Diagnosis:
    message: str
    hint: str | None = None


# -- scheduling: taints, tolerations, selectors ----------------------------------------------------


def tolerates(toleration: Obj, taint: Obj) -> bool:
    """Kubernetes' rule (k8s.io/api/core/v1 Toleration.ToleratesTaint)."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True  # an empty key with Exists tolerates everything
    return bool(key) and (toleration.get("value") or "") == (taint.get("value") or "")


def untolerated(taints: Iterable[Obj], tolerations: Iterable[Obj]) -> list[Obj]:
    """The node's scheduling taints (NoSchedule, NoExecute) that no toleration covers."""
    tols = list(tolerations)
    return [t for t in taints if t.get("effect") in ("NoSchedule", "NoExecute")
            and not any(tolerates(tol, t) for tol in tols)]


def taint_text(taint: Obj) -> str:
    value = f"={taint['value']}" if taint.get("value") else ""
    return f"{taint.get('key')}{value}:{taint.get('effect')}"


def selector_misses(labels: Mapping[str, str], selector: Mapping[str, Any]) -> list[str]:
    """The nodeSelector's terms this node's labels do not meet, as `key=value`."""
    return [f"{k}={v}" for k, v in selector.items() if labels.get(k) != str(v)]


def node_fit(node: Obj, pod_spec: Obj) -> list[str]:
    """Why a pod with this spec cannot go on this node (empty: it can, as far as labup can tell)."""
    spec, meta = node.get("spec") or {}, node.get("metadata") or {}
    name = meta.get("name")
    why = []
    for taint in untolerated(spec.get("taints") or [], pod_spec.get("tolerations") or []):
        why.append(f"node {name} has the taint {taint_text(taint)}, which Traefik does not tolerate")
    misses = selector_misses(meta.get("labels") or {}, pod_spec.get("nodeSelector") or {})
    if misses:
        why.append(f"node {name} lacks the label(s) {', '.join(misses)} of Traefik's nodeSelector")
    if spec.get("unschedulable"):
        why.append(f"node {name} is cordoned (`kubectl uncordon {name}`)")
    if not node_ready(node):
        why.append(f"node {name} is not Ready")
    return why


def node_ready(node: Obj) -> bool:
    conds = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


# -- pods -------------------------------------------------------------------------------------------


def pod_name(pod: Obj) -> str:
    return str((pod.get("metadata") or {}).get("name") or "?")


def pod_node(pod: Obj) -> str | None:
    return (pod.get("spec") or {}).get("nodeName") or None


def pod_ready(pod: Obj) -> bool:
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def pod_phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "Unknown")


def live(pods: Iterable[Obj]) -> list[Obj]:
    """Pods not being deleted (an old pod on its way out is not Traefik's answer)."""
    return [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]


def host_ports(pod: Obj) -> set[int]:
    """The node ports a pod takes: its hostPorts, or every containerPort on the host network."""
    spec = pod.get("spec") or {}
    found: set[int] = set()
    for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        for p in c.get("ports") or []:
            port = p.get("hostPort") or (p.get("containerPort") if spec.get("hostNetwork") else None)
            if isinstance(port, int):
                found.add(port)
    return found


def port_holders(ours: Obj, others: Iterable[Obj]) -> list[str]:
    """Other pods on the node that take one of our pod's host ports, as `ns/name (ports)`."""
    wanted = host_ports(ours)
    out = []
    for other in others:
        meta = other.get("metadata") or {}
        if meta.get("name") == (ours.get("metadata") or {}).get("name"):
            continue
        if pod_phase(other) in ("Succeeded", "Failed"):
            continue
        clash = sorted(wanted & host_ports(other))
        if clash:
            out.append(f"{meta.get('namespace')}/{meta.get('name')} (port {', '.join(map(str, clash))})")
    return out


def container_trouble(pod: Obj) -> list[str]:
    """Waiting reasons and last termination messages of the pod's containers."""
    out = []
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    for cs in statuses:
        state = cs.get("state") or {}
        waiting = state.get("waiting") or {}
        last = (cs.get("lastState") or {}).get("terminated") or {}
        if waiting.get("reason"):
            out.append(f"container {cs.get('name')}: {waiting['reason']}"
                       + (f" ({waiting['message']})" if waiting.get("message") else ""))
        if last.get("message") or last.get("reason"):
            out.append(f"container {cs.get('name')} last exited: {last.get('reason') or ''} "
                       f"{last.get('message') or ''}".rstrip())
        if not cs.get("ready") and not waiting and not last:
            out.append(f"container {cs.get('name')} runs but is not ready (its readiness probe fails)")
    return out


# -- events -----------------------------------------------------------------------------------------


def event_time(event: Obj) -> str:
    return str(event.get("lastTimestamp") or event.get("eventTime")
               or (event.get("metadata") or {}).get("creationTimestamp") or "")


def events_about(events: Iterable[Obj], names: Iterable[str] = (), prefixes: Iterable[str] = ()) -> list[Obj]:
    """Events whose object is one of `names` or starts with one of `prefixes`, newest last."""
    exact, starts = set(names), tuple(prefixes)
    about = [e for e in events if (name := str((e.get("involvedObject") or {}).get("name") or "")) in exact
             or (starts and name.startswith(starts))]
    return sorted(about, key=event_time)


def newest(events: Sequence[Obj], reason: str, contains: str = "") -> Obj | None:
    hits = [e for e in events if e.get("reason") == reason and contains in str(e.get("message") or "")]
    return hits[-1] if hits else None


def psa_rejection(events: Sequence[Obj]) -> Diagnosis | None:
    """Wall 4: `violates PodSecurity "baseline": host namespaces (hostNetwork=true)` on pod creation."""
    hit = next((e for e in reversed(events) if "violates PodSecurity" in str(e.get("message") or "")), None)
    if hit is None:
        return None
    return Diagnosis(f"Pod Security admission refused Traefik's pod: {hit.get('message')}", PSA_HINT)


def ports_taken(events: Sequence[Obj]) -> Diagnosis | None:
    hit = next((e for e in reversed(events)
                if any(m in str(e.get("message") or "") for m in _PORTS_TAKEN)), None)
    if hit is None:
        return None
    return Diagnosis(f"a host port Traefik needs is taken: {hit.get('message')}",
                     "stop whatever holds ports 80/443 on that node (another ingress controller, an old "
                     "Traefik), then run labup again")


# -- the verdicts -----------------------------------------------------------------------------------


def connection_paradox(running_on: str, vip: str, holder: str) -> Diagnosis:
    """Wall 5, named with both nodes."""
    return Diagnosis(
        f"Traefik runs on {running_on}, but the VIP {vip} is held by {holder}: the VIP answers ARP and "
        f"port 80 is refused (the connection paradox)",
        f"Traefik must run on {holder}: labup pins it with nodeSelector {HOSTNAME}={holder} and tolerates "
        f"{CP_TAINT}; check that traefik.values does not override nodeSelector, affinity or tolerations, "
        "then run labup again")


def pending(pod: Obj, events: Sequence[Obj], node: Obj | None, pinned: str) -> Diagnosis:
    """A pod the scheduler did not place: quote the scheduler, and say what labup sees on the node."""
    said = newest(events, "FailedScheduling")
    quoted = f": the scheduler says \"{said.get('message')}\"" if said else ""
    why = node_fit(node, pod.get("spec") or {}) if node is not None else [f"there is no node {pinned}"]
    taken = ports_taken(events)
    if taken:
        return Diagnosis(f"pod {pod_name(pod)} is Pending{quoted}; {taken.message}", taken.hint)
    reasons = "; ".join(why) if why else "labup sees nothing on the node that keeps it out"
    return Diagnosis(f"pod {pod_name(pod)} is Pending on no node{quoted}; {reasons}",
                     f"Traefik is pinned with nodeSelector {HOSTNAME}={pinned} and tolerates {CP_TAINT}:NoSchedule; "
                     f"compare with `kubectl describe node {pinned}` (taints, labels, Ready)")


def not_ready(pod: Obj, events: Sequence[Obj], holders: Sequence[str]) -> Diagnosis:
    trouble = container_trouble(pod)
    taken = ports_taken(events)
    if holders:
        return Diagnosis(f"pod {pod_name(pod)} on {pod_node(pod)} cannot bind its host ports: held by "
                         f"{', '.join(holders)}", "stop that pod (or move it), then run labup again")
    if taken or any("address already in use" in t for t in trouble):
        return Diagnosis(f"pod {pod_name(pod)} on {pod_node(pod)} cannot bind its host ports: "
                         f"{'; '.join(trouble) or (taken.message if taken else '')}",
                         "something outside Kubernetes (or another hostNetwork pod) holds 80/443 on that node")
    detail = "; ".join(trouble) or "its containers are not ready"
    return Diagnosis(f"pod {pod_name(pod)} on {pod_node(pod)} is {pod_phase(pod)} but never became Ready: {detail}",
                     f"`kubectl -n {(pod.get('metadata') or {}).get('namespace')} logs {pod_name(pod)}` says why")


def no_pod(events: Sequence[Obj], workload: str) -> Diagnosis:
    psa = psa_rejection(events)
    if psa:
        return psa
    failed = newest(events, "FailedCreate")
    if failed:
        return Diagnosis(f"{workload} could not create its pod: {failed.get('message')}")
    return Diagnosis(f"{workload} has no pod yet", f"`kubectl describe {workload.lower()}` shows why")


def stuck_release(release: str, namespace: str, history: Sequence[Revision], command: Any) -> Diagnosis:
    """A release whose last operation never finished (pending-*, or `uninstalling` after an
    interrupted uninstall): the status, and the command that unsticks it. `command(*args)` renders
    a helm command line with the lab's cluster flags."""
    latest = history[-1]
    if latest.status == "uninstalling":
        message = (f"release {release} in namespace {namespace} is stuck in uninstalling (revision "
                   f"{latest.revision}): a `helm uninstall` was interrupted, and helm upgrade refuses it "
                   f"(`has no deployed releases`)")
    else:
        # only upgrade/install check for a pending release (pkg/action/upgrade.go prepareUpgrade
        # `errPending`); rollback and uninstall do not, which is why they mend it
        message = (f"release {release} in namespace {namespace} is stuck in {latest.status} (revision "
                   f"{latest.revision}): a helm operation never finished (interrupted, or its answer lost), "
                   f"and helm upgrade refuses it (`another operation (install/upgrade/rollback) is in progress`)")
    args = mend_args(history, release, namespace) or ["uninstall", release, "-n", namespace]
    fix = command(*args)
    if args[0] == "rollback":
        hint = (f"if no helm runs on this release now, go back to revision {args[2]}, the one deployed "
                f"before: `{fix}`, then run labup again")
    elif latest.status == "uninstalling":
        hint = f"if no helm runs on it now, finish the uninstall: `{fix}`, then run labup again"
    else:
        hint = f"nothing of it was ever deployed; if no helm runs on it now: `{fix}`, then run labup again"
    return Diagnosis(message, hint)
