"""The traefik phase's handles on the outside systems (one adapter of each per run) and its reads.

A read that stays unanswered after the lab's retries means "unknown", not "failed": it becomes
Unreadable, so a dry run shows `unknown` with the reason and an apply stops before writing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from labup.adapters.kube import Call, KubeAdapter

if TYPE_CHECKING:
    from labup.adapters.helm import HelmAdapter
    from labup.engine.context import Context

Obj = dict[str, Any]


def helm(ctx: Context) -> HelmAdapter:
    """The helm found by the helm phase (Unreadable when there is none: dry runs show unknown); its
    writes drop the run's release snapshot (labup.facts.release)."""
    from labup.facts.release import helm_adapter

    return helm_adapter(ctx)


# -- a Kubernetes read the shared adapter does not have (yet): thin, on its public request() -------


def pods_on_node(k: KubeAdapter, node: str) -> list[Obj]:
    """Every pod bound to `node`, in every namespace (who else holds a host port there)."""
    doc = k.request("GET", "/api/v1/pods", Call("list", "pods"),
                    query={"fieldSelector": f"spec.nodeName={node}", "limit": 500})
    return [p for p in doc.get("items") or [] if isinstance(p, dict)]
