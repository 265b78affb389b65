"""topology ha -> single: what the ha topology put in the cluster and single does not use.

Traefik's release upgrade itself replaces the DaemonSet by the Deployment and removes the Issuer and
the Certificate (they were part of it). Left are cert-manager's release (labup installed it for this
lab: its description says so) and the Secret cert-manager wrote (labup-tls, cert-manager's annotation
on it). This step removes both, and only when the Traefik release it saw before the upgrade was the
ha shape (a DaemonSet), so a converged single lab pays no read for it. An uninstall cannot be undone
by labup (nothing to journal); cert-manager's CRDs stay (crds.keep), and with them nothing of labup's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from labup.adapters.helm import no_release
from labup.adapters.kube import shared as kube
from labup.engine.model import Observation, Step
from labup.facts.release import release_facts
from labup.traefik.access import helm

if TYPE_CHECKING:
    from labup.engine.context import Context

FACT = "traefik_was_ha"  # set by the release step: the deployed Traefik was a DaemonSet (topology ha)


class HaLeftovers(Step):
    name = "ha-leftovers"

    def __init__(self, ctx: Context) -> None:
        self.lab = ctx.lab
        cm = ctx.lab.cert_manager
        self.release, self.namespace = cm.release, cm.namespace

    def observe(self, ctx: Context) -> Observation:
        if not ctx.facts.get(FACT):
            return Observation(True, "nothing of topology ha to remove")
        found = self._found(ctx)
        if not found:
            return Observation(True, "nothing of topology ha is left")
        return Observation(False, f"topology ha -> single: remove {' and '.join(found)} (labup's, unused in single)")

    def apply(self, ctx: Context, seen: Observation) -> dict[str, Any] | None:
        from labup.traefik.values import TLS_SECRET

        if self._labups_release(ctx):
            helm(ctx).uninstall(self.release, self.namespace, self.lab.cert_manager.wait_timeout_s)
        if self._labups_secret(ctx):
            kube(ctx).delete_secret(self.lab.traefik.namespace, TLS_SECRET)
        ctx.facts[FACT] = False
        return None  # not undoable: `labup apply` with topology: ha installs it again

    def _found(self, ctx: Context) -> list[str]:
        from labup.traefik.values import TLS_SECRET

        found = []
        if self._labups_release(ctx):
            found.append(f"release {self.release} (namespace {self.namespace})")
        if self._labups_secret(ctx):
            found.append(f"Secret {self.lab.traefik.namespace}/{TLS_SECRET}")
        return found

    def _labups_release(self, ctx: Context) -> bool:
        history = release_facts(ctx, self.release, self.namespace).history()
        return not no_release(history) and history[-1].description.startswith(f"labup: lab {self.lab.name},")

    def _labups_secret(self, ctx: Context) -> bool:
        from labup.traefik.values import TLS_SECRET

        secret = kube(ctx).get_secret(self.lab.traefik.namespace, TLS_SECRET)
        annotations = ((secret or {}).get("metadata") or {}).get("annotations") or {}
        return secret is not None and annotations.get("cert-manager.io/certificate-name") == TLS_SECRET
