"""Phase cert-manager (topology: ha only): cert-manager installed by Helm, before Traefik.

In topology ha every control-plane node runs a Traefik, and Traefik's built-in ACME cannot share its
state between instances (wall 6). cert-manager obtains the certificate instead and keeps it in a
Secret every Traefik serves from its default TLS store.

Steps, built from lab.yaml without any I/O (`labup rollback` rebuilds them just to undo):
- `release`: `helm upgrade --install` of the pinned chart (phases/certmanager/chart.yaml) with
  labup's values (CRDs with the release, kept on uninstall), validated offline against that chart
  version's own schema; only when the deployed chart or values differ. Undo: back to the revision
  live before this run, or uninstall when this run installed it.
- `carry-over`: before the next step creates the Certificate, a certificate of topology single (the
  newest `labup backup`, else the in-cluster backup) goes into the Secret cert-manager will use, when
  cert-manager would keep it (same names, RSA 4096 key, not due for renewal): no new order. Undo
  deletes it while it still holds that certificate.

- `certificate`: the Issuer (ACME, HTTP-01 through Traefik's ingress class; staging with
  traefik.acme.staging) and the Certificate for traefik.domains, in Traefik's namespace
  (phases/certmanager/objects.yaml.tmpl), created by labup and not by a Helm release: Helm 4's wait
  would hold Traefik's release hostage to Let's Encrypt. Undo deletes what it created.

Traefik's release (the next phase) serves the Certificate's Secret from its default TLS store. The
steps live in labup.certmanager.
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
    from labup.certmanager.carryover import CarryOver
    from labup.certmanager.objects import IssuerAndCertificate
    from labup.certmanager.release import CertManagerRelease

    return [CertManagerRelease(ctx), CarryOver(ctx), IssuerAndCertificate(ctx)]


def render(lab: Lab) -> str:
    """`labup render cert-manager`: the values the release gets and the Issuer and Certificate (offline)."""
    from labup.certmanager.values import render as values

    return values(lab)


PHASE = Phase("cert-manager", PHASE_HELP["cert-manager"], steps=steps)
