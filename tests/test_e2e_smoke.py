"""The simulated lab itself (tests/e2e), before any end-to-end test relies on it: the VIP mirror
follows Talos' election, the pod mirror serves where Kubernetes put the pod, the real labup runs in
the client namespace against all of it, and everything is gone afterwards.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from conftest import REPO
from e2e import TWO_CP_NODES, SimLab
from e2e.counters import helm_verb, is_helm_write
from netlab import list_netns
from netlab.probe import http_get, tcp_connect, tls_get

pytestmark = pytest.mark.root


PRIVILEGED = {f"pod-security.kubernetes.io/{m}": "privileged" for m in ("enforce", "audit", "warn")}


# what the chart renders for a resolver named le on websecure (its _podtemplate.tpl)
ACME_ARGS = ["--certificatesresolvers.le.acme.email=admin@tazlab.example",
             "--certificatesresolvers.le.acme.storage=/data/acme.json",
             "--entryPoints.websecure.http.tls=true", "--entryPoints.websecure.http.tls.certResolver=le"]


def host_network_pod(name: str, node: str, args: list[str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name},
            "spec": {"hostNetwork": True, "nodeSelector": {"kubernetes.io/hostname": node},
                     "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists",
                                      "effect": "NoSchedule"}],
                     "containers": [{"name": "traefik", "image": "docker.io/traefik:v3.7.11", "args": args or [],
                                     "ports": [{"containerPort": 80}, {"containerPort": 443}]}]}}


def ingress(host: str) -> dict[str, Any]:
    backend = {"service": {"name": "whoami", "port": {"number": 80}}}
    return {"metadata": {"name": "whoami"},
            "spec": {"rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                                                                   "backend": backend}]}}]}}


def test_vip_mirror_follows_the_talos_election(simlab: Callable[..., SimLab]) -> None:
    lab = simlab(nodes=TWO_CP_NODES)
    cp1, cp2 = lab.node("cp-1"), lab.node("cp-2")
    assert lab.sim.holder() is None and lab.vip_mirror.holder is None
    assert lab.arp_vip(timeout=1.5) is None  # no VIP configured: nobody answers

    lab.configure_vip_in_talos(cp1.address, cp2.address)
    assert lab.sim.holder() == cp1.address
    assert lab.vip_mirror.wait_for(cp1.netns)
    assert lab.arp_vip() == cp1.mac

    lab.sim.set_holder(cp2.address)  # a failover
    assert lab.vip_mirror.wait_for(cp2.netns)
    assert lab.arp_vip() == cp2.mac
    assert lab.vip_mirror.moves == [cp1.netns, cp2.netns]


def test_pod_mirror_serves_where_the_pod_runs(simlab: Callable[..., SimLab]) -> None:
    lab = simlab()
    wk = lab.node("wk-1")
    lab.k8s(lambda core, _: core.create_namespace({"metadata": {"name": "traefik", "labels": PRIVILEGED}}))
    lab.k8s(lambda core, _: client.NetworkingV1Api(core.api_client).create_namespaced_ingress(
        "default", ingress(lab.domain)))  # a router for the domain: Traefik asks ACME for it
    lab.k8s(lambda core, _: core.create_namespaced_pod("traefik", host_network_pod("traefik-x", "wk-1", ACME_ARGS)))
    pod = lab.k8s(lambda core, _: core.read_namespaced_pod("traefik-x", "traefik"))
    assert pod.spec.node_name == "wk-1" and pod.status.phase == "Running"
    assert lab.pod_mirror.serving() == [wk.netns]

    redirect = lab.in_client(lambda: http_get(wk.address, host=lab.domain))
    assert redirect.status == 308 and redirect.headers["Location"] == f"https://{lab.domain}/"
    # the order takes acme.delay_s: until then, Traefik's own default certificate
    first = lab.in_client(lambda: tls_get(wk.address, lab.domain))
    assert first.cert.subject.rfc4514_string() == "CN=TRAEFIK DEFAULT CERT"
    answer = lab.wait_until(lambda: _verified(lab, wk.address), timeout=5)
    assert answer.verified and answer.status == 200

    lab.k8s(lambda core, _: core.delete_namespaced_pod("traefik-x", "traefik"))
    assert lab.pod_mirror.serving() == []
    with pytest.raises(ConnectionRefusedError):
        lab.in_client(lambda: tcp_connect(wk.address, 80))
    # a pod in another namespace, or off the host network, is not Traefik: nothing is served
    lab.k8s(lambda core, _: core.create_namespaced_pod("kube-system", host_network_pod("other", "wk-1")))
    assert lab.pod_mirror.serving() == []


def _verified(lab: SimLab, address: str) -> Any:
    import ssl

    try:
        return lab.in_client(lambda: tls_get(address, lab.domain, cafile=str(lab.certs.ca.cert_path)))
    except ssl.SSLCertVerificationError:
        return None


@pytest.mark.parametrize("router", ["none", "default-store"])
def test_standin_asks_acme_only_as_traefik_would(simlab: Callable[..., SimLab], router: str) -> None:
    """No router and no default-store generation: Traefik asks for nothing and serves its default
    certificate forever; a TLSStore "default" whose defaultGeneratedCert names the resolver is enough."""
    lab = simlab()
    wk = lab.node("wk-1")
    lab.k8s(lambda core, _: core.create_namespace({"metadata": {"name": "traefik", "labels": PRIVILEGED}}))
    if router == "default-store":
        crd = yaml.safe_load((REPO / "tests/charts/traefik-standin/crds/traefik.io_tlsstores.yaml").read_text())
        lab.emu.create("apiextensions.k8s.io/v1", "CustomResourceDefinition", crd)
        lab.emu.create("traefik.io/v1alpha1", "TLSStore", {
            "metadata": {"name": "default", "namespace": "traefik"},
            "spec": {"defaultGeneratedCert": {"resolver": "le", "domain": {"main": lab.domain}}}})
    lab.k8s(lambda core, _: core.create_namespaced_pod("traefik", host_network_pod("traefik-x", "wk-1", ACME_ARGS)))
    assert lab.pod_mirror.wait_serving([wk.netns])
    if router == "none":
        time.sleep(lab.acme.delay_s + 0.5)
        served = lab.in_client(lambda: tls_get(wk.address, lab.domain))
        assert served.cert.subject.rfc4514_string() == "CN=TRAEFIK DEFAULT CERT"
    else:
        assert lab.wait_until(lambda: _verified(lab, wk.address), timeout=5).verified


def test_pod_security_refusal_reaches_the_client(simlab: Callable[..., SimLab]) -> None:
    from kubernetes.client.rest import ApiException

    lab = simlab()
    lab.k8s(lambda core, _: core.create_namespace({"metadata": {"name": "traefik"}}))
    with pytest.raises(ApiException) as exc:
        lab.k8s(lambda core, _: core.create_namespaced_pod("traefik", host_network_pod("t", "cp-1")))
    assert exc.value.status == 403
    assert json.loads(exc.value.body)["message"] == (
        'pods "t" is forbidden: violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true), '
        'hostPort (container "traefik" uses hostPorts 443, 80)')


def test_labup_runs_in_the_client_namespace_and_brings_the_vip_up(simlab: Callable[..., SimLab]) -> None:
    lab = simlab()
    cp = lab.node("cp-1")
    version = lab.labup("--version", json_out=False)
    assert version.returncode == 0 and version.stdout.startswith("labup ")

    before = lab.counts()
    run = lab.labup("phase", "vip")
    assert run.returncode == 0, run.stderr
    assert run.doc["ok"] is True
    spent = lab.counts() - before
    assert spent.talos_patches == 1 and spent.helm_calls == 0 and spent.api_requests == 0
    assert lab.sim.holder() == cp.address
    assert lab.vip_mirror.wait_for(cp.netns)
    assert lab.arp_vip() == cp.mac

    # the same phase again: converged, nothing written
    before = lab.counts()
    again = lab.labup("phase", "vip")
    assert again.returncode == 0, again.stderr
    assert (lab.counts() - before).talos_patches == 0


def test_helm_wrapper_logs_and_reaches_the_api_from_the_client(simlab: Callable[..., SimLab]) -> None:
    lab = simlab()
    out = lab.net.run("cl", ["helm", "list", "-A", "-o", "json", "--kubeconfig", str(lab.kubeconfig)],
                      env=lab.env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    assert lab.helm_calls() == [["list", "-A", "-o", "json", "--kubeconfig", str(lab.kubeconfig)]]
    assert lab.counts().helm_calls == 1 and lab.counts().helm_writes == 0
    assert lab.emu.log.entries("GET", r"/secrets$")  # helm 4 lists its release secrets
    assert helm_verb(["upgrade", "--install", "traefik", "chart"]) == "upgrade"
    assert is_helm_write(["upgrade", "--install", "x", "c"]) and not is_helm_write(["upgrade", "x", "c", "--dry-run"])


def test_everything_is_cleaned_up(tmp_path: Path) -> None:
    lab = SimLab(tmp_path / "own").start()
    try:
        lab.write_lab()
        lab.configure_vip_in_talos(lab.node("cp-1").address)
        assert lab.vip_mirror.wait_for("cp")
        lab.k8s(lambda core, _: core.create_namespace({"metadata": {"name": "traefik", "labels": PRIVILEGED}}))
        lab.k8s(lambda core, _: core.create_namespaced_pod("traefik", host_network_pod("t", "cp-1")))
        standin = lab.pod_mirror._servers["cp"]
        prefix = lab.net.prefix
        assert list_netns(prefix)
    finally:
        lab.close()
    assert list_netns(prefix) == []
    assert standin.poll() is not None
    assert lab.emu.listen_socket is not None and lab.emu.listen_socket.fileno() == -1
    assert not lab.vip_mirror._thread.is_alive() and not lab.cluster._requeuer.is_alive()
