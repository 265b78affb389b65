"""Just enough of kube-controller-manager for helm's --wait: run inline after every committed write.

Deployment -> ReplicaSet (pod-template-hash, controller ownerReference: helm 3 looks it up) -> Pods
placed by the scheduler hook and passed through admission; statuses that both helm 3's ready checker
and kstatus (helm 4 --wait=watcher) read as ready. Also: DaemonSets, namespaces (phase, deletion of
their content), CRDs (registration + Established), and Deployments a test wants to stay unready.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import threading
import uuid
from typing import Any

from .admission import Admission
from .errors import ApiError
from .resources import Registry, ResourceType
from .scheduling import Scheduler, first_ready_node
from .store import Store, now

Obj = dict[str, Any]


def _hash(template: Obj) -> str:
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


def _owner_ref(owner: Obj) -> Obj:
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def _owned_by(obj: Obj, owner_uid: str) -> bool:
    return any(r.get("uid") == owner_uid and r.get("controller")
               for r in obj["metadata"].get("ownerReferences") or [])


def _cond(ctype: str, status: bool, reason: str, message: str = "") -> Obj:
    return {"type": ctype, "status": "True" if status else "False", "reason": reason, "message": message,
            "lastUpdateTime": now(), "lastTransitionTime": now()}


def _same_conditions(a: list[Obj], b: list[Obj]) -> bool:
    def strip(cs: list[Obj]) -> list[tuple[Any, ...]]:
        return [(c.get("type"), c.get("status"), c.get("reason"), c.get("message")) for c in cs]
    return strip(a) == strip(b)


class Controllers:
    def __init__(self, store: Store, registry: Registry, admission: Admission) -> None:
        self.store = store
        self.registry = registry
        self.admission = admission
        self.scheduler: Scheduler = first_ready_node
        # (workload "name" or "namespace/name", image or None): pods of that workload (running that
        # image) start but never become ready, like a broken release would.
        self.never_ready: set[tuple[str, str | None]] = set()
        self._lock = threading.RLock()  # reconciles nest (a status write re-triggers them)
        self._pod_seq = 0

    def _rt(self, gv: str, kind: str) -> ResourceType:
        rt = self.registry.by_kind(gv, kind)
        assert rt is not None, kind
        return rt

    # --- dispatch ------------------------------------------------------------------------------
    def on_event(self, etype: str, rt: ResourceType, obj: Obj) -> None:
        with self._lock:
            handler = {
                ("apps", "Deployment"): self._deployment,
                ("apps", "DaemonSet"): self._daemonset,
                ("", "Namespace"): self._namespace,
                ("apiextensions.k8s.io", "CustomResourceDefinition"): self._crd,
                ("", "Node"): self._node,
            }.get((rt.group, rt.kind))
            if handler is not None:
                handler(etype, obj)

    def resync(self) -> None:
        """Reconcile every workload again (after a knob or a hook changed)."""
        with self._lock:
            for kind in ("Deployment", "DaemonSet"):
                rt = self._rt("apps/v1", kind)
                for obj in self.store.list(rt)[0]:
                    self.on_event("MODIFIED", rt, obj)

    # --- pods ----------------------------------------------------------------------------------
    def _is_stuck(self, owner: Obj, template: Obj) -> bool:
        meta = owner["metadata"]
        names = {meta["name"], f"{meta.get('namespace')}/{meta['name']}"}
        images = {c.get("image") for c in (template.get("spec") or {}).get("containers") or []}
        return any(name in names and (image is None or image in images) for name, image in self.never_ready)

    def _unschedulable_message(self, pod: Obj, nodes: list[Obj]) -> str:
        """What the scheduler says of a pod it could not place. A scheduler object may explain itself
        with an `explain(pod, nodes)` method (kubeemu.placement does, in kube-scheduler's words)."""
        explain = getattr(self.scheduler, "explain", None)
        return str(explain(pod, nodes)) if callable(explain) else f"0/{len(nodes)} nodes are available"

    def _pod_status(self, pod: Obj, node: Obj | None, ready: bool, unschedulable: str = "") -> Obj:
        if node is None:
            message = unschedulable or f"0/{len(self._ready_nodes())} nodes are available"
            return {"phase": "Pending", "conditions": [_cond("PodScheduled", False, "Unschedulable", message)]}
        addrs = (node.get("status") or {}).get("addresses") or []
        host_ip = next((a["address"] for a in addrs if a.get("type") == "InternalIP"), "")
        self._pod_seq += 1
        pod_ip = host_ip if pod["spec"].get("hostNetwork") else f"10.244.0.{self._pod_seq % 250 + 1}"
        containers = pod["spec"].get("containers") or []
        return {
            "phase": "Running",
            "hostIP": host_ip, "podIP": pod_ip, "startTime": now(),
            "conditions": [_cond("PodScheduled", True, ""), _cond("Initialized", True, ""),
                           _cond("ContainersReady", ready, "" if ready else "ContainersNotReady"),
                           _cond("Ready", ready, "" if ready else "ContainersNotReady")],
            "containerStatuses": [
                {"name": c.get("name", ""), "image": c.get("image", ""), "imageID": "",
                 "containerID": f"emu://{uuid.uuid4().hex[:12]}", "ready": ready, "started": True,
                 "restartCount": 0, "state": {"running": {"startedAt": now()}}}
                for c in containers
            ],
        }

    def _create_pod(self, owner: Obj, template: Obj, labels: dict[str, str], nodes: list[Obj],
                    stuck: bool) -> Obj | None:
        """Admission, then placement, then the pod. Returns None (and records why) when denied."""
        ns = owner["metadata"]["namespace"]
        tmeta = template.get("metadata") or {}
        pod: Obj = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{owner['metadata']['name']}-{uuid.uuid4().hex[:5]}", "namespace": ns,
                         "labels": {**(tmeta.get("labels") or {}), **labels},
                         "annotations": dict(tmeta.get("annotations") or {}),
                         "ownerReferences": [_owner_ref(owner)]},
            "spec": copy.deepcopy(template.get("spec") or {}),
        }
        pod_rt = self._rt("v1", "Pod")
        try:
            pod = self.admission.admit("CREATE", pod_rt, ns, pod)
        except ApiError as exc:
            self._record_event(owner, "FailedCreate", f"Error creating: {exc.message}")
            return None
        node_name = self.scheduler(pod, nodes)
        node = next((n for n in nodes if n["metadata"]["name"] == node_name), None)
        unschedulable = ""
        if node is not None:
            pod["spec"]["nodeName"] = node_name
        else:
            unschedulable = self._unschedulable_message(pod, nodes)
            self._record_event(pod, "FailedScheduling", unschedulable)
        pod["status"] = self._pod_status(pod, node, ready=not stuck, unschedulable=unschedulable)
        return self.store.create(pod_rt, ns, pod)

    def _record_event(self, about: Obj, reason: str, message: str) -> None:
        ns = about["metadata"].get("namespace") or "default"
        event = {
            "metadata": {"name": f"{about['metadata']['name']}.{uuid.uuid4().hex[:8]}", "namespace": ns},
            "involvedObject": {"apiVersion": about.get("apiVersion"), "kind": about.get("kind"),
                               "name": about["metadata"]["name"], "namespace": ns,
                               "uid": about["metadata"].get("uid")},
            "reason": reason, "message": message, "type": "Warning", "count": 1,
            "firstTimestamp": now(), "lastTimestamp": now(), "source": {"component": "kubeemu"},
        }
        with contextlib.suppress(ApiError):  # the namespace may be gone
            self.store.create(self._rt("v1", "Event"), ns, event)

    def _owned_pods(self, owner: Obj) -> list[Obj]:
        uid = owner["metadata"]["uid"]
        pods, _ = self.store.list(self._rt("v1", "Pod"), owner["metadata"]["namespace"],
                                  lambda p: _owned_by(p, uid))
        return pods

    def _ready_nodes(self) -> list[Obj]:
        return self.store.list(self._rt("v1", "Node"))[0]

    @staticmethod
    def _pod_ready(pod: Obj) -> bool:
        conds = (pod.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)

    def _write_status(self, rt: ResourceType, obj: Obj, status: Obj) -> None:
        if obj.get("status") == status:
            return
        fresh = self.store.find(rt, obj["metadata"].get("namespace"), obj["metadata"]["name"])
        if fresh is None or fresh.get("status") == status:
            return
        fresh["status"] = status
        self.store.update(rt, fresh["metadata"].get("namespace"), fresh["metadata"]["name"], fresh,
                          subresource="status")

    # --- Deployment -> ReplicaSet -> Pods ------------------------------------------------------
    def _deployment(self, etype: str, dep: Obj) -> None:
        if etype == "DELETED":
            return  # the store's garbage collector removes ReplicaSets and Pods
        ns, name = dep["metadata"]["namespace"], dep["metadata"]["name"]
        spec = dep.get("spec") or {}
        template = spec.get("template") or {}
        desired = int(spec.get("replicas", 1))
        rs_rt = self._rt("apps/v1", "ReplicaSet")
        pod_rt = self._rt("v1", "Pod")
        pth = _hash(template)
        rs_name = f"{name}-{pth}"
        uid = dep["metadata"]["uid"]
        owned, _ = self.store.list(rs_rt, ns, lambda r: _owned_by(r, uid))
        # Old ReplicaSets go to zero at once (no surge): enough for status, simpler than a rollout.
        for old in owned:
            if old["metadata"]["name"] != rs_name and (old["spec"].get("replicas") or 0) != 0:
                old["spec"]["replicas"] = 0
                self.store.update(rs_rt, ns, old["metadata"]["name"], old)
                for pod in self._owned_pods(old):
                    self.store.delete(pod_rt, ns, pod["metadata"]["name"])
                self._write_status(rs_rt, self.store.get(rs_rt, ns, old["metadata"]["name"]),
                                   {"replicas": 0, "observedGeneration": old["metadata"].get("generation", 1)})
        selector = copy.deepcopy(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})["pod-template-hash"] = pth
        rs_template = copy.deepcopy(template)
        rs_template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = pth
        rs = self.store.find(rs_rt, ns, rs_name)
        rs_spec = {"replicas": desired, "selector": selector, "template": rs_template,
                   "minReadySeconds": spec.get("minReadySeconds", 0)}
        if rs is None:
            rs = self.store.create(rs_rt, ns, {
                "metadata": {"name": rs_name, "namespace": ns,
                             "labels": dict(rs_template["metadata"]["labels"]),
                             "annotations": {"deployment.kubernetes.io/revision": str(len(owned) + 1)},
                             "ownerReferences": [_owner_ref(dep)]},
                "spec": rs_spec,
            })
        elif rs["spec"] != rs_spec:
            rs["spec"] = rs_spec
            rs = self.store.update(rs_rt, ns, rs_name, rs)
        ready = self._sync_pods(rs, rs_template, desired, {"pod-template-hash": pth}, self._is_stuck(dep, template))
        pods = self._owned_pods(rs)
        self._write_status(rs_rt, rs, {
            "replicas": len(pods), "fullyLabeledReplicas": len(pods), "readyReplicas": ready,
            "availableReplicas": ready, "observedGeneration": rs["metadata"].get("generation", 1)})
        self._write_status(self._rt("apps/v1", "Deployment"), dep,
                           self._deployment_status(dep, desired, len(pods), ready))

    def _sync_pods(self, owner: Obj, template: Obj, desired: int, labels: dict[str, str],
                   stuck: bool) -> int:
        """Bring the owner's pod count to `desired`; retry placement of Pending pods. Returns #ready."""
        pod_rt = self._rt("v1", "Pod")
        ns = owner["metadata"]["namespace"]
        pods = self._owned_pods(owner)
        nodes = self._ready_nodes()
        for extra in pods[desired:]:
            self.store.delete(pod_rt, ns, extra["metadata"]["name"])
        pods = pods[:desired]
        for pod in pods:
            if not pod["spec"].get("nodeName"):
                node_name = self.scheduler(pod, nodes)
                node = next((n for n in nodes if n["metadata"]["name"] == node_name), None)
                if node is not None:  # the binding, then the kubelet's status report
                    pod["spec"]["nodeName"] = node_name
                    bound = self.store.update(pod_rt, ns, pod["metadata"]["name"], pod)
                    bound["status"] = self._pod_status(bound, node, ready=not stuck)
                    self.store.update(pod_rt, ns, pod["metadata"]["name"], bound, subresource="status")
        for _ in range(desired - len(pods)):
            if self._create_pod(owner, template, labels, nodes, stuck) is None:
                break
        return sum(1 for p in self._owned_pods(owner) if self._pod_ready(p))

    @staticmethod
    def _deployment_status(dep: Obj, desired: int, pods: int, ready: int) -> Obj:
        complete = ready >= desired and pods == desired
        old = dep.get("status") or {}
        conditions = [
            _cond("Available", ready >= desired, "MinimumReplicasAvailable" if ready >= desired
                  else "MinimumReplicasUnavailable",
                  "Deployment has minimum availability." if ready >= desired
                  else "Deployment does not have minimum availability."),
            _cond("Progressing", True, "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
                  f'ReplicaSet "{dep["metadata"]["name"]}" has successfully progressed.' if complete
                  else f'ReplicaSet "{dep["metadata"]["name"]}" is progressing.'),
        ]
        if _same_conditions(old.get("conditions") or [], conditions):
            conditions = old["conditions"]  # keep timestamps: no spurious MODIFIED events
        status: Obj = {"observedGeneration": dep["metadata"].get("generation", 1), "replicas": pods,
                       "updatedReplicas": pods, "readyReplicas": ready, "availableReplicas": ready,
                       "conditions": conditions}
        if pods - ready:
            status["unavailableReplicas"] = pods - ready
        return status

    # --- DaemonSet: one pod per node the scheduler accepts -------------------------------------
    def _daemonset(self, etype: str, ds: Obj) -> None:
        if etype == "DELETED":
            return
        ns = ds["metadata"]["namespace"]
        template = (ds.get("spec") or {}).get("template") or {}
        rev = _hash(template)
        pod_rt = self._rt("v1", "Pod")
        stuck = self._is_stuck(ds, template)
        pods = self._owned_pods(ds)
        for pod in pods:
            if pod["metadata"].get("labels", {}).get("controller-revision-hash") != rev:
                self.store.delete(pod_rt, ns, pod["metadata"]["name"])
        nodes = self._ready_nodes()
        placed = {p["spec"].get("nodeName") for p in self._owned_pods(ds)}
        desired = 0
        for node in nodes:
            pinned = copy.deepcopy(template)
            probe: Obj = {"metadata": {}, "spec": {**(pinned.get("spec") or {})}}
            if self.scheduler(probe, [node]) != node["metadata"]["name"]:
                continue
            desired += 1
            if node["metadata"]["name"] not in placed:
                pinned.setdefault("spec", {})["nodeName"] = node["metadata"]["name"]
                self._create_pod(ds, pinned, {"controller-revision-hash": rev}, [node], stuck)
        pods = self._owned_pods(ds)
        ready = sum(1 for p in pods if self._pod_ready(p))
        self._write_status(self._rt("apps/v1", "DaemonSet"), ds, {
            "observedGeneration": ds["metadata"].get("generation", 1),
            "desiredNumberScheduled": desired, "currentNumberScheduled": len(pods),
            "updatedNumberScheduled": len(pods), "numberReady": ready, "numberAvailable": ready,
            "numberMisscheduled": 0, **({"numberUnavailable": desired - ready} if desired - ready else {}),
        })

    # --- Namespaces, Nodes, CRDs ---------------------------------------------------------------
    def _namespace(self, etype: str, ns: Obj) -> None:
        name = ns["metadata"]["name"]
        if etype == "DELETED":
            for rt, obj_name in self.store.objects_in(name):
                with contextlib.suppress(ApiError):  # already collected with its owner
                    self.store.delete(rt, name, obj_name)
            return
        self._write_status(self._rt("v1", "Namespace"), ns, {"phase": "Active"})

    def _node(self, etype: str, node: Obj) -> None:
        self.resync()  # pending pods may fit now

    def _crd(self, etype: str, crd: Obj) -> None:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        group = spec.get("group", "")
        if etype == "DELETED":
            for v in spec.get("versions") or []:
                rt = self.registry.lookup(group, v.get("name", ""), names.get("plural", ""))
                if rt is not None:
                    for obj in self.store.list(rt)[0]:
                        with contextlib.suppress(ApiError):
                            self.store.delete(rt, obj["metadata"].get("namespace"), obj["metadata"]["name"])
            self.registry.unregister(group, names.get("plural", ""))
            return
        versions = sorted(spec.get("versions") or [], key=lambda v: not v.get("storage"))
        for v in versions:
            if v.get("served", True):
                self.registry.register(ResourceType(
                    group, v["name"], names.get("kind", ""), names.get("plural", ""),
                    spec.get("scope", "Namespaced") == "Namespaced", tuple(names.get("shortNames") or ()),
                    has_status="status" in (v.get("subresources") or {}),
                    categories=tuple(names.get("categories") or ()),
                ))
        old = crd.get("status") or {}
        conditions = [_cond("NamesAccepted", True, "NoConflicts", "no conflicts found"),
                      _cond("Established", True, "InitialNamesAccepted", "the initial names have been accepted")]
        if _same_conditions(old.get("conditions") or [], conditions):
            conditions = old["conditions"]
        self._write_status(self._rt("apiextensions.k8s.io/v1", "CustomResourceDefinition"), crd, {
            "acceptedNames": names, "conditions": conditions,
            "storedVersions": [v["name"] for v in versions if v.get("storage")]})
