"""kubeemu against the official Python client and real helm 4.1.4 / 3.17.3, over real HTTP."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from kubeemu import KubeEmulator
from kubeemu.helmrelease import decode_release, release_secrets, set_latest_status
from kubeemu.helmrun import helm_binary, run_helm

CHART = Path(__file__).parent / "charts" / "mini"


def core_api(kubeconfig: Path) -> client.CoreV1Api:
    api_client = config.new_client_from_config(config_file=str(kubeconfig))
    return client.CoreV1Api(api_client)


def apps_api(kubeconfig: Path) -> client.AppsV1Api:
    return client.AppsV1Api(config.new_client_from_config(config_file=str(kubeconfig)))


# --- the official Python client -----------------------------------------------------------------
def test_python_client_namespace_create_read_patch_list(tmp_path: Path) -> None:
    with KubeEmulator(token="s3cret") as emu:
        kubeconfig = emu.write_kubeconfig(tmp_path / "kubeconfig")
        config.load_kube_config(config_file=str(kubeconfig))  # the way labup loads it
        v1 = client.CoreV1Api()
        v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="traefik", labels={"a": "b"})))
        ns = v1.read_namespace("traefik")
        assert ns.metadata.labels == {"a": "b"}
        assert ns.status.phase == "Active"
        assert ns.metadata.uid and ns.metadata.resource_version and ns.metadata.creation_timestamp

        v1.patch_namespace("traefik", {"metadata": {"labels": {
            "pod-security.kubernetes.io/enforce": "privileged"}}})
        labels = v1.read_namespace("traefik").metadata.labels
        assert labels == {"a": "b", "pod-security.kubernetes.io/enforce": "privileged"}

        names = {n.metadata.name for n in v1.list_namespace().items}
        assert {"default", "kube-system", "traefik"} <= names
        selected = v1.list_namespace(label_selector="pod-security.kubernetes.io/enforce=privileged")
        assert [n.metadata.name for n in selected.items] == ["traefik"]

        patches = emu.log.entries("PATCH", r"^/api/v1/namespaces/traefik$")
        assert len(patches) == 1 and patches[0].status == 200
        assert emu.internal_errors == []


def test_label_selector_forms(emu_kubeconfig: Path) -> None:
    v1 = core_api(emu_kubeconfig)
    for name, labels in {"x1": {"a": "b", "e": "x"}, "x2": {"a": "b", "c": "d"}, "x3": {"a": "z"}}.items():
        v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels)))

    def names(selector: str) -> list[str]:
        return sorted(n.metadata.name for n in v1.list_namespace(label_selector=selector).items)

    assert names("a=b") == ["x1", "x2"]
    assert names("a=b,c!=d") == ["x1"]
    assert names("e in (x,y)") == ["x1"]
    assert names("a notin (b),a") == ["x3"]
    assert names("a,!c") == ["x1", "x3"]
    assert names("a==b,e in (x)") == ["x1"]


def test_injected_500_then_success(kube_emulator: KubeEmulator, emu_kubeconfig: Path) -> None:
    v1 = core_api(emu_kubeconfig)
    kube_emulator.inject_fault("GET", r"^/api/v1/namespaces/default$", 500, count=1)
    with pytest.raises(ApiException) as exc:
        v1.read_namespace("default")
    assert exc.value.status == 500
    body = json.loads(exc.value.body)
    assert body["kind"] == "Status" and body["reason"] == "InternalError" and body["code"] == 500
    assert v1.read_namespace("default").metadata.name == "default"
    assert [e.status for e in kube_emulator.log.entries("GET", r"/namespaces/default$")] == [500, 200]


def test_403_surfaces_as_api_exception(kube_emulator: KubeEmulator, emu_kubeconfig: Path) -> None:
    kube_emulator.inject_fault("PATCH", r"/namespaces/", 403, message='namespaces "default" is forbidden')
    with pytest.raises(ApiException) as exc:
        core_api(emu_kubeconfig).patch_namespace("default", {"metadata": {"labels": {"x": "y"}}})
    assert exc.value.status == 403
    assert json.loads(exc.value.body)["reason"] == "Forbidden"


def test_wrong_token_is_401(tmp_path: Path) -> None:
    with KubeEmulator(token="right") as emu:
        v1 = core_api(emu.write_kubeconfig(tmp_path / "kc", token="wrong"))
        with pytest.raises(ApiException) as exc:
            v1.list_namespace()
        assert exc.value.status == 401
        assert core_api(emu.write_kubeconfig(tmp_path / "ok")).list_namespace().items


def test_not_found_and_conflict_status_bodies(emu_kubeconfig: Path) -> None:
    v1 = core_api(emu_kubeconfig)
    with pytest.raises(ApiException) as exc:
        v1.read_namespaced_config_map("nope", "default")
    assert exc.value.status == 404
    assert json.loads(exc.value.body)["message"] == 'configmaps "nope" not found'
    cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c"), data={"k": "v"})
    v1.create_namespaced_config_map("default", cm)
    with pytest.raises(ApiException) as exc:
        v1.create_namespaced_config_map("default", cm)
    assert exc.value.status == 409 and json.loads(exc.value.body)["reason"] == "AlreadyExists"
    stale = v1.read_namespaced_config_map("c", "default")
    v1.patch_namespaced_config_map("c", "default", {"data": {"k": "v2"}})
    with pytest.raises(ApiException) as exc:
        v1.replace_namespaced_config_map("c", "default", stale)
    assert exc.value.status == 409 and json.loads(exc.value.body)["reason"] == "Conflict"
    with pytest.raises(ApiException) as exc:
        v1.create_namespaced_config_map("missing-ns", cm)
    assert exc.value.status == 404


def test_json_patch_and_delete(emu_kubeconfig: Path) -> None:
    v1 = core_api(emu_kubeconfig)
    v1.create_namespaced_config_map("default", client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="c"), data={"a": "1", "b": "2"}))
    v1.patch_namespaced_config_map("c", "default", [
        {"op": "replace", "path": "/data/a", "value": "10"}, {"op": "remove", "path": "/data/b"}])
    assert v1.read_namespaced_config_map("c", "default").data == {"a": "10"}
    v1.delete_namespaced_config_map("c", "default", propagation_policy="Foreground")
    assert v1.list_namespaced_config_map("default").items == []


def test_deployment_controller_pods_and_field_selectors(
        kube_emulator: KubeEmulator, emu_kubeconfig: Path) -> None:
    apps, v1 = apps_api(emu_kubeconfig), core_api(emu_kubeconfig)
    labels = {"app": "web"}
    dep = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1DeploymentSpec(
            replicas=2, selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="img:1")]))))
    apps.create_namespaced_deployment("default", dep)
    status = apps.read_namespaced_deployment("web", "default").status
    assert (status.observed_generation, status.ready_replicas, status.available_replicas) == (1, 2, 2)
    conds = {c.type: (c.status, c.reason) for c in status.conditions}
    assert conds == {"Available": ("True", "MinimumReplicasAvailable"),
                     "Progressing": ("True", "NewReplicaSetAvailable")}
    rs = apps.list_namespaced_replica_set("default", label_selector="app=web").items
    assert len(rs) == 1 and rs[0].metadata.owner_references[0].kind == "Deployment"
    pods = v1.list_pod_for_all_namespaces(field_selector="spec.nodeName=emu-node-1,status.phase=Running")
    assert len(pods.items) == 2
    assert v1.list_namespaced_pod("default", field_selector="status.phase=Pending").items == []
    one = pods.items[0].metadata.name
    assert [p.metadata.name for p in v1.list_namespaced_pod(
        "default", field_selector=f"metadata.name={one}").items] == [one]

    kube_emulator.never_ready("web", image="img:2")
    apps.patch_namespaced_deployment("web", "default", {"spec": {"template": {"spec": {
        "containers": [{"name": "c", "image": "img:2"}]}}}})
    status = apps.read_namespaced_deployment("web", "default").status
    assert (status.observed_generation, status.ready_replicas or 0) == (2, 0)

    apps.delete_namespaced_deployment("web", "default")
    assert v1.list_namespaced_pod("default").items == []  # garbage-collected with their ReplicaSets


def test_watch_streams_events(emu_kubeconfig: Path) -> None:
    v1 = core_api(emu_kubeconfig)
    seen: list[tuple[str, str]] = []

    def writer() -> None:
        time.sleep(0.3)
        v1.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="w")))
        v1.patch_namespaced_config_map("w", "default", {"data": {"k": "v"}})
        v1.delete_namespaced_config_map("w", "default")

    rv = v1.list_namespaced_config_map("default").metadata.resource_version
    thread = threading.Thread(target=writer)
    thread.start()
    w = watch.Watch()
    for event in w.stream(v1.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=5):
        seen.append((event["type"], event["object"].metadata.name))
        if event["type"] == "DELETED":
            w.stop()
    thread.join()
    assert seen == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]


# --- real helm ----------------------------------------------------------------------------------
HELM_PARAMS = [pytest.param("4.1.4", id="helm4"), pytest.param("3.17.3", id="helm3")]


class Helm:
    """Real helm pointed at the emulator, with the right --wait/rollback flags for its major."""

    def __init__(self, version: str, kubeconfig: Path, env: dict[str, str]) -> None:
        self.binary = helm_binary(version)
        self.major = int(version.split(".")[0])
        self.kubeconfig = kubeconfig
        self.env = env

    def run(self, *args: str) -> tuple[int, str]:
        proc = run_helm(self.binary, [*args, "--kubeconfig", str(self.kubeconfig)], self.env)
        return proc.returncode, proc.stdout + proc.stderr

    def ok(self, *args: str) -> str:
        code, out = self.run(*args)
        assert code == 0, out
        return out

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "-o", "json"))

    def upgrade(self, release: str, namespace: str, *extra: str, timeout: str = "20s") -> tuple[int, str]:
        safety = (["--rollback-on-failure", "--wait=watcher"] if self.major >= 4 else ["--atomic", "--wait"])
        return self.run("upgrade", "--install", release, str(CHART), "-n", namespace, "--create-namespace",
                        *safety, "--timeout", timeout, *extra)


@pytest.fixture
def make_helm(emu_kubeconfig: Path, helm_env: dict[str, str]) -> Any:
    return lambda version: Helm(version, emu_kubeconfig, helm_env)


@pytest.mark.helm
@pytest.mark.parametrize("version", HELM_PARAMS)
def test_helm_full_lifecycle(version: str, make_helm: Any, kube_emulator: KubeEmulator) -> None:
    helm = make_helm(version)
    code, out = helm.upgrade("web", "apps")
    assert code == 0, out
    assert kube_emulator.get("apps/v1", "Deployment", "web-web", "apps")["status"]["readyReplicas"] == 1
    [listed] = helm.json("list", "-n", "apps")
    assert (listed["name"], listed["status"], listed["revision"]) == ("web", "deployed", "1")
    assert helm.json("status", "web", "-n", "apps")["info"]["status"] == "deployed"

    code, out = helm.upgrade("web", "apps", "--set", "message=bye", "--set", "image=registry.example/mini:2")
    assert code == 0, out
    assert kube_emulator.get("v1", "ConfigMap", "web-config", "apps")["data"] == {"message": "bye"}
    # helm 3 sends a strategic-merge patch with only the changed container fields: ports must survive
    [container] = kube_emulator.get("apps/v1", "Deployment", "web-web", "apps")["spec"]["template"]["spec"][
        "containers"]
    assert (container["image"], container["ports"]) == ("registry.example/mini:2", [{"containerPort": 8080}])
    assert helm.json("get", "values", "web", "-n", "apps") == {"message": "bye", "image": "registry.example/mini:2"}

    helm.ok("rollback", "web", "1", "-n", "apps", "--wait", "--timeout", "20s")
    assert kube_emulator.get("v1", "ConfigMap", "web-config", "apps")["data"] == {"message": "hello"}
    history = helm.json("history", "web", "-n", "apps")
    assert [(h["revision"], h["status"]) for h in history] == [
        (1, "superseded"), (2, "superseded"), (3, "deployed")]

    helm.ok("uninstall", "web", "-n", "apps")
    assert helm.json("list", "-n", "apps") == []
    assert kube_emulator.find("apps/v1", "Deployment", "web-web", "apps") is None
    assert kube_emulator.list("v1", "Pod", "apps") == []
    assert release_secrets(kube_emulator, "apps", "web") == []


@pytest.mark.helm
@pytest.mark.parametrize("version", HELM_PARAMS)
def test_helm_rolls_back_an_upgrade_that_never_gets_ready(
        version: str, make_helm: Any, kube_emulator: KubeEmulator) -> None:
    helm = make_helm(version)
    assert helm.upgrade("web", "apps")[0] == 0
    kube_emulator.never_ready("web-web", image="registry.example/mini:broken")
    code, out = helm.upgrade("web", "apps", "--set", "image=registry.example/mini:broken", timeout="3s")
    assert code != 0
    # helm 3: "...has been rolled back due to atomic being set"; helm 4: "...due to rollback-on-failure
    # being set: resource Deployment/apps/web-web not ready. status: InProgress, message: Available: 0/1"
    assert "has been rolled back" in out, out
    history = helm.json("history", "web", "-n", "apps")
    assert [(h["revision"], h["status"]) for h in history] == [
        (1, "superseded"), (2, "failed"), (3, "deployed")]
    dep = kube_emulator.get("apps/v1", "Deployment", "web-web", "apps")
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/mini:1.0.0"
    assert dep["status"]["readyReplicas"] == 1


@pytest.mark.helm
@pytest.mark.parametrize("version", HELM_PARAMS)
def test_helm_pending_upgrade_blocks_the_next_upgrade(
        version: str, make_helm: Any, kube_emulator: KubeEmulator) -> None:
    helm = make_helm(version)
    assert helm.upgrade("web", "apps")[0] == 0
    release = set_latest_status(kube_emulator, "apps", "web", "pending-upgrade")
    assert release["version"] == 1
    assert helm.json("status", "web", "-n", "apps")["info"]["status"] == "pending-upgrade"
    writes_before = len(kube_emulator.log.entries(writes_only=True))
    code, out = helm.upgrade("web", "apps", "--set", "message=again")
    assert code != 0
    assert "another operation (install/upgrade/rollback) is in progress" in out
    assert len(kube_emulator.log.entries(writes_only=True)) == writes_before  # refused before writing
    assert decode_release(release_secrets(kube_emulator, "apps", "web")[-1])["info"]["status"] == (
        "pending-upgrade")


def _raw(emu: KubeEmulator, method: str, path: str, body: Any = None,
         content_type: str = "application/json") -> tuple[int, Any]:
    import urllib.error
    import urllib.request

    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(emu.url + path, data=data, method=method, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_discovery_and_server_side_apply(kube_emulator: KubeEmulator) -> None:
    assert _raw(kube_emulator, "GET", "/api/v1")[1]["groupVersion"] == "v1"
    assert _raw(kube_emulator, "GET", "/apis/apps/v1")[1]["groupVersion"] == "apps/v1"
    assert _raw(kube_emulator, "GET", "/version/")[1]["gitVersion"].startswith("v1.")
    path = "/api/v1/namespaces/default/configmaps/ssa?fieldManager=helm"
    apply = "application/apply-patch+yaml"
    code, obj = _raw(kube_emulator, "PATCH", path, {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"a": "1", "b": "2"}}, apply)
    assert code == 201 and obj["data"] == {"a": "1", "b": "2"}
    # A field the manager stops applying is removed; one set by someone else stays.
    _raw(kube_emulator, "PATCH", "/api/v1/namespaces/default/configmaps/ssa", {"data": {"c": "3"}},
         "application/merge-patch+json")
    code, obj = _raw(kube_emulator, "PATCH", path, {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"a": "1"}}, apply)
    assert code == 200 and obj["data"] == {"a": "1", "c": "3"}
    assert _raw(kube_emulator, "GET", "/apis/example.com/v1/widgets")[0] == 404


@pytest.mark.helm
@pytest.mark.parametrize("version", HELM_PARAMS)
def test_helm_chart_with_crds_and_cluster_scoped_kinds(
        version: str, make_helm: Any, kube_emulator: KubeEmulator, tmp_path: Path) -> None:
    chart = tmp_path / "crdchart"
    (chart / "crds").mkdir(parents=True)
    (chart / "templates").mkdir()
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: crdchart\nversion: 0.1.0\n")
    (chart / "crds" / "widgets.yaml").write_text(json.dumps({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                     "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}))
    (chart / "templates" / "all.yaml").write_text(
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: 2}\n---\n"
        "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: emu}\n"
        "spec: {controller: traefik.io/ingress-controller}\n---\n"
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: emu}\nrules: []\n")
    helm = make_helm(version)
    safety = ["--rollback-on-failure", "--wait=watcher"] if helm.major >= 4 else ["--atomic", "--wait"]
    helm.ok("upgrade", "--install", "c", str(chart), "-n", "crd", "--create-namespace", *safety,
            "--timeout", "20s")
    assert kube_emulator.get("example.com/v1", "Widget", "w", "crd")["spec"] == {"size": 2}
    assert kube_emulator.find("networking.k8s.io/v1", "IngressClass", "emu") is not None
    helm.ok("uninstall", "c", "-n", "crd")
    assert kube_emulator.find("rbac.authorization.k8s.io/v1", "ClusterRole", "emu") is None


def test_admission_and_scheduler_hooks(kube_emulator: KubeEmulator, emu_kubeconfig: Path) -> None:
    """The extension points a Pod Security admission and a taint-aware scheduler will plug into."""
    from kubeemu import AdmissionRequest, ApiError

    def deny_host_network(req: AdmissionRequest) -> None:
        if req.rt.kind == "Pod" and req.operation == "CREATE" and req.obj["spec"].get("hostNetwork"):
            raise ApiError(403, f'pods "{req.obj["metadata"]["name"]}" is forbidden: violates PodSecurity '
                                '"baseline:latest": host namespaces (hostNetwork=true)')

    kube_emulator.add_admission_hook(deny_host_network)
    apps, v1 = apps_api(emu_kubeconfig), core_api(emu_kubeconfig)

    def deployment(name: str, host_network: bool) -> client.V1Deployment:
        labels = {"app": name}
        return client.V1Deployment(metadata=client.V1ObjectMeta(name=name), spec=client.V1DeploymentSpec(
            selector=client.V1LabelSelector(match_labels=labels), template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels), spec=client.V1PodSpec(
                    host_network=host_network, containers=[client.V1Container(name="c", image="i")]))))

    apps.create_namespaced_deployment("default", deployment("hostnet", True))
    assert not apps.read_namespaced_deployment("hostnet", "default").status.ready_replicas
    reasons = [(e.reason, e.message) for e in v1.list_namespaced_event("default").items]
    assert any(r == "FailedCreate" and "violates PodSecurity" in m for r, m in reasons), reasons

    kube_emulator.set_scheduler(lambda pod, nodes: None)  # nothing fits
    apps.create_namespaced_deployment("default", deployment("pending", False))
    [pod] = v1.list_namespaced_pod("default", label_selector="app=pending").items
    assert (pod.status.phase, pod.spec.node_name) == ("Pending", None)
    kube_emulator.set_scheduler(lambda pod, nodes: nodes[0]["metadata"]["name"])  # re-placed on resync
    [pod] = v1.list_namespaced_pod("default", label_selector="app=pending").items
    assert (pod.status.phase, pod.spec.node_name) == ("Running", "emu-node-1")
