"""After the release: Traefik's pod is Running and Ready on the node that holds the VIP.

helm's own wait is not enough: Helm 3 counts a Deployment with `replicas: 1, maxUnavailable: 1` as
ready with no pod ready at all, and neither helm checks WHERE the pod runs (wall 5). This step reads
the workload from the release's manifest, waits (bounded by traefik.wait_timeout_s) for a Ready pod
on the pinned node, and otherwise says precisely why not: Pending (the scheduler's own event, and
the taints/labels labup sees on the node), Pod Security refusing the pod, a host port already
taken, a pod that runs but never gets Ready, or a pod on another node than the VIP's (the
connection paradox). A failure here makes the runner undo the release step (rollback or uninstall).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml

from labup.adapters.kube import read
from labup.adapters.kube import shared as kube
from labup.engine.model import Observation, Step
from labup.errors import LabupError, PermanentError, Unreadable
from labup.facts.kube import kube_reads
from labup.facts.release import release_facts
from labup.traefik import diagnose as d
from labup.traefik.access import pods_on_node
from labup.traefik.placement import FACT as PLACEMENT
from labup.traefik.release import FACT as RELEASE

if TYPE_CHECKING:
    from labup.engine.context import Context

NODE_FACT = "traefik_node"  # the node Traefik was seen Running and Ready on (verify reads it)
_WORKLOAD_KINDS = ("Deployment", "DaemonSet")


@dataclass
class Look:
    """One reading of the workload and its pods."""

    kind: str = ""
    name: str = ""
    workload: dict[str, Any] | None = None
    pods: list[dict[str, Any]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name}" if self.name else "Traefik's workload"


class PodStep(Step):
    name = "pod"
    long_running = True

    def __init__(self, ctx: Context) -> None:
        self.lab = ctx.lab  # no I/O: `labup rollback` builds steps just to undo
        self.namespace = ctx.lab.traefik.namespace
        self.release = ctx.lab.traefik.release

    def observe(self, ctx: Context) -> Observation:
        placement = ctx.facts.get(PLACEMENT)
        wait = self.lab.traefik.wait_timeout_s
        if not placement:
            if ctx.dry_run:
                return Observation.unknown("Traefik's pod: the VIP holder is not known yet",
                                           "the placement step could not tell which node holds the VIP")
            raise PermanentError("the node holding the VIP is not known: nothing to check Traefik against")
        node = str(placement["name"])
        if ctx.dry_run and not (ctx.facts.get(RELEASE) or {}).get("converged"):
            return Observation(False, f"would wait up to {wait:g}s for Traefik's pod to be Running and Ready on {node}")
        look = self._look(ctx)
        verdict, ok = judge(look, node, ha=self.lab.ha)
        if ok:
            ctx.facts[NODE_FACT] = node
        return Observation(ok, verdict)

    def apply(self, ctx: Context, seen: Observation) -> dict[str, Any] | None:
        node = str(ctx.facts[PLACEMENT]["name"])
        wait = self.lab.traefik.wait_timeout_s
        deadline = time.monotonic() + wait
        interval = min(2.0, max(0.2, wait / 30))
        try:
            while True:
                look = self._look(ctx, fresh=True)
                _, ok = judge(look, node, ha=self.lab.ha)
                if ok:
                    return None  # nothing to undo: waiting changed nothing
                if time.monotonic() + interval > deadline:
                    found = self._diagnose(ctx, look, node)
                    raise PermanentError(f"Traefik is not Running and Ready on {node} after {wait:g}s: "
                                         f"{found.message}", hint=found.hint)
                time.sleep(interval)
        finally:
            # the pods changed while labup waited: the check after this step, and verify, read afresh
            kube_reads(ctx.shared).forget_workloads(self.namespace)

    # -- reads ------------------------------------------------------------------------------------

    def _look(self, ctx: Context, *, fresh: bool = False) -> Look:
        """The workload and its pods: the run's reading of them (`fresh`: read now, while waiting)."""
        k = kube(ctx)
        reads = kube_reads(ctx.shared)
        facts = release_facts(ctx)
        manifest = read(ctx, facts.manifest, f"manifest of release {self.release}")
        look = Look()
        for kind, name, selector in workloads(manifest):
            look.kind, look.name = kind, name
            look.workload = read(ctx, lambda kd=kind, nm=name: reads.workload(k, kd, self.namespace, nm, fresh=fresh),
                                 f"read {kind} {name}")
            query = ",".join(f"{key}={value}" for key, value in sorted(selector.items()))
            look.pods = d.live(read(ctx, lambda sel=selector: reads.pods(k, self.namespace, sel, fresh=fresh),
                                    f"list Traefik's pods ({query})"))
            break  # Traefik's chart renders one workload (deployment.kind)
        return look

    def _diagnose(self, ctx: Context, look: Look, node: str) -> d.Diagnosis:
        """Why no Ready pod is on `node`, from what the cluster says (each read best-effort)."""
        k = kube(ctx)
        vip = self.lab.vip.address
        if look.workload is None:
            return d.Diagnosis(f"the release renders no Deployment or DaemonSet labup can find ({look.label})",
                               f"`helm get manifest {self.release} -n {self.namespace}` shows what it holds")
        elsewhere = [p for p in look.pods if d.pod_node(p) and d.pod_node(p) != node]
        if elsewhere and not any(d.pod_node(p) == node for p in look.pods):
            return d.connection_paradox(str(d.pod_node(elsewhere[0])), vip, node)
        events = _best_effort(lambda: k.list_events(self.namespace), [])
        names = [d.pod_name(p) for p in look.pods]
        about = d.events_about(events, names=names, prefixes=[f"{look.name}-"])
        if not look.pods:
            return d.no_pod(about, look.label)
        pending = [p for p in look.pods if not d.pod_node(p)]
        if pending:
            node_obj = _best_effort(lambda: k.get_node(node), None)
            return d.pending(pending[0], d.events_about(events, names=[d.pod_name(pending[0])]), node_obj, node)
        mine = next((p for p in look.pods if d.pod_node(p) == node), look.pods[0])
        neighbours = _best_effort(lambda: pods_on_node(k, node), [])
        return d.not_ready(mine, d.events_about(events, names=[d.pod_name(mine)]), d.port_holders(mine, neighbours))


def workloads(manifest: str) -> list[tuple[str, str, dict[str, str]]]:
    """(kind, name, selector matchLabels) of each Deployment/DaemonSet in a release manifest."""
    found = []
    try:
        docs = list(yaml.safe_load_all(manifest))
    except yaml.YAMLError:
        return []
    for doc in docs:
        if not isinstance(doc, dict) or doc.get("kind") not in _WORKLOAD_KINDS:
            continue
        labels = ((doc.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        name = (doc.get("metadata") or {}).get("name")
        if name and labels:
            found.append((str(doc["kind"]), str(name), {str(k): str(v) for k, v in labels.items()}))
    return found


def judge(look: Look, node: str, *, ha: bool = False) -> tuple[str, bool]:
    """(what the user reads, converged?) for one reading: a Ready pod on `node`, the rollout done,
    and (topology single) no Ready Traefik on any other node; in topology ha the others are the point."""
    if look.workload is None:
        return f"{look.label} is not in the cluster yet", False
    ready_here = [p for p in look.pods if d.pod_node(p) == node and d.pod_ready(p)
                  and d.pod_phase(p) == "Running"]
    ready_elsewhere = [p for p in look.pods if d.pod_node(p) not in (None, node) and d.pod_ready(p)]
    if ready_elsewhere and not ha:
        p = ready_elsewhere[0]
        return f"pod {d.pod_name(p)} runs on {d.pod_node(p)}, not on {node}, which holds the VIP", False
    if not ready_here:
        if not look.pods:
            return f"{look.label} has no pod yet", False
        p = look.pods[0]
        where = d.pod_node(p) or "no node"
        return f"pod {d.pod_name(p)} is {d.pod_phase(p)} on {where}, not Ready", False
    if not _rolled_out(look.workload):
        return f"{look.label} is still rolling out", False
    p = ready_here[0]
    host = " on the host network" if (p.get("spec") or {}).get("hostNetwork") else ""
    others = f", which holds the VIP; {len(ready_elsewhere)} more on the other control-plane nodes" if ha else ""
    return f"pod {d.pod_name(p)} is Running and Ready on {node}{host}{others}", True


def _rolled_out(workload: dict[str, Any]) -> bool:
    """The controller has seen the latest spec and every replica runs it (`kubectl rollout status`)."""
    meta, spec, status = workload.get("metadata") or {}, workload.get("spec") or {}, workload.get("status") or {}
    if int(status.get("observedGeneration") or 0) < int(meta.get("generation") or 0):
        return False
    if workload.get("kind") == "DaemonSet":
        return int(status.get("updatedNumberScheduled") or 0) >= int(status.get("desiredNumberScheduled") or 0)
    want = int(spec.get("replicas", 1))
    return int(status.get("updatedReplicas") or 0) >= want and int(status.get("readyReplicas") or 0) >= want


def _best_effort(fn: Any, default: Any) -> Any:
    try:
        return fn()
    except (LabupError, Unreadable):
        return default
