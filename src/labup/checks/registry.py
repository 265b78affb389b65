"""Every check by name (the names and their order are CHECK_NAMES, DESIGN.md §1)."""

from __future__ import annotations

from labup.checks import CHECK_NAMES
from labup.checks.acme_backup import acme_backup
from labup.checks.http import http_redirect
from labup.checks.kube import helm_release, psa_label, traefik_placement
from labup.checks.model import Check
from labup.checks.tls import https_cert
from labup.checks.vip import ARP_TIMEOUT_HINT, vip_arp, vip_holder

REGISTRY: dict[str, Check] = {c.name: c for c in (
    Check("vip-arp", vip_arp, ARP_TIMEOUT_HINT),
    Check("vip-holder", vip_holder, "talosctl did not answer in time: are the control-plane addresses "
                                    "(talos.endpoints) reachable on port 50000?"),
    Check("traefik-placement", traefik_placement),
    Check("http-redirect", http_redirect, "no HTTP answer from the VIP in time (see vip-arp)"),
    Check("https-cert", https_cert, "no TLS answer from the VIP in time (see vip-arp)"),
    Check("psa-label", psa_label),
    Check("helm-release", helm_release),
    Check("acme-backup", acme_backup),
)}

if tuple(REGISTRY) != CHECK_NAMES:  # the contract's names and order; a mismatch is a labup bug
    raise AssertionError(f"check registry {tuple(REGISTRY)} != CHECK_NAMES {CHECK_NAMES}")
