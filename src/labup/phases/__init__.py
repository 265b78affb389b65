"""The phases, in order. Names and help live here so `labup phase --help` needs no phase module;
each phase's code is imported only when it runs (`labup.phases.<name>.PHASE`, `-` read as `_`).
Which phases run depends on lab.yaml's topology: cert-manager only in `ha`."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from labup.engine.model import Phase

PHASE_HELP: dict[str, str] = {
    "vip": "Talos Layer-2 VIP on the control-plane nodes (never a worker)",
    "helm": "a helm binary of at least helm.version, checksum-verified",
    "namespace": "Traefik's namespace, labelled pod-security privileged (that namespace only)",
    "cert-manager": "topology ha only: cert-manager (pinned chart, CRDs), which issues the certificate",
    "traefik": "Traefik on the host network: on the VIP's node with ACME storage on disk (single) or on "
               "every control-plane node with cert-manager's certificate (ha)",
    "verify": "prove it: ARP, VIP holder, placement, HTTP redirect, certificate",
}
PHASE_NAMES: tuple[str, ...] = tuple(PHASE_HELP)
HA_ONLY = ("cert-manager",)


def phases_for(topology: str) -> tuple[str, ...]:
    """The phases a lab of this topology runs, in order."""
    return tuple(n for n in PHASE_NAMES if topology == "ha" or n not in HA_ONLY)


def load_phase(name: str) -> Phase:
    module = importlib.import_module(f"labup.phases.{name.replace('-', '_')}")
    return module.PHASE  # type: ignore[no-any-return]


def phases_help() -> str:
    return "\n".join(f"{i}. {n}: {h}" for i, (n, h) in enumerate(PHASE_HELP.items(), 1))
