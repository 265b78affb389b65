"""The Kubernetes and Helm facts verify needs, read through the shared adapters (no kubectl)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from labup.checks.kube import TraefikPod
from labup.errors import Unreadable

if TYPE_CHECKING:
    from labup.config import Lab


class LabKubeFacts:
    """One per verify: the Traefik pods, the namespace's labels and the release status."""

    def __init__(self, lab: Lab, seconds: float) -> None:
        from labup.adapters.kube import KubeAdapter

        self.lab = lab
        self.seconds = max(seconds, 0.5)
        self.kube = KubeAdapter.from_lab(lab, timeout_s=self.seconds)

    def traefik_pods(self) -> list[TraefikPod]:
        t = self.lab.traefik
        # the chart's own pod labels: name traefik, instance <release>-<namespace>
        selector = f"app.kubernetes.io/name=traefik,app.kubernetes.io/instance={t.release}-{t.namespace}"
        return [_pod(p) for p in self.kube.list_pods(t.namespace, label_selector=selector)]

    def traefik_log(self) -> tuple[str, str] | None:
        """(pod name, the end of its log) of the Traefik pod, a running one first; None: no pod."""
        pods = sorted(self.traefik_pods(), key=lambda p: p.phase != "Running")
        if not pods:
            return None
        return pods[0].name, self.kube.pod_log(self.lab.traefik.namespace, pods[0].name)

    def namespace_labels(self) -> Mapping[str, str] | None:
        from labup.adapters.kube import labels_of

        namespace = self.kube.get_namespace(self.lab.traefik.namespace)
        return None if namespace is None else labels_of(namespace)

    def release_status(self) -> Mapping[str, Any] | None:
        """The latest revision, shaped like `helm status -o json`; None when there is no release."""
        from labup.adapters.helm import HelmAdapter
        from labup.phases.helm import locate_helm

        found = locate_helm(self.lab)
        if found is None:
            raise Unreadable(f"no helm of at least v{self.lab.helm.version} on PATH or in "
                             f"{self.lab.helm.install_dir}", hint="`labup phase helm` installs it")
        kube = self.lab.kubernetes
        helm = HelmAdapter(found.path, found.version, kube.kubeconfig, kube.context, timeout_s=self.seconds)
        t = self.lab.traefik
        # `helm history` (not `status -o json`, which carries no chart) has each revision's chart
        history = helm.history(t.release, t.namespace)
        if not history:
            return None
        latest = history[-1]
        return {"info": {"status": latest.status}, "version": latest.revision,
                "chart": {"metadata": {"name": latest.chart_name, "version": latest.chart_version}},
                # every revision's number and status: a stuck release's hint names the one to go back to
                "history": [{"revision": r.revision, "status": r.status} for r in history]}


def _pod(obj: Mapping[str, Any]) -> TraefikPod:
    meta, spec, status = (obj.get(k) or {} for k in ("metadata", "spec", "status"))
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    return TraefikPod(name=str(meta.get("name", "?")), node=spec.get("nodeName"),
                      phase=str(status.get("phase", "Unknown")), ready=ready,
                      host_network=bool(spec.get("hostNetwork")))
