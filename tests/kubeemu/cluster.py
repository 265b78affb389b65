"""A cluster that behaves like a small Talos one, on top of kubeemu. Opt-in: nothing here changes an
emulator until `install_cluster(emu, nodes)` is called on it.

    cluster = install_cluster(emu, [NodeSpec("cp-1", "192.0.2.10", "controlplane"),
                                    NodeSpec("wk-1", "192.0.2.11", "worker")])
    cluster.on_pod_running(lambda pod: ...)   # a pod reached Running (and Ready) on pod.node
    cluster.on_pod_gone(lambda pod: ...)      # that pod was deleted, or stopped running

What it installs:
- Nodes as Talos registers them: `kubernetes.io/hostname`, the control-plane role label and the
  `node-role.kubernetes.io/control-plane:NoSchedule` taint on control-plane nodes, InternalIP.
- kube-scheduler's filters and words (kubeemu.placement).
- The API server's hostNetwork port defaulting and Pod Security admission, baseline by default with
  kube-system exempt, as Talos configures it (kubeemu.podsecurity).
- A requeue: when a pod goes away, a node or a namespace changes, workloads are reconciled again
  shortly after (the scheduler's retry of Pending pods, the ReplicaSet controller's retry of a create
  admission refused), from a thread of its own so no write waits for it.
- Pod lifecycle hooks, called synchronously in the thread that made the write, before the workload's
  status is written: by the time a Deployment reports ready, an `on_pod_running` hook has returned
  (the e2e lab starts its stand-in HTTPS server there, so "Ready" means "listening").
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .placement import NodeFilterScheduler
from .podsecurity import PodSecurityAdmission, default_host_network_ports
from .resources import ResourceType

if TYPE_CHECKING:
    from .server import KubeEmulator

Obj = dict[str, Any]
CP_ROLE = "node-role.kubernetes.io/control-plane"
CP_TAINT = {"key": CP_ROLE, "effect": "NoSchedule"}
CONTROL_PLANE_ROLES = ("controlplane", "init")


@dataclass(frozen=True)
class NodeSpec:
    name: str  # Kubernetes node name (= kubernetes.io/hostname = Talos nodename)
    address: str  # InternalIP
    role: str = "worker"  # controlplane | init | worker (Talos machine types)
    labels: dict[str, str] = field(default_factory=dict)


def node_object(spec: NodeSpec, kubelet_version: str = "v1.35.0") -> Obj:
    """A Ready Node as a Talos kubelet registers it (control plane: role label and taint)."""
    labels = {"kubernetes.io/hostname": spec.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
              "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64", **spec.labels}
    taints: list[Obj] = []
    if spec.role in CONTROL_PLANE_ROLES:
        labels[CP_ROLE] = ""
        taints.append(dict(CP_TAINT))
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": spec.name, "labels": labels},
        "spec": {"taints": taints} if taints else {},
        "status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "kubelet is posting ready status"}],
            "addresses": [{"type": "InternalIP", "address": spec.address}, {"type": "Hostname", "address": spec.name}],
            "capacity": {"cpu": "4", "memory": "8148Mi", "pods": "110"},
            "allocatable": {"cpu": "4", "memory": "7900Mi", "pods": "110"},
            # every field: the Python client's models refuse a nodeInfo with one missing
            "nodeInfo": {"kubeletVersion": kubelet_version, "kubeProxyVersion": "", "osImage": "Talos (emulated)",
                         "architecture": "amd64", "operatingSystem": "linux", "kernelVersion": "6.18.0-talos",
                         "containerRuntimeVersion": "containerd://2.1.0", "machineID": _hex_id(spec.name),
                         "systemUUID": _hex_id(spec.name + "/uuid"), "bootID": _hex_id(spec.name + "/boot")},
        },
    }


def _hex_id(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class PodOnNode:
    """What a lifecycle hook is told about a pod."""

    namespace: str
    name: str
    uid: str
    node: str
    ready: bool
    host_network: bool
    obj: Obj


PodHook = Callable[[PodOnNode], None]


def _running(pod: Obj) -> bool:
    return bool((pod.get("spec") or {}).get("nodeName")) and (pod.get("status") or {}).get("phase") == "Running"


def _bare(pod: Obj) -> bool:
    """A pod no controller owns (created directly through the API)."""
    return not any(ref.get("controller") for ref in pod["metadata"].get("ownerReferences") or [])


def _ready(pod: Obj) -> bool:
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


class Cluster:
    """The pieces install_cluster() wires into one emulator, and the handles tests use."""

    def __init__(self, emu: KubeEmulator, *, psa: PodSecurityAdmission, scheduler: NodeFilterScheduler,
                 require_ready: bool = True) -> None:
        self.emu = emu
        self.psa = psa
        self.scheduler = scheduler
        self.require_ready = require_ready  # hooks fire on Running AND Ready (False: on Running alone)
        self._running: dict[str, PodOnNode] = {}  # uid -> pod the hooks were told is running
        self._started: list[PodHook] = []
        self._gone: list[PodHook] = []
        self._hook_lock = threading.RLock()
        self.hook_errors: list[str] = []  # a hook that raised: tests assert this is empty
        self._wake = threading.Event()
        self._closed = False
        self._idle = threading.Event()
        self._idle.set()
        self._requeuer = threading.Thread(target=self._requeue_loop, name="kubeemu-requeue", daemon=True)
        self._requeuer.start()

    # -- nodes ---------------------------------------------------------------------------------------

    def add_node(self, spec: NodeSpec) -> Obj:
        return self.emu.create("v1", "Node", node_object(spec))

    def set_node_ready(self, name: str, ready: bool) -> None:
        """Flip the Ready condition (the scheduler then sees the lifecycle controller's not-ready taint)."""
        node = self.emu.get("v1", "Node", name)
        for cond in node["status"]["conditions"]:
            if cond["type"] == "Ready":
                cond["status"] = "True" if ready else "False"
        node_type = self.emu.registry.by_kind("v1", "Node")
        assert node_type is not None
        self.emu.store.update(node_type, None, name, node, subresource="status")

    def set_pod_ready(self, namespace: str, name: str, ready: bool = True) -> None:
        """The pod's readiness probe starts (or stops) passing: its Ready conditions and container
        statuses flip, then the workloads are reconciled so their status counts it (kubeemu's
        `never_ready` only decides for pods created after it is set)."""
        pod_type = self.emu.registry.by_kind("v1", "Pod")
        assert pod_type is not None
        pod = self.emu.store.get(pod_type, namespace, name)
        status = pod.get("status") or {}
        for cond in status.get("conditions") or []:
            if cond.get("type") in ("Ready", "ContainersReady"):
                cond["status"] = "True" if ready else "False"
                cond["reason"] = "" if ready else "ContainersNotReady"
        for cs in status.get("containerStatuses") or []:
            cs["ready"] = ready
        self.emu.store.update(pod_type, namespace, name, pod, subresource="status")
        self.emu.controllers.resync()

    def taint(self, name: str, *taints: Obj) -> None:
        node = self.emu.get("v1", "Node", name)
        node["spec"]["taints"] = [*(node["spec"].get("taints") or []), *taints]
        self.emu.update("v1", "Node", node)

    def untaint(self, name: str, key: str) -> None:
        node = self.emu.get("v1", "Node", name)
        node["spec"]["taints"] = [t for t in node["spec"].get("taints") or [] if t.get("key") != key]
        self.emu.update("v1", "Node", node)

    # -- pod lifecycle hooks ------------------------------------------------------------------------

    def on_pod_running(self, hook: PodHook) -> None:
        self._started.append(hook)

    def on_pod_gone(self, hook: PodHook) -> None:
        self._gone.append(hook)

    def running_pods(self) -> list[PodOnNode]:
        with self._hook_lock:
            return list(self._running.values())

    def _on_event(self, etype: str, rt: ResourceType, obj: Obj) -> None:
        if rt.group == "" and rt.kind in ("Node", "Namespace"):
            # a node fixed, or a namespace's Pod Security labels changed: the scheduler and the
            # ReplicaSet controller (which retries a refused create) try again
            self.requeue()
            return
        if rt.group != "" or rt.kind != "Pod":
            return
        if etype == "ADDED" and _bare(obj) and not (obj.get("status") or {}).get("phase"):
            self._place_bare_pod(obj)  # its MODIFIED event (bound, Running) comes back through here
            return
        uid = obj["metadata"].get("uid", "")
        live = etype != "DELETED" and _running(obj) and (_ready(obj) or not self.require_ready)
        with self._hook_lock:
            known = self._running.get(uid)
            if live and known is None:
                seen = self._describe(obj)
                self._running[uid] = seen
                self._call(self._started, seen)
            elif not live and known is not None:
                del self._running[uid]
                self._call(self._gone, known)
        if etype == "DELETED":
            self.requeue()  # its host ports are free now: a Pending pod may fit

    # -- pods no controller owns: the scheduler binds them, the kubelet reports them -----------------

    def _place_bare_pod(self, pod: Obj) -> None:
        """Bind a pod created directly through the API (kubeemu's controllers only place the pods of
        Deployments and DaemonSets), or leave it Pending with the scheduler's event, like
        kube-scheduler + kubelet. Uses the controllers' status and event writers (same package)."""
        ctl = self.emu.controllers
        pod_type = self.emu.registry.by_kind("v1", "Pod")
        assert pod_type is not None
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        with ctl._lock:  # one placement at a time, as with the controllers' own
            fresh = self.emu.store.find(pod_type, ns, name)
            if fresh is None or (fresh.get("status") or {}).get("phase") not in (None, "Pending"):
                return  # gone, or started meanwhile
            nodes = ctl._ready_nodes()
            named = (fresh.get("spec") or {}).get("nodeName")
            if named:
                # spec.nodeName at creation: no scheduler; that node's kubelet runs it (a node that does
                # not exist, or is not Ready, never does: the pod stays Pending)
                node = next((n for n in nodes if n["metadata"]["name"] == named), None)
                if node is not None:
                    fresh["status"] = ctl._pod_status(fresh, node, ready=True)
                    self.emu.store.update(pod_type, ns, name, fresh, subresource="status")
                return
            node_name = self.scheduler(fresh, nodes)
            node = next((n for n in nodes if n["metadata"]["name"] == node_name), None)
            if node is None:
                message = ctl._unschedulable_message(fresh, nodes)
                if (fresh.get("status") or {}).get("phase") != "Pending":
                    ctl._record_event(fresh, "FailedScheduling", message)
                    fresh["status"] = ctl._pod_status(fresh, None, ready=False, unschedulable=message)
                    self.emu.store.update(pod_type, ns, name, fresh, subresource="status")
                return
            fresh["spec"]["nodeName"] = node_name
            bound = self.emu.store.update(pod_type, ns, name, fresh)
            bound["status"] = ctl._pod_status(bound, node, ready=True)
            self.emu.store.update(pod_type, ns, name, bound, subresource="status")

    def _place_pending_bare_pods(self) -> None:
        for pod in self.emu.list("v1", "Pod"):
            if _bare(pod) and not (pod.get("spec") or {}).get("nodeName"):
                self._place_bare_pod(pod)

    @staticmethod
    def _describe(pod: Obj) -> PodOnNode:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        return PodOnNode(meta.get("namespace", ""), meta["name"], meta.get("uid", ""), spec["nodeName"],
                         _ready(pod), bool(spec.get("hostNetwork")), pod)

    def _call(self, hooks: list[PodHook], pod: PodOnNode) -> None:
        for hook in list(hooks):
            try:
                hook(pod)
            except Exception as exc:  # a hook must never break the API request that triggered it
                self.hook_errors.append(f"{getattr(hook, '__name__', hook)} on {pod.namespace}/{pod.name}: {exc!r}")

    # -- the scheduler's retry -----------------------------------------------------------------------

    def requeue(self) -> None:
        self._idle.clear()
        self._wake.set()

    def settle(self, timeout: float = 5.0) -> bool:
        """Wait until no retry is pending (tests call this after freeing a port or fixing a node)."""
        return self._idle.wait(timeout)

    def _requeue_loop(self) -> None:
        while not self._closed:
            self._wake.wait(0.5)
            if self._closed:
                return
            if not self._wake.is_set():
                continue
            self._wake.clear()
            with contextlib.suppress(Exception):  # the store may be closing
                self.emu.controllers.resync()
                self._place_pending_bare_pods()
            if not self._wake.is_set():
                self._idle.set()

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self._requeuer.join(timeout=2)
        self._idle.set()


def install_cluster(emu: KubeEmulator, nodes: Iterable[NodeSpec], *, psa_level: str = "baseline",
                    psa_exempt: Iterable[str] = ("kube-system",), legacy_taint_text: bool = False,
                    require_ready: bool = True) -> Cluster:
    """Make `emu` a Talos-like cluster of `nodes`. Build the emulator with `nodes=()` so its default
    node does not linger (any Node already there is kept, and scheduled on like the others)."""
    scheduler = NodeFilterScheduler(emu.store, emu.registry, legacy_taint_text=legacy_taint_text)
    psa = PodSecurityAdmission(psa_level, exempt_namespaces=psa_exempt)
    cluster = Cluster(emu, psa=psa, scheduler=scheduler, require_ready=require_ready)
    emu.add_admission_hook(default_host_network_ports)  # defaulting runs before validation
    emu.add_admission_hook(psa)
    emu.store.listeners.append(cluster._on_event)
    for spec in nodes:
        cluster.add_node(spec)
    emu.set_scheduler(scheduler)
    return cluster
