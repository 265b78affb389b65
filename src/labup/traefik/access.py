"""The traefik phase's handles on the outside systems (one adapter of each per run) and its reads.

A read that stays unanswered after the lab's retries means "unknown", not "failed": it becomes
Unreadable, so a dry run shows `unknown` with the reason and an apply stops before writing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from labup.adapters.kube import Call, KubeAdapter, KubeNotFound

if TYPE_CHECKING:
    from labup.adapters.helm import HelmAdapter
    from labup.engine.context import Context

Obj = dict[str, Any]


def helm(ctx: Context) -> HelmAdapter:
    """The helm found by the helm phase (Unreadable when there is none: dry runs show unknown)."""
    from labup.adapters.helm import HelmAdapter

    return ctx.adapter("helm", HelmAdapter.from_context)  # type: ignore[no-any-return]


# -- Kubernetes reads the shared adapter does not have (yet): thin, on its public request() ------


def get_workload(k: KubeAdapter, kind: str, namespace: str, name: str) -> Obj | None:
    """A Deployment or DaemonSet (apps/v1), or None when absent."""
    plural = {"Deployment": "deployments", "DaemonSet": "daemonsets"}[kind]
    try:
        return k.request("GET", f"/apis/apps/v1/namespaces/{quote(namespace, safe='')}/{plural}/"
                                f"{quote(name, safe='')}", Call("get", plural, namespace, "apps"))
    except KubeNotFound:
        return None


def pods_on_node(k: KubeAdapter, node: str) -> list[Obj]:
    """Every pod bound to `node`, in every namespace (who else holds a host port there)."""
    doc = k.request("GET", "/api/v1/pods", Call("list", "pods"),
                    query={"fieldSelector": f"spec.nodeName={node}", "limit": 500})
    return [p for p in doc.get("items") or [] if isinstance(p, dict)]
