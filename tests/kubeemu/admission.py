"""Admission: an ordered list of hooks every write passes through, API requests and controllers alike.

A hook may change `request.obj` (mutating, e.g. defaulting) or raise ApiError to deny (validating,
e.g. Pod Security admission: raise ApiError(403, 'pods "x" is forbidden: violates PodSecurity ...')).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .resources import ResourceType
from .store import Store

Obj = dict[str, Any]


@dataclass
class AdmissionRequest:
    operation: str  # CREATE | UPDATE | DELETE
    rt: ResourceType
    namespace: str | None
    obj: Obj  # the object as it will be stored; hooks may edit it in place
    old: Obj | None
    store: Store  # read-only use: e.g. to look at the namespace's labels


AdmissionHook = Callable[[AdmissionRequest], None]


class Admission:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.hooks: list[AdmissionHook] = [default_service_cluster_ip]

    def admit(self, operation: str, rt: ResourceType, namespace: str | None, obj: Obj,
              old: Obj | None = None) -> Obj:
        request = AdmissionRequest(operation, rt, namespace, obj, old, self.store)
        for hook in list(self.hooks):
            hook(request)
        return request.obj


_ips = itertools.count(10)


def default_service_cluster_ip(req: AdmissionRequest) -> None:
    """Services get a clusterIP, as the real allocator does (helm 3 --wait checks it)."""
    if req.operation != "CREATE" or req.rt.kind != "Service" or req.rt.group:
        return
    spec = req.obj.setdefault("spec", {})
    if spec.get("type") != "ExternalName" and not spec.get("clusterIP"):
        n = next(_ips)
        spec["clusterIP"] = f"10.96.{n // 250}.{n % 250 + 1}"
        spec["clusterIPs"] = [spec["clusterIP"]]
    spec.setdefault("type", "ClusterIP")
