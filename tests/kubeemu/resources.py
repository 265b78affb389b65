"""The kinds the emulator serves, and a registry that discovery, routing and CRDs share."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    group: str  # "" for the core group
    version: str
    kind: str
    plural: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    # Kinds with a status subresource keep their status when the main resource is written.
    has_status: bool = False
    categories: tuple[str, ...] = field(default=())

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def base_path(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    def item_path(self, namespace: str | None, name: str) -> str:
        if self.namespaced:
            return f"{self.base_path}/namespaces/{namespace}/{self.plural}/{name}"
        return f"{self.base_path}/{self.plural}/{name}"


def _t(gv: str, kind: str, plural: str, *, cluster: bool = False, short: tuple[str, ...] = (),
       status: bool = False) -> ResourceType:
    group, _, version = gv.rpartition("/")
    return ResourceType(group, version, kind, plural, not cluster, short, status)


BUILTIN_TYPES: tuple[ResourceType, ...] = (
    _t("v1", "Namespace", "namespaces", cluster=True, short=("ns",), status=True),
    _t("v1", "Node", "nodes", cluster=True, short=("no",), status=True),
    _t("v1", "Pod", "pods", short=("po",), status=True),
    _t("v1", "Secret", "secrets"),
    _t("v1", "ConfigMap", "configmaps", short=("cm",)),
    _t("v1", "Service", "services", short=("svc",), status=True),
    _t("v1", "ServiceAccount", "serviceaccounts", short=("sa",)),
    _t("v1", "Event", "events", short=("ev",)),
    _t("v1", "Endpoints", "endpoints", short=("ep",)),
    _t("v1", "PersistentVolumeClaim", "persistentvolumeclaims", short=("pvc",), status=True),
    _t("v1", "PersistentVolume", "persistentvolumes", cluster=True, short=("pv",), status=True),
    _t("apps/v1", "Deployment", "deployments", short=("deploy",), status=True),
    _t("apps/v1", "ReplicaSet", "replicasets", short=("rs",), status=True),
    _t("apps/v1", "DaemonSet", "daemonsets", short=("ds",), status=True),
    _t("apps/v1", "StatefulSet", "statefulsets", short=("sts",), status=True),
    _t("batch/v1", "Job", "jobs", status=True),
    _t("rbac.authorization.k8s.io/v1", "Role", "roles"),
    _t("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings"),
    _t("rbac.authorization.k8s.io/v1", "ClusterRole", "clusterroles", cluster=True),
    _t("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "clusterrolebindings", cluster=True),
    _t("networking.k8s.io/v1", "IngressClass", "ingressclasses", cluster=True),
    _t("networking.k8s.io/v1", "Ingress", "ingresses", short=("ing",), status=True),
    _t("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets", short=("pdb",), status=True),
    _t("apiextensions.k8s.io/v1", "CustomResourceDefinition", "customresourcedefinitions",
       cluster=True, short=("crd", "crds"), status=True),
)


class Registry:
    """Thread-safe set of served kinds; CRDs add theirs here at runtime."""

    def __init__(self, types: tuple[ResourceType, ...] = BUILTIN_TYPES) -> None:
        self._lock = threading.Lock()
        self._types: list[ResourceType] = list(types)

    def register(self, rt: ResourceType) -> None:
        with self._lock:
            self._types = [
                t for t in self._types
                if not (t.group == rt.group and t.version == rt.version and t.plural == rt.plural)
            ]
            self._types.append(rt)

    def unregister(self, group: str, plural: str) -> None:
        with self._lock:
            self._types = [t for t in self._types if not (t.group == group and t.plural == plural)]

    def all(self) -> list[ResourceType]:
        with self._lock:
            return list(self._types)

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        for t in self.all():
            if t.group == group and t.version == version and t.plural == plural:
                return t
        return None

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        for t in self.all():
            if t.group_version == api_version and t.kind == kind:
                return t
        return None

    def groups(self) -> dict[str, list[str]]:
        """group -> versions, in registration order (the first is the preferred one)."""
        out: dict[str, list[str]] = {}
        for t in self.all():
            versions = out.setdefault(t.group, [])
            if t.version not in versions:
                versions.append(t.version)
        return out
