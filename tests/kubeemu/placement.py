"""kube-scheduler's placement filters, answered in kube-scheduler's own words (v1.35). Opt-in.

`NodeFilterScheduler` is a kubeemu `Scheduler` (install it with `emu.set_scheduler(...)`, or let
`kubeemu.cluster.install_cluster` do it); the emulator's default placement is untouched.

Per node, the first filter that fails decides, in the default profile's order: NodeUnschedulable,
NodeName, TaintToleration, NodeAffinity, NodePorts (resources are not modelled: every node has room).
A pod no node takes gets FitError.Error() (pkg/scheduler/framework/types.go) as its message: the
histogram "<count> <reason>" sorted as strings, then the PostFilter plugins' words:

    0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had
    untolerated taint(s). no new claims to deallocate, preemption: 0/2 nodes are available: 2
    Preemption is not helpful for scheduling.

kube-scheduler up to 1.33 named the taint (`node(s) had untolerated taint {key: value}`); 1.34 dropped
the key and value from the message (the plugin now logs them instead). `legacy_taint_text=True` gives
the old wording, for a test that wants a cluster of that age.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from .resources import Registry
from .store import Store

Obj = dict[str, Any]

UNSCHEDULABLE = "node(s) were unschedulable"
NODE_NAME = "node(s) didn't match the requested node name"
TAINT = "node(s) had untolerated taint(s)"
AFFINITY = "node(s) didn't match Pod's node affinity/selector"
PORTS = "node(s) didn't have free ports for the requested pod ports"
# DefaultPreemption's verdict per node: filters no eviction can fix are "not helpful"; a port held by
# a pod of the same priority has no victim either.
NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"
DRA_POSTFILTER = "no new claims to deallocate"  # DynamicResources' PostFilter (DRA is on by default since 1.34)

NOT_READY_TAINT = {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}
UNSCHEDULABLE_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}


# -- the rules kube-scheduler applies -------------------------------------------------------------


def tolerates(toleration: Obj, taint: Obj) -> bool:
    """k8s.io/api/core/v1 Toleration.ToleratesTaint, to the letter."""
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    if toleration.get("key") and toleration["key"] != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    return operator == "Equal" and (toleration.get("value") or "") == (taint.get("value") or "")


def effective_taints(node: Obj) -> list[Obj]:
    """The node's taints, plus the not-ready taint the node lifecycle controller adds to a node whose
    Ready condition is not True (the scheduler itself never reads conditions)."""
    taints = list((node.get("spec") or {}).get("taints") or [])
    conds = (node.get("status") or {}).get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)
    if not ready and not any(t.get("key") == NOT_READY_TAINT["key"] for t in taints):
        taints.append(dict(NOT_READY_TAINT))
    return taints


def untolerated_taint(pod_spec: Obj, node: Obj) -> Obj | None:
    """The first NoSchedule/NoExecute taint no toleration covers (v1helper.FindMatchingUntoleratedTaint)."""
    tolerations = pod_spec.get("tolerations") or []
    for taint in effective_taints(node):
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not any(tolerates(t, taint) for t in tolerations):
            return taint
    return None


def _expression_matches(expr: Obj, value: str | None) -> bool:
    operator, values = expr.get("operator"), [str(v) for v in expr.get("values") or []]
    if operator == "In":
        return value is not None and value in values
    if operator == "NotIn":
        return value is None or value not in values
    if operator == "Exists":
        return value is not None
    if operator == "DoesNotExist":
        return value is None
    if operator in ("Gt", "Lt") and value is not None and values:
        try:
            have, want = int(value), int(values[0])
        except ValueError:
            return False
        return have > want if operator == "Gt" else have < want
    return False


def _term_matches(term: Obj, node: Obj) -> bool:
    meta = node.get("metadata") or {}
    labels = meta.get("labels") or {}
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return False  # an empty term matches no node (nodeaffinity's rule)
    return (all(_expression_matches(e, labels.get(e.get("key"))) for e in exprs)
            and all(_expression_matches(f, meta.get("name") if f.get("key") == "metadata.name" else None)
                    for f in fields))


def matches_node_affinity(pod_spec: Obj, node: Obj) -> bool:
    """nodeSelector (every pair) AND required node affinity (any term; within a term, every expression)."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    if any(labels.get(k) != str(v) for k, v in (pod_spec.get("nodeSelector") or {}).items()):
        return False
    required = (((pod_spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = required.get("nodeSelectorTerms")
    return True if terms is None else any(_term_matches(t, node) for t in terms)


def wanted_host_ports(pod_spec: Obj) -> set[tuple[str, str, int]]:
    """(protocol, hostIP, hostPort) the pod's containers ask for. The API server defaulted hostPort to
    containerPort for hostNetwork pods (see kubeemu.podsecurity.default_host_network_ports)."""
    found = set()
    for container in pod_spec.get("containers") or []:
        for port in container.get("ports") or []:
            number = port.get("hostPort") or (port.get("containerPort") if pod_spec.get("hostNetwork") else 0)
            if number:
                found.add((port.get("protocol") or "TCP", port.get("hostIP") or "0.0.0.0", int(number)))
    return found


def ports_clash(wanted: set[tuple[str, str, int]], used: set[tuple[str, str, int]]) -> bool:
    """HostPortInfo.CheckConflict: same protocol and port, and either address is 0.0.0.0 or they are equal."""
    return any(wproto == uproto and wport == uport and (wip == uip or "0.0.0.0" in (wip, uip))
               for wproto, wip, wport in wanted for uproto, uip, uport in used)


# -- the scheduler ---------------------------------------------------------------------------------


class NodeFilterScheduler:
    """Places a pod on the first node (by name) every filter accepts; None leaves it Pending, and
    `explain()` says why as kube-scheduler does. Real kube-scheduler scores the feasible nodes; the
    labs here pin Traefik to one node, so "first by name" never decides anything a test looks at."""

    def __init__(self, store: Store, registry: Registry, *, legacy_taint_text: bool = False) -> None:
        self.store = store
        self.pod_type = registry.lookup("", "v1", "pods")
        self.legacy_taint_text = legacy_taint_text

    def __call__(self, pod: Obj, nodes: list[Obj]) -> str | None:
        spec = pod.get("spec") or {}
        names = {n["metadata"]["name"] for n in nodes}
        if spec.get("nodeName"):  # bound already: the kubelet runs it, the scheduler never sees it
            return str(spec["nodeName"]) if spec["nodeName"] in names else None
        used = self._ports_in_use(pod)
        for node in sorted(nodes, key=lambda n: n["metadata"]["name"]):
            if self.reason(pod, node, used) is None:
                return str(node["metadata"]["name"])
        return None

    def reason(self, pod: Obj, node: Obj, used: dict[str, set[tuple[str, str, int]]] | None = None) -> str | None:
        """The first filter that refuses this node, in kube-scheduler's words; None when it fits."""
        spec = pod.get("spec") or {}
        node_spec = node.get("spec") or {}
        tolerations = spec.get("tolerations") or []
        if node_spec.get("unschedulable") and not any(tolerates(t, UNSCHEDULABLE_TAINT) for t in tolerations):
            return UNSCHEDULABLE
        if spec.get("nodeName") and spec["nodeName"] != node["metadata"]["name"]:
            return NODE_NAME
        taint = untolerated_taint(spec, node)
        if taint is not None:
            if self.legacy_taint_text:
                return f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value') or ''}}}"
            return TAINT
        if not matches_node_affinity(spec, node):
            return AFFINITY
        used = self._ports_in_use(pod) if used is None else used
        if ports_clash(wanted_host_ports(spec), used.get(node["metadata"]["name"], set())):
            return PORTS
        return None

    def explain(self, pod: Obj, nodes: list[Obj]) -> str:
        """FitError.Error() for a pod no node takes, with DefaultPreemption's verdict appended."""
        used = self._ports_in_use(pod)
        reasons = Counter(r for n in nodes if (r := self.reason(pod, n, used)) is not None)
        total = len(nodes)
        message = f"0/{total} nodes are available"
        if reasons:
            message += ": " + ", ".join(sorted(f"{count} {reason}" for reason, count in reasons.items())) + "."
        else:
            message += "."
        verdicts = Counter(NO_VICTIMS if reason == PORTS else NOT_HELPFUL for reason in reasons.elements())
        preemption = ", ".join(sorted(f"{count} {verdict}" for verdict, count in verdicts.items()))
        return (f"{message} {DRA_POSTFILTER}, preemption: 0/{total} nodes are available"
                + (f": {preemption}." if preemption else "."))

    def _ports_in_use(self, pod: Obj) -> dict[str, set[tuple[str, str, int]]]:
        """Host ports taken per node by the other pods bound there and not finished."""
        if self.pod_type is None:
            return {}
        me = (pod.get("metadata") or {}).get("uid")
        used: dict[str, set[tuple[str, str, int]]] = {}
        for other in self.store.list(self.pod_type)[0]:
            node = (other.get("spec") or {}).get("nodeName")
            phase = (other.get("status") or {}).get("phase")
            if not node or phase in ("Succeeded", "Failed") or (me and other["metadata"].get("uid") == me):
                continue
            used.setdefault(node, set()).update(wanted_host_ports(other.get("spec") or {}))
        return used
