"""Phase traefik. `render` (the final Helm values, offline) is built; the install steps are not yet
(their issue is open): PHASE has no steps, which the runner reports honestly (exit 1)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from labup.engine.model import Phase
from labup.phases import PHASE_HELP

if TYPE_CHECKING:
    from labup.config import Lab

PHASE = Phase("traefik", PHASE_HELP["traefik"], steps=None)


def render(lab: Lab) -> str:
    """`labup render traefik`: the values labup would install, as YAML. No cluster is asked, so the
    first control-plane node stands in for the VIP holder (said in a comment at the top)."""
    from labup.traefik.values import build  # jsonschema is imported only when values are built

    return build(lab).to_yaml()
