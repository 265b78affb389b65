"""Pod placement, kept in one replaceable function.

`Scheduler` gets the pod and the candidate nodes and returns a node name, or None to leave the pod
Pending (Unschedulable). A later scheduler can honour nodeSelector, tolerations and taints here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Obj = dict[str, Any]
Scheduler = Callable[[Obj, list[Obj]], str | None]


def node_is_ready(node: Obj) -> bool:
    conds = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def first_ready_node(pod: Obj, nodes: list[Obj]) -> str | None:
    """Default placement: an explicit spec.nodeName wins, else the first Ready node by name."""
    wanted = (pod.get("spec") or {}).get("nodeName")
    if wanted:
        return str(wanted)
    ready = sorted(n["metadata"]["name"] for n in nodes if node_is_ready(n))
    return ready[0] if ready else None


def make_node(name: str, index: int, labels: dict[str, str] | None = None) -> Obj:
    """A Ready node object. Addresses are documentation-range strings: data only, never dialled."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                       "kubernetes.io/arch": "amd64", **(labels or {})},
        },
        "spec": {},
        "status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
            "addresses": [{"type": "InternalIP", "address": f"192.0.2.{10 + index}"},
                          {"type": "Hostname", "address": name}],
            "nodeInfo": {"kubeletVersion": "v1.35.0", "osImage": "Talos (emulated)",
                         "architecture": "amd64", "operatingSystem": "linux"},
        },
    }
