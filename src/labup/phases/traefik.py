"""Phase traefik: Traefik on the host network, pinned to the node that holds the VIP.

Steps, built from lab.yaml without any I/O (`labup rollback` rebuilds them just to undo):
- `placement`: which control-plane node holds the VIP now (the vip phase's finding, else Talos),
  and that Kubernetes knows it and would take Traefik's pod there. Writes nothing.
- `release`: `helm upgrade --install` of the pinned chart with labup's values, only when the
  deployed chart or values differ; helm's native rollback on failure; undo = back to the revision
  live before this run, or uninstall when this run installed it. Back from topology ha to single, it
  also removes labup's cert-manager release and the Secret cert-manager wrote (labup.traefik.leftovers).
- `pod`: Traefik's pod Running and Ready on that node (bounded wait), else a precise diagnosis.
  Sets ctx.facts["traefik_node"].

The parts live in labup.traefik; the values template and the chart pin in the top-level
phases/traefik/ folder.
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
    from labup.traefik.placement import PlacementStep
    from labup.traefik.release import ReleaseStep
    from labup.traefik.rollout import PodStep

    return [PlacementStep(ctx), ReleaseStep(ctx), PodStep(ctx)]


def render(lab: Lab) -> str:
    """`labup render traefik`: the values labup would install, as YAML. No cluster is asked, so the
    first control-plane node stands in for the VIP holder (said in a comment at the top)."""
    import sys

    from labup.traefik.values import build  # jsonschema is imported only when values are built
    from labup.validators import reserved_email

    if problem := reserved_email(lab.traefik.acme.email):
        sys.stderr.write(f"labup: warning: traefik.acme.email: {problem}\n")
    return build(lab).to_yaml()


PHASE = Phase("traefik", PHASE_HELP["traefik"], steps=steps)
