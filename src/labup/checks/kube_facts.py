"""The Kubernetes and Helm facts verify needs, read through the run's snapshots (no kubectl, no helm).

Traefik's pods and namespace come from the run's KubeReads (labup.facts.kube), the release from its
ReleaseFacts (labup.facts.release: Helm's own records, one API request; the helm CLI only under
another HELM_DRIVER). Inside `labup apply` these are the apply's own snapshots: what its phases read
after their last write is not read again (a write, or a wait for Traefik's rollout, drops it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from labup.errors import Unreadable

if TYPE_CHECKING:
    from labup.adapters.helm import HelmAdapter, Revision
    from labup.config import Lab
    from labup.engine.shared import RunShared


@dataclass(frozen=True)
class TraefikPod:
    name: str
    node: str | None  # spec.nodeName (None while unscheduled)
    phase: str  # Pending, Running, ...
    ready: bool
    host_network: bool


class KubeFacts(Protocol):
    """What the checks need to read (LabKubeFacts below; tests give their own)."""

    def traefik_pods(self) -> list[TraefikPod]: ...

    def traefik_log(self) -> tuple[str, str] | None: ...  # (pod, end of its log); None: no pod

    def namespace_labels(self) -> Mapping[str, str] | None: ...  # None: no such namespace

    def release_status(self) -> Mapping[str, Any] | None:  # `helm status -o json`, None if no release
        ...

    def certificate(self) -> Mapping[str, Any] | None: ...  # topology ha: cert-manager's Certificate

    def tls_secret_chain(self) -> bytes | None: ...  # topology ha: the Secret's tls.crt (PEM), None if absent


class LabKubeFacts:
    """One per verify: the Traefik pods, the namespace's labels and the release status."""

    def __init__(self, lab: Lab, seconds: float, shared: RunShared | None = None) -> None:
        from labup.adapters.kube import KubeAdapter
        from labup.engine.shared import RunShared

        self.lab = lab
        self.seconds = max(seconds, 0.5)
        self.shared = shared if shared is not None else RunShared()
        self.kube = KubeAdapter.from_lab(lab, timeout_s=self.seconds)  # used only for what is not known yet

    def traefik_pods(self) -> list[TraefikPod]:
        from labup.facts.kube import kube_reads

        t = self.lab.traefik
        # the chart's own pod labels: name traefik, instance <release>-<namespace>
        labels = {"app.kubernetes.io/name": "traefik", "app.kubernetes.io/instance": f"{t.release}-{t.namespace}"}
        return [_pod(p) for p in kube_reads(self.shared).pods(self.kube, t.namespace, labels)]

    def traefik_log(self) -> tuple[str, str] | None:
        """(pod name, the end of its log) of the Traefik pod, a running one first; None: no pod."""
        pods = sorted(self.traefik_pods(), key=lambda p: p.phase != "Running")
        if not pods:
            return None
        return pods[0].name, self.kube.pod_log(self.lab.traefik.namespace, pods[0].name)  # always read now

    def namespace_labels(self) -> Mapping[str, str] | None:
        from labup.adapters.kube import labels_of
        from labup.facts.kube import kube_reads

        namespace = kube_reads(self.shared).namespace(self.kube, self.lab.traefik.namespace)
        return None if namespace is None else labels_of(namespace)

    def release_history(self) -> list[Revision]:
        """Every revision of the lab's release, oldest first ([] when there is none)."""
        from labup.facts.release import snapshot

        t = self.lab.traefik
        return snapshot(self.shared, t.release, t.namespace, lambda: self.kube, self._helm).history()

    def release_status(self) -> Mapping[str, Any] | None:
        """The latest revision, shaped like `helm status -o json`; None when there is no release."""
        history = self.release_history()
        if not history:
            return None
        latest = history[-1]
        return {"info": {"status": latest.status}, "version": latest.revision,
                "chart": {"metadata": {"name": latest.chart_name, "version": latest.chart_version}},
                # every revision's number and status: a stuck release's hint names the one to go back to
                "history": [{"revision": r.revision, "status": r.status} for r in history]}

    def certificate(self) -> Mapping[str, Any] | None:
        from labup.traefik.values import TLS_SECRET

        return self.kube.get_custom("cert-manager.io", "v1", "certificates", self.lab.traefik.namespace, TLS_SECRET)

    def tls_secret_chain(self) -> bytes | None:
        """The certificate chain cert-manager stored (tls.crt only: the key is never read)."""
        import base64

        from labup.traefik.values import TLS_SECRET

        secret = self.kube.get_secret(self.lab.traefik.namespace, TLS_SECRET)
        encoded = ((secret or {}).get("data") or {}).get("tls.crt")
        return base64.b64decode(encoded) if isinstance(encoded, str) else None

    def _helm(self) -> HelmAdapter:
        """helm itself, only when HELM_DRIVER keeps releases elsewhere than in Secrets."""
        from labup.adapters.helm import HelmAdapter
        from labup.adapters.helmbin import locate_helm

        found = locate_helm(self.lab)
        if found is None:
            raise Unreadable(f"no helm of at least v{self.lab.helm.version} on PATH or in "
                             f"{self.lab.helm.install_dir}", hint="`labup phase helm` installs it")
        kube = self.lab.kubernetes
        return HelmAdapter(found.path, found.version, kube.kubeconfig, kube.context, timeout_s=self.seconds)


def _pod(obj: Mapping[str, Any]) -> TraefikPod:
    meta, spec, status = (obj.get(k) or {} for k in ("metadata", "spec", "status"))
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    return TraefikPod(name=str(meta.get("name", "?")), node=spec.get("nodeName"),
                      phase=str(status.get("phase", "Unknown")), ready=ready,
                      host_network=bool(spec.get("hostNetwork")))
