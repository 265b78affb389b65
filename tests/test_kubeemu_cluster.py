"""kubeemu as a small Talos cluster (kubeemu.cluster, .placement, .podsecurity), through the official
Python client: nodes as Talos registers them, kube-scheduler's filters and words, Pod Security
admission's refusals (of a pod, and of a Deployment's pod), pod lifecycle hooks, a pre-bound socket.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from kubeemu import KubeEmulator
from kubeemu.cluster import CP_TAINT, Cluster, NodeSpec, PodOnNode, install_cluster
from kubeemu.podsecurity import evaluate

CP, WK = "cp-1", "wk-1"
NODES = [NodeSpec(CP, "192.0.2.10", "controlplane"), NodeSpec(WK, "192.0.2.11", "worker")]
PRIVILEGED = {"pod-security.kubernetes.io/enforce": "privileged"}
CP_TOLERATION = {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}
PINNED_NOT_TOLERATED = (
    "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated "
    "taint(s). no new claims to deallocate, preemption: 0/2 nodes are available: 2 Preemption is not helpful "
    "for scheduling.")


class Lab:
    def __init__(self, emu: KubeEmulator, cluster: Cluster, kubeconfig: Path) -> None:
        self.emu, self.cluster = emu, cluster
        api = config.new_client_from_config(config_file=str(kubeconfig))
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)

    def namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        self.core.create_namespace({"metadata": {"name": name, "labels": labels or {}}})

    def pods(self, ns: str) -> list[Any]:
        return self.core.list_namespaced_pod(ns).items

    def events(self, ns: str, reason: str) -> list[Any]:
        return [e for e in self.core.list_namespaced_event(ns).items if e.reason == reason]

    def wait(self, what: Callable[[], Any], timeout: float = 5.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            found = what()
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.02)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    with KubeEmulator(nodes=()) as emu:
        cluster = install_cluster(emu, NODES)
        try:
            yield Lab(emu, cluster, emu.write_kubeconfig(tmp_path / "kubeconfig"))
        finally:
            cluster.close()
    assert not emu.internal_errors, emu.internal_errors
    assert not cluster.hook_errors, cluster.hook_errors


def pod_spec(*, host_network: bool = True, ports: tuple[int, ...] = (80, 443), node: str | None = None,
             tolerate_cp: bool = False, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "hostNetwork": host_network,
        "containers": [{"name": "traefik", "image": "docker.io/traefik:v3.7.11",
                        "ports": [{"name": f"p{p}", "containerPort": p, "protocol": "TCP"} for p in ports]}],
        **extra,
    }
    if node:
        spec["nodeSelector"] = {"kubernetes.io/hostname": node}
    if tolerate_cp:
        spec["tolerations"] = [CP_TOLERATION]
    return spec


def deployment(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": spec}}}


# -- nodes ----------------------------------------------------------------------------------------


def test_nodes_are_registered_as_talos_does(lab: Lab) -> None:
    nodes = {n.metadata.name: n for n in lab.core.list_node().items}
    assert sorted(nodes) == [CP, WK]
    cp, wk = nodes[CP], nodes[WK]
    assert cp.metadata.labels["node-role.kubernetes.io/control-plane"] == ""
    assert cp.metadata.labels["kubernetes.io/hostname"] == CP
    assert [(t.key, t.effect) for t in cp.spec.taints] == [("node-role.kubernetes.io/control-plane", "NoSchedule")]
    assert "node-role.kubernetes.io/control-plane" not in wk.metadata.labels and not wk.spec.taints
    assert [(a.type, a.address) for a in wk.status.addresses] == [("InternalIP", "192.0.2.11"), ("Hostname", WK)]


# -- the scheduler --------------------------------------------------------------------------------


def test_pinned_to_the_control_plane_without_toleration_stays_pending(lab: Lab) -> None:
    lab.namespace("traefik", PRIVILEGED)
    lab.apps.create_namespaced_deployment("traefik", deployment("traefik", pod_spec(node=CP)))
    [pod] = lab.pods("traefik")
    assert pod.status.phase == "Pending" and pod.spec.node_name is None
    scheduled = next(c for c in pod.status.conditions if c.type == "PodScheduled")
    assert (scheduled.status, scheduled.reason, scheduled.message) == ("False", "Unschedulable", PINNED_NOT_TOLERATED)
    [event] = lab.events("traefik", "FailedScheduling")
    assert event.message == PINNED_NOT_TOLERATED and event.involved_object.name == pod.metadata.name
    dep = lab.apps.read_namespaced_deployment("traefik", "traefik")
    assert not dep.status.ready_replicas

    # the fix labup applies (wall 5): tolerate the control-plane taint
    lab.apps.patch_namespaced_deployment("traefik", "traefik", {"spec": {"template": {"spec": {
        "tolerations": [CP_TOLERATION]}}}})
    [pod] = lab.wait(lambda: [p for p in lab.pods("traefik") if p.status.phase == "Running"])
    assert pod.spec.node_name == CP and pod.status.host_ip == "192.0.2.10" == pod.status.pod_ip
    assert lab.apps.read_namespaced_deployment("traefik", "traefik").status.ready_replicas == 1


def test_unpinned_pod_without_toleration_lands_on_the_worker(lab: Lab) -> None:
    """Wall 5 in the making: nothing keeps Traefik off the worker while the VIP is on the control plane."""
    lab.namespace("traefik", PRIVILEGED)
    lab.apps.create_namespaced_deployment("traefik", deployment("traefik", pod_spec()))
    [pod] = lab.pods("traefik")
    assert pod.spec.node_name == WK and pod.status.phase == "Running"


def test_selector_and_taint_messages_each_alone(lab: Lab) -> None:
    lab.namespace("t", PRIVILEGED)
    lab.core.create_namespaced_pod("t", {"metadata": {"name": "nowhere"},
                                         "spec": pod_spec(nodeSelector={"disk": "ssd"}, tolerations=[CP_TOLERATION])})
    lab.cluster.taint(WK, {"key": "dedicated", "value": "db", "effect": "NoSchedule"})
    lab.apps.create_namespaced_deployment("t", deployment("tainted", pod_spec(ports=(8080,))))
    messages = {e.involved_object.name.rsplit("-", 2)[0] if e.involved_object.name != "nowhere" else "nowhere":
                e.message for e in lab.events("t", "FailedScheduling")}
    assert messages["tainted"] == ("0/2 nodes are available: 2 node(s) had untolerated taint(s). no new claims to "
                                   "deallocate, preemption: 0/2 nodes are available: 2 Preemption is not helpful "
                                   "for scheduling.")
    assert messages["nowhere"] == PINNED_NOT_TOLERATED.replace(
        "1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint(s)",
        "2 node(s) didn't match Pod's node affinity/selector")
    # a pod created directly (no controller): the scheduler's words are on its condition too
    nowhere = lab.core.read_namespaced_pod("nowhere", "t")
    assert nowhere.status.phase == "Pending" and nowhere.spec.node_name is None
    assert nowhere.status.conditions[0].message == messages["nowhere"]


def test_legacy_taint_wording_names_the_taint(tmp_path: Path) -> None:
    with KubeEmulator(nodes=()) as emu:
        cluster = install_cluster(emu, NODES, legacy_taint_text=True)
        try:
            emu.create("v1", "Namespace", {"metadata": {"name": "t", "labels": PRIVILEGED}})
            emu.create("apps/v1", "Deployment", {**deployment("x", pod_spec(node=CP)), "metadata": {
                "name": "x", "namespace": "t"}})
            [event] = [e for e in emu.list("v1", "Event", "t") if e["reason"] == "FailedScheduling"]
            assert event["message"].startswith(
                "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had "
                "untolerated taint {node-role.kubernetes.io/control-plane: }. ")
        finally:
            cluster.close()


def test_host_port_conflict_then_freed(lab: Lab) -> None:
    """Two hostNetwork pods cannot bind one port on one node (the deadlock of wall 3's cousin)."""
    lab.namespace("t", PRIVILEGED)
    lab.apps.create_namespaced_deployment("t", deployment("old-ingress", pod_spec(node=WK, ports=(80,))))
    lab.apps.create_namespaced_deployment("t", deployment("traefik", pod_spec(node=WK)))
    traefik = [p for p in lab.pods("t") if p.metadata.labels["app"] == "traefik"]
    assert traefik[0].status.phase == "Pending"
    [event] = [e for e in lab.events("t", "FailedScheduling") if e.involved_object.name == traefik[0].metadata.name]
    assert event.message == (
        "0/2 nodes are available: 1 node(s) didn't have free ports for the requested pod ports, 1 node(s) had "
        "untolerated taint(s). no new claims to deallocate, preemption: 0/2 nodes are available: "
        "1 No preemption victims found for incoming pod, 1 Preemption is not helpful for scheduling.")
    # hostPort was defaulted from containerPort, as the API server does for hostNetwork pods
    assert [p.host_port for p in traefik[0].spec.containers[0].ports] == [80, 443]

    lab.apps.delete_namespaced_deployment("old-ingress", "t")
    assert lab.cluster.settle()
    [pod] = lab.wait(lambda: [p for p in lab.pods("t") if p.status.phase == "Running"])
    assert pod.metadata.labels["app"] == "traefik" and pod.spec.node_name == WK


def test_cordoned_and_not_ready_nodes(lab: Lab) -> None:
    lab.namespace("t", PRIVILEGED)
    lab.core.patch_node(WK, {"spec": {"unschedulable": True}})
    lab.cluster.set_node_ready(CP, False)
    lab.apps.create_namespaced_deployment("t", deployment("x", pod_spec(tolerate_cp=True)))
    [event] = lab.events("t", "FailedScheduling")
    assert event.message.startswith("0/2 nodes are available: 1 node(s) had untolerated taint(s), "
                                    "1 node(s) were unschedulable. ")
    lab.cluster.set_node_ready(CP, True)
    assert lab.cluster.settle()
    [pod] = lab.wait(lambda: [p for p in lab.pods("t") if p.status.phase == "Running"])
    assert pod.spec.node_name == CP


# -- Pod Security admission -----------------------------------------------------------------------


def test_psa_refuses_a_host_network_pod_in_a_baseline_namespace(lab: Lab) -> None:
    lab.namespace("traefik")  # no label: the cluster default, baseline (Talos)
    with pytest.raises(ApiException) as exc:
        lab.core.create_namespaced_pod("traefik", {"metadata": {"name": "traefik-x"}, "spec": pod_spec()})
    assert exc.value.status == 403
    body = json.loads(exc.value.body)
    assert body["reason"] == "Forbidden"
    assert body["message"] == ('pods "traefik-x" is forbidden: violates PodSecurity "baseline:latest": host '
                               'namespaces (hostNetwork=true), hostPort (container "traefik" uses hostPorts 443, 80)')
    assert lab.pods("traefik") == []


def test_psa_refuses_the_deployments_pod_and_it_stays_unavailable(lab: Lab) -> None:
    """What helm sees: the Deployment is created, its pod never is; FailedCreate on the ReplicaSet."""
    lab.namespace("traefik", {"pod-security.kubernetes.io/enforce": "baseline"})
    spec = pod_spec(tolerate_cp=True, node=CP, volumes=[{"name": "acme", "hostPath": {"path": "/var/mnt/traefik"}}])
    lab.apps.create_namespaced_deployment("traefik", deployment("traefik", spec))
    assert lab.pods("traefik") == []
    [rs] = lab.apps.list_namespaced_replica_set("traefik").items
    events = lab.events("traefik", "FailedCreate")  # one per retry of the ReplicaSet controller
    assert events
    event = events[-1]
    assert event.involved_object.kind == "ReplicaSet" and event.involved_object.name == rs.metadata.name
    prefix = f'Error creating: pods "{rs.metadata.name}-'
    assert event.message.startswith(prefix)
    assert event.message.split('" is forbidden: ', 1)[1] == (
        'violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true), hostPort (container '
        '"traefik" uses hostPorts 443, 80), hostPath volumes (volume "acme")')
    dep = lab.apps.read_namespaced_deployment("traefik", "traefik")
    available = next(c for c in dep.status.conditions if c.type == "Available")
    assert available.status == "False" and not dep.status.ready_replicas

    # the fix (wall 4): that namespace, and only it, privileged; the ReplicaSet controller retries
    lab.core.patch_namespace("traefik", {"metadata": {"labels": PRIVILEGED}})
    assert lab.cluster.settle()
    [pod] = lab.wait(lambda: lab.pods("traefik"))
    assert pod.status.phase == "Running" and pod.spec.node_name == CP


def test_psa_version_label_exemptions_and_privileged(lab: Lab) -> None:
    lab.namespace("pinned", {"pod-security.kubernetes.io/enforce": "baseline",
                             "pod-security.kubernetes.io/enforce-version": "v1.30"})
    with pytest.raises(ApiException) as exc:
        lab.core.create_namespaced_pod("pinned", {"metadata": {"generateName": "web-"},
                                                  "spec": pod_spec(host_network=False, hostPID=True)})
    message = json.loads(exc.value.body)["message"]
    assert message.startswith('pods "web-') and message.endswith(
        '" is forbidden: violates PodSecurity "baseline:v1.30": host namespaces (hostPID=true)')
    # kube-system is exempt (Talos' admission configuration); privileged admits anything
    lab.core.create_namespaced_pod("kube-system", {"metadata": {"name": "a"}, "spec": pod_spec()})
    lab.namespace("priv", PRIVILEGED)
    lab.core.create_namespaced_pod("priv", {"metadata": {"name": "b"}, "spec": pod_spec(
        containers=[{"name": "c", "image": "x", "securityContext": {"privileged": True}}])})


def test_psa_restricted_wording() -> None:
    traefik = {"securityContext": {"runAsUser": 0, "runAsNonRoot": False},
               "containers": [{"name": "traefik", "image": "x", "securityContext": {
                   "allowPrivilegeEscalation": False,
                   "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}]}
    assert evaluate("restricted", traefik) == (
        "runAsNonRoot != true (pod must not set securityContext.runAsNonRoot=false), runAsUser=0 (pod must not "
        'set runAsUser=0), seccompProfile (pod or container "traefik" must set securityContext.seccompProfile.type '
        'to "RuntimeDefault" or "Localhost")')
    assert evaluate("baseline", traefik) == ""
    sloppy = {"containers": [{"name": "a", "image": "x", "securityContext": {"capabilities": {"add": ["NET_ADMIN"]},
                                                                             "privileged": True}}]}
    assert evaluate("baseline", sloppy) == (
        'privileged (container "a" must not set securityContext.privileged=true), non-default capabilities '
        '(container "a" must not include "NET_ADMIN" in securityContext.capabilities.add)')


# -- pod lifecycle hooks --------------------------------------------------------------------------


def test_hooks_follow_a_pod_from_running_to_gone(lab: Lab) -> None:
    started: list[PodOnNode] = []
    gone: list[PodOnNode] = []
    lab.cluster.on_pod_running(started.append)
    lab.cluster.on_pod_gone(gone.append)
    lab.namespace("traefik", PRIVILEGED)
    lab.apps.create_namespaced_deployment("traefik", deployment("traefik", pod_spec(node=CP, tolerate_cp=True)))
    [seen] = started
    assert (seen.namespace, seen.node, seen.ready, seen.host_network) == ("traefik", CP, True, True)
    assert gone == []
    # a new template: the old pod goes, a new one comes (the hook saw both)
    lab.apps.patch_namespaced_deployment("traefik", "traefik", {"spec": {"template": {"metadata": {
        "annotations": {"restartedAt": "now"}}}}})
    assert [p.name for p in gone] == [seen.name]
    assert len(started) == 2 and started[1].name != seen.name
    lab.apps.delete_namespaced_deployment("traefik", "traefik")
    assert [p.name for p in gone] == [seen.name, started[1].name]
    assert lab.cluster.running_pods() == []


def test_never_ready_pods_do_not_fire_the_running_hook(lab: Lab) -> None:
    started: list[PodOnNode] = []
    lab.cluster.on_pod_running(started.append)
    lab.namespace("t", PRIVILEGED)
    lab.emu.never_ready("t/broken")
    lab.apps.create_namespaced_deployment("t", deployment("broken", pod_spec()))
    [pod] = lab.pods("t")
    assert pod.status.phase == "Running" and started == []
    # its readiness probe starts passing: the hook fires, the Deployment counts it
    lab.cluster.set_pod_ready("t", pod.metadata.name)
    assert [p.name for p in started] == [pod.metadata.name]
    assert lab.apps.read_namespaced_deployment("broken", "t").status.ready_replicas == 1


def test_emulator_serves_on_a_socket_bound_by_the_caller(tmp_path: Path) -> None:
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    with KubeEmulator(listen_socket=sock) as emu:
        assert emu.port == port and emu.url == f"http://127.0.0.1:{port}"
        core = client.CoreV1Api(config.new_client_from_config(config_file=str(
            emu.write_kubeconfig(tmp_path / "kubeconfig"))))
        assert "default" in {n.metadata.name for n in core.list_namespace().items}
    assert sock.fileno() == -1  # closed with the emulator


def test_cp_taint_constant_is_what_labup_looks_for() -> None:
    from labup.traefik.diagnose import CP_TAINT as LABUP_CP_TAINT

    assert CP_TAINT == {"key": LABUP_CP_TAINT, "effect": "NoSchedule"}
