"""topology ha -> single: what the ha topology put in the cluster and single does not use.

Traefik's release upgrade itself replaces the DaemonSet by the Deployment. Left are labup's Issuer and
Certificate (labup's label on them), cert-manager's release (labup installed it for this lab: its
description says so) and the Secret cert-manager wrote (labup-tls, with cert-manager's annotation
naming that Certificate). The release step removes them right after its upgrade, and only
when the release it found was the ha shape (a DaemonSet): a converged single lab pays no read for it.
cert-manager's CRDs stay (crds.keep): deleting a CRD deletes every object of its kind.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labup.adapters.helm import no_release
from labup.adapters.kube import shared as kube
from labup.facts.release import release_facts
from labup.traefik.access import helm

if TYPE_CHECKING:
    from labup.engine.context import Context

FACT = "traefik_was_ha"  # set by the release step: the deployed Traefik was a DaemonSet (topology ha)
PLANNED = "labup's Issuer, Certificate, cert-manager release and Secret labup-tls go"


def remove(ctx: Context) -> list[str]:
    """Remove labup's Issuer and Certificate, its cert-manager release and the Secret cert-manager wrote;
    what was removed."""
    from labup.certmanager.objects import GROUP, LABELS, PLURALS, VERSION, contains, desired
    from labup.traefik.values import TLS_SECRET

    lab = ctx.lab
    cm = lab.cert_manager
    removed = []
    k = kube(ctx)
    for obj in desired(lab):  # first: while cert-manager still runs, it sees its Certificate go
        kind, name = obj["kind"], obj["metadata"]["name"]
        live = k.get_custom(GROUP, VERSION, PLURALS[kind], lab.traefik.namespace, name)
        if live is not None and contains((live.get("metadata") or {}).get("labels") or {}, LABELS):
            k.delete_custom(GROUP, VERSION, PLURALS[kind], lab.traefik.namespace, name)
            removed.append(f"{kind} {lab.traefik.namespace}/{name}")
    history = release_facts(ctx, cm.release, cm.namespace, fresh=True).history()
    if not no_release(history) and history[-1].description.startswith(f"labup: lab {lab.name},"):
        helm(ctx).uninstall(cm.release, cm.namespace, cm.wait_timeout_s)
        removed.append(f"release {cm.release} (namespace {cm.namespace})")
    secret = k.get_secret(lab.traefik.namespace, TLS_SECRET)
    annotations = ((secret or {}).get("metadata") or {}).get("annotations") or {}
    if secret is not None and annotations.get("cert-manager.io/certificate-name") == TLS_SECRET:
        k.delete_secret(lab.traefik.namespace, TLS_SECRET)
        removed.append(f"Secret {lab.traefik.namespace}/{TLS_SECRET}")
    return removed
