"""What a run is about to talk to, said before it starts (kubectl and talosctl users look for it): the
lab file, the Talos endpoints and talosconfig, the Kubernetes context and API server. Read from the
files only (no cluster is asked, no kubernetes client imported); never a credential."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labup.config import Lab


def describe(lab: Lab) -> str:
    return f"lab {lab.source} · Talos {talos(lab)} · Kubernetes {kubernetes(lab)}"


def talos(lab: Lab) -> str:
    from labup.adapters.talosconfig import discover

    endpoints = ",".join(lab.talos.endpoints or tuple(n.address for n in lab.control_planes))
    found = discover(lab.talos.talosconfig)
    where = f"talosconfig {found.path}" if found.path else "no talosconfig found"
    context = f", context {lab.talos.context}" if lab.talos.context else ""
    return f"endpoints {endpoints} ({where}{context})"


def kubernetes(lab: Lab) -> str:
    from labup.adapters.kube import kubeconfig_paths

    paths, source = kubeconfig_paths(lab.kubernetes.kubeconfig)
    existing = [p for p in paths if p.is_file()]
    if not existing:
        return f"(no kubeconfig: {source})"
    try:
        context, server = _context_and_server(existing[0], lab.kubernetes.context)
    except Exception:  # a kubeconfig labup cannot read is the adapter's to report, with its reason
        return f"(kubeconfig {existing[0]}: not readable here)"
    return f"context {context or '?'} at {server or '?'} (kubeconfig {existing[0]})"


def _context_and_server(path: Path, wanted: str | None) -> tuple[str | None, str | None]:
    from labup.yamlsafe import load_file

    doc: Any = load_file(path)
    if not isinstance(doc, dict):
        return None, None
    name = wanted or doc.get("current-context")
    context = next((c.get("context") or {} for c in doc.get("contexts") or []
                    if isinstance(c, dict) and c.get("name") == name), {})
    cluster = next((c.get("cluster") or {} for c in doc.get("clusters") or []
                    if isinstance(c, dict) and c.get("name") == context.get("cluster")), {})
    server = cluster.get("server") if isinstance(cluster, dict) else None
    return (str(name) if name else None), (str(server) if server else None)
