"""The verify checks (DESIGN.md §1), by name and in order. Their code is imported only to run."""

from __future__ import annotations

CHECK_NAMES: tuple[str, ...] = ("vip-arp", "vip-holder", "traefik-placement", "http-redirect",
                                "https-cert", "psa-label", "helm-release", "acme-backup")
