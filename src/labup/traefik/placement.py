"""Where Traefik goes: the control-plane node that holds the VIP now (FACTS.md §1, wall 5).

The holder comes from the vip phase when it ran in this invocation (ctx.facts["vip_holder"]), else
from Talos itself, with the vip phase's own lookup (`get addresses` on every control-plane node, then
`get nodename` for the Kubernetes name). The step then checks, on the Kubernetes side, that the node
exists and that nothing on it keeps Traefik's pod out (a taint its values do not tolerate, a missing
hostname label, a cordon) and records ctx.facts["traefik_placement"] for the release and pod steps.

It writes nothing: it is converged or it stops the run before the release step touches the cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from labup.adapters.kube import KubeForbidden, read
from labup.adapters.kube import shared as kube
from labup.engine.model import Observation, Step
from labup.errors import PermanentError, PreflightError
from labup.traefik.diagnose import node_fit, untolerated
from labup.vip.forms import address_id

if TYPE_CHECKING:
    from labup.config import Lab
    from labup.engine.context import Context

FACT = "traefik_placement"  # {"name": <Kubernetes node name>, "address": <Talos address>}


@dataclass(frozen=True)
class Holder:
    name: str  # Kubernetes node name
    address: str  # Talos address
    source: str  # how labup knows: for the summary


def find_holder(ctx: Context) -> Holder | None:
    """The control-plane node holding the VIP now, or None when none does. Unreadable when Talos
    cannot be asked (talosctl missing, every control-plane node unreachable)."""
    fact = ctx.facts.get("vip_holder")
    if isinstance(fact, dict) and fact.get("name"):
        return Holder(str(fact["name"]), str(fact.get("address") or ""), "the vip phase")
    from labup.vip.holder import HolderStep
    from labup.vip.survey import Survey

    # The vip phase's holder lookup, read-only (observe() only reads; it sets ctx.facts["vip_holder"]).
    seen = HolderStep(ctx.lab, Survey(ctx.lab)).observe(ctx)
    fact = ctx.facts.get("vip_holder")
    if not seen.converged or not isinstance(fact, dict):
        return None
    return Holder(str(fact["name"]), str(fact.get("address") or ""), "talosctl get addresses")


def vip_phase_in_run(ctx: Context) -> bool:
    """Whether the vip phase runs before this one in the same invocation (it brings the VIP up, so
    "no holder yet" at pre-flight is expected then). The runner puts the run's phases in
    ctx.facts["run_phases"], so `labup phase traefik` alone is strict at pre-flight."""
    phases = ctx.facts.get("run_phases")
    return True if phases is None else "vip" in phases


def no_holder(lab: Lab) -> PreflightError:
    first = lab.control_planes[0].address
    return PreflightError(
        f"no control-plane node holds the VIP {lab.vip.address} yet: Traefik would have no node to be "
        f"pinned to (none of {', '.join(n.name for n in lab.control_planes)} shows "
        f"{address_id(lab.vip.interface, lab.vip.address)} in `talosctl get addresses`)",
        hint=f"run `labup phase vip` (or `labup apply`) first; `talosctl -n {first} get addresses` shows the VIP "
             "on the node that holds it")


class PlacementStep(Step):
    name = "placement"

    def __init__(self, ctx: Context) -> None:
        self.lab = ctx.lab  # no I/O: `labup rollback` builds steps just to undo

    def preflight(self, ctx: Context) -> None:
        from labup.traefik.values import build

        build(self.lab)  # refused values stop the run here, before any helm or Kubernetes call
        # with the vip phase in this run, the holder is its to establish: no need to ask Talos now
        if not vip_phase_in_run(ctx) and find_holder(ctx) is None:
            raise no_holder(self.lab)

    def observe(self, ctx: Context) -> Observation:
        from labup.traefik.values import build

        vip = self.lab.vip.address
        holder = find_holder(ctx)
        if holder is None:
            if ctx.dry_run:
                return Observation(None, f"no control-plane node holds the VIP {vip} yet",
                                   reason="Traefik is pinned to the node that holds it once the vip phase "
                                          "has brought it up; the values below use the first control-plane "
                                          "node of lab.yaml")
            raise no_holder(self.lab)
        k = kube(ctx)
        try:
            node = read(ctx, lambda: k.get_node(holder.name), f"read node {holder.name}")
        except KubeForbidden as exc:
            # a kubeconfig limited to Traefik's namespace may not read nodes: pin by name, unchecked
            ctx.reporter.note(f"cannot read node {holder.name} ({exc.message}): its taints are not checked")
            ctx.facts[FACT] = {"name": holder.name, "address": holder.address}
            return Observation(True, f"Traefik goes on {holder.name} ({holder.address}), which holds the VIP {vip} "
                                     f"(found by {holder.source}; the node itself could not be read)")
        if node is None:
            raise PermanentError(
                f"the VIP {vip} is held by {holder.name} ({holder.address}), but Kubernetes has no node "
                f"named {holder.name}", hint="is kubernetes.kubeconfig the kubeconfig of this cluster? "
                "`kubectl get nodes` lists the names Traefik can be pinned to")
        spec = _pod_spec(build(self.lab, holder.name).values)
        why = node_fit(node, spec)
        if why:
            raise PermanentError(f"Traefik cannot run on {holder.name}, which holds the VIP {vip}: "
                                 + "; ".join(why),
                                 hint="fix the node, or add the missing toleration in traefik.values")
        ctx.facts[FACT] = {"name": holder.name, "address": holder.address}
        tolerated = [t for t in (node.get("spec") or {}).get("taints") or []
                     if not untolerated([t], spec.get("tolerations") or [])]
        taints = " (its taint " + ", ".join(
            f"{t.get('key')}:{t.get('effect')}" for t in tolerated) + " is tolerated)" if tolerated else ""
        if self.lab.ha:
            return Observation(True, f"Traefik runs on every control-plane node (a DaemonSet); {holder.name} "
                                     f"({holder.address}) holds the VIP {vip} (found by {holder.source}){taints}")
        return Observation(True, f"Traefik goes on {holder.name} ({holder.address}), which holds the VIP {vip} "
                                 f"(found by {holder.source}){taints}")

    def apply(self, ctx: Context, seen: Observation) -> dict[str, Any] | None:
        return None  # never reached: observe() is converged or stops the run


def _pod_spec(values: dict[str, Any]) -> dict[str, Any]:
    """What of the pod's spec the values decide for placement (the chart copies both keys as they are)."""
    return {"tolerations": values.get("tolerations") or [], "nodeSelector": values.get("nodeSelector") or {}}
