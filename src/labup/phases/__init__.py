"""The phases, in order. Names and help live here so `labup phase --help` needs no phase module;
each phase's code is imported only when it runs (`labup.phases.<name>.PHASE`)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from labup.engine.model import Phase

PHASE_HELP: dict[str, str] = {
    "vip": "Talos Layer-2 VIP on the control-plane nodes (never a worker)",
    "helm": "a helm binary of at least helm.version, checksum-verified",
    "namespace": "Traefik's namespace, labelled pod-security privileged (that namespace only)",
    "traefik": "Traefik on the host network, pinned to the VIP's node, ACME storage on disk",
    "verify": "prove it: ARP, VIP holder, placement, HTTP redirect, certificate",
}
PHASE_NAMES: tuple[str, ...] = tuple(PHASE_HELP)


def load_phase(name: str) -> Phase:
    module = importlib.import_module(f"labup.phases.{name}")
    return module.PHASE  # type: ignore[no-any-return]


def phases_help() -> str:
    return "\n".join(f"{i}. {n}: {h}" for i, (n, h) in enumerate(PHASE_HELP.items(), 1))
