"""Phase vip: the native Talos Layer-2 VIP on the control-plane nodes, never on a worker.

Steps, built from lab.yaml without any I/O (`labup rollback` rebuilds them just to undo):
- one per node: a control-plane node gets the VIP patch in the form its Talos version wants
  (>= 1.12 a Layer2VIPConfig document, <= 1.11 a machine.network.interfaces entry); a worker gets
  none, and the plan says why. Pre-flight checks each node's role against Talos, the link, and
  that the VIP is not configured elsewhere, before any write.
- `holder`: waits (vip.wait_timeout_s) until one control-plane node holds the VIP, and records it
  in ctx.facts["vip_holder"] = {"name", "address"} for the traefik phase.

The parts live in labup.vip; the patch templates in the top-level phases/vip/ folder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labup.engine.model import Phase
from labup.phases import PHASE_HELP

if TYPE_CHECKING:
    from labup.config import Lab
    from labup.engine.context import Context
    from labup.engine.model import Step


def steps(ctx: Context) -> list[Step]:
    from labup.vip.holder import HolderStep
    from labup.vip.steps import NodeVipStep, WorkerStep
    from labup.vip.survey import Survey

    lab = ctx.lab
    survey = Survey(lab)
    built: list[Step] = [NodeVipStep(lab, n, survey) if n.is_control_plane else WorkerStep(n, survey)
                         for n in lab.nodes]
    taken = {n.name for n in lab.nodes}
    built.append(HolderStep(lab, survey, name="holder" if "holder" not in taken else "vip-holder-wait"))
    return built


def render(lab: Lab) -> str:
    """`labup render vip`: the patch for each control-plane node, offline."""
    from labup.vip.render import render as render_vip

    return render_vip(lab)


PHASE = Phase("vip", PHASE_HELP["vip"], steps=steps)
