"""topology: ha (issue 15): three control planes, Traefik as a DaemonSet on every one of them, cert-manager
issuing the certificate into a Secret every Traefik serves; the VIP fails over and HTTPS keeps answering.

End to end on the simulated lab (HA_NODES: three control planes and a worker; the emulator's DaemonSet
controller puts one Traefik pod on each node the pod fits, none on the worker; the cert-manager stand-in
chart brings the real chart's schema and CRD names, CertManagerSim issues as cert-manager does).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from labup.traefik.keys import ValuesError

from conftest import REPO, example_data, run_labup
from e2e import HA_NODES, LabupRun, SimLab

CM_PIN = REPO / "phases" / "certmanager"
CM_STANDIN = REPO / "tests" / "charts" / "cert-manager-standin"


def ok(run: LabupRun) -> LabupRun:
    assert run.returncode == 0, run.stderr[-4000:]
    return run


def ha_lab(simlab: Callable[..., SimLab]) -> SimLab:
    lab = simlab(nodes=HA_NODES)
    lab.write_lab(lab.ha_lab_data())
    return lab


# -- offline: the pin and the stand-in ---------------------------------------------------------------


def test_cert_manager_schema_is_the_pinned_one_everywhere() -> None:
    """The shipped schema is the one the pin names (sha256), and the stand-in chart carries that same
    file: helm validates the stand-in's values exactly as the real chart's."""
    pin = yaml.safe_load((CM_PIN / "chart.yaml").read_text())
    shipped = hashlib.sha256((CM_PIN / "values.schema.json").read_bytes()).hexdigest()
    assert shipped == pin["schema_sha256"]
    assert hashlib.sha256((CM_STANDIN / "values.schema.json").read_bytes()).hexdigest() == shipped
    standin = yaml.safe_load((CM_STANDIN / "Chart.yaml").read_text())
    assert (standin["name"], standin["version"]) == (pin["name"], pin["version"])
    crds = sorted(p.name.split("_", 1)[1].removesuffix(".yaml") + "." + p.name.split("_")[0][4:]
                  for p in (CM_STANDIN / "templates").glob("crd-*.yaml"))
    assert crds == sorted(pin["crds"])


# -- end to end --------------------------------------------------------------------------------------


@pytest.mark.root
def test_ha_apply_converges_verify_passes_and_failover_needs_no_reapply(simlab: Callable[..., SimLab]) -> None:
    lab = ha_lab(simlab)
    started = time.monotonic()
    run = ok(lab.labup("apply"))
    apply_s = time.monotonic() - started
    phases = list(dict.fromkeys(s["phase"] for s in run.doc["steps"]))
    assert phases == ["vip", "helm", "namespace", "cert-manager", "traefik", "verify"]
    nodes = sorted(p.node for p in lab.running_traefik())
    assert nodes == ["cp-1", "cp-2", "cp-3"]  # one per control plane, none on the worker
    [ds] = lab.emu.list("apps/v1", "DaemonSet", "traefik")
    assert ds["spec"]["updateStrategy"]["rollingUpdate"] == {"maxUnavailable": 1, "maxSurge": 0}
    checks = run.checks()
    assert all(checks[c]["status"] == "pass" for c in ("vip-holder", "traefik-placement", "https-cert")), checks
    assert "from Secret traefik/labup-tls, issued by cert-manager" in checks["https-cert"]["summary"]
    assert len(lab.cert_manager.orders) == 1 and lab.acme.orders == []  # cert-manager's, never Traefik's ACME

    started = time.monotonic()
    verify = ok(lab.labup("verify"))
    verify_s = time.monotonic() - started
    holder = verify.checks()["vip-holder"]["data"]["holder"]

    other = next(n for n in HA_NODES if n.role == "controlplane" and n.name != holder)
    lab.sim.set_holder(other.address)
    assert lab.vip_mirror.wait_for(other.netns)
    moved = ok(lab.labup("verify")).checks()
    assert moved["vip-holder"]["data"]["holder"] == other.name
    assert moved["traefik-placement"]["status"] == "pass" and moved["https-cert"]["status"] == "pass"
    status = ok(lab.labup("status")).doc  # the lab at a glance agrees: a ready Traefik on the new holder
    assert status["vip"]["holder"] == other.name and status["paradox"]["found"] is False
    assert sorted(p["node"] for p in status["traefik"]["pods"] if p["ready"]) == ["cp-1", "cp-2", "cp-3"]

    before = lab.counts()
    again = ok(lab.labup("apply"))
    assert (lab.counts() - before).writes == 0, again.stderr
    assert len(lab.cert_manager.orders) == 1
    print(f"\nha: apply {apply_s:.2f}s, verify {verify_s:.2f}s")


def ha_lab_file(tmp_path: Path, planes: int = 3, values_text: str | None = None, **changes: object) -> Path:
    """The example lab as topology ha: `planes` control planes (192.0.2.10+) and a worker."""
    data = example_data()
    data["topology"] = "ha"
    data["nodes"] = [{"name": f"cp-{i}", "address": f"192.0.2.{10 + i}", "role": "controlplane"}
                     for i in range(1, planes + 1)] + [{"name": "wk-1", "address": "192.0.2.30", "role": "worker"}]
    data["vip"]["address"] = "192.0.2.250"
    data["traefik"]["acme"]["email"] = "admin@labup-tests.dev"
    if values_text is not None:
        (tmp_path / "extra-values.yaml").write_text(values_text)
        data["traefik"]["values"] = "extra-values.yaml"
    data.update(changes)
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def refused(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert "nothing was touched" in result.stderr or "nothing was changed" in result.stderr
    for text in expected:
        assert text in result.stderr, f"{text!r} not in:\n{result.stderr}"


def test_ha_values_pass_helm_lint_strict_and_template_with_the_real_schema(tmp_path: Path) -> None:
    """The ha values against chart 41.3.0's own schema (helm 4.1.4, the stand-in carrying that schema):
    a DaemonSet with host ports, the control-plane toleration and selector, maxSurge 0, no resolver."""
    from helmdist import real_helm

    helm = real_helm("4.1.4")
    render = run_labup("-c", str(ha_lab_file(tmp_path)), "render", "traefik")
    assert render.returncode == 0, render.stderr
    values = tmp_path / "values.yaml"
    values.write_text(render.stdout)
    chart = REPO / "tests" / "charts" / "traefik-standin"
    env = {**os.environ, "HELM_CACHE_HOME": str(tmp_path / "cache"), "HELM_CONFIG_HOME": str(tmp_path / "config")}
    for args in (["lint", "--strict", str(chart), "-f", str(values)],
                 ["template", "traefik", str(chart), "-n", "traefik", "-f", str(values)]):
        done = subprocess.run([str(helm), *args], capture_output=True, text=True, timeout=60, env=env)
        assert done.returncode == 0, done.stderr
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    [ds] = [d for d in docs if d["kind"] == "DaemonSet"]
    assert not [d for d in docs if d["kind"] == "Deployment"]
    pod = ds["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True
    assert {(p["containerPort"], p.get("hostPort")) for p in pod["containers"][0]["ports"]} >= {(80, 80), (443, 443)}
    assert {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"} \
        in pod["tolerations"]
    assert pod["nodeSelector"] == {"node-role.kubernetes.io/control-plane": ""}
    assert ds["spec"]["updateStrategy"]["rollingUpdate"] == {"maxUnavailable": 1, "maxSurge": 0}
    args = pod["containers"][0]["args"]
    assert not [a for a in args if "certificatesresolvers" in a.lower() or "certResolver" in a]
    assert "--entryPoints.web.allowACMEByPass=true" in args  # HTTP-01 answered on 80, past the redirect
    kinds = {d["kind"]: d for d in docs}
    assert kinds["TLSStore"]["spec"] == {"defaultCertificate": {"secretName": "labup-tls"}}
    # cert-manager's objects are never in Traefik's release: Helm 4 would wait on the Certificate's Ready
    assert not {"Issuer", "Certificate"} & set(kinds)


def test_single_renders_byte_for_byte_as_before(tmp_path: Path) -> None:
    """topology: single is the default and its values did not move: an explicit `topology: single`
    renders exactly what the example lab (no topology key) renders."""
    plain = run_labup("-c", str(REPO / "examples" / "lab.yaml"), "render", "traefik")
    data = example_data()
    data["topology"] = "single"
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(data))
    explicit = run_labup("-c", str(path), "render", "traefik")
    assert plain.returncode == explicit.returncode == 0
    assert plain.stdout == explicit.stdout
    assert "kind: Deployment" in plain.stdout and "extraObjects" not in plain.stdout


def test_cert_manager_values_are_checked_against_its_own_schema(tmp_path: Path) -> None:
    result = run_labup("-c", str(ha_lab_file(tmp_path)), "render", "cert-manager")
    assert result.returncode == 0, result.stderr
    values, issuer, certificate = yaml.safe_load_all(result.stdout)
    assert values == {"crds": {"enabled": True, "keep": True}}
    assert issuer["kind"] == "Issuer" and issuer["metadata"]["namespace"] == "traefik"
    assert issuer["spec"]["acme"]["server"] == "https://acme-v02.api.letsencrypt.org/directory"
    assert issuer["spec"]["acme"]["solvers"][0]["http01"]["ingress"]["ingressClassName"] == "traefik"
    assert certificate["spec"]["secretName"] == "labup-tls" and certificate["spec"]["dnsNames"] == ["lab.example.net"]
    assert certificate["spec"]["privateKey"] == {"algorithm": "RSA", "size": 4096}
    from labup.traefik import schema

    with pytest.raises(ValuesError, match=r"crds.install: additional properties 'install' not allowed"):
        schema.validate({"crds": {"install": True}}, "certmanager")


@pytest.mark.parametrize(("planes", "values_text", "changes", "expected"), [
    (2, None, {}, ["topology: 'ha' needs at least 3 control-plane nodes; nodes lists 2 (cp-1, cp-2)"]),
    (3, "certificatesResolvers:\n  le:\n    acme:\n      email: a@labup-tests.dev\n      storage: /data/a.json\n",
     {}, ["traefik.values: certificatesResolvers.le.acme: built-in ACME is refused in topology: ha"]),
    (3, "deployment:\n  kind: Deployment\n", {}, ["traefik.values: deployment.kind: 'Deployment' in topology: ha"]),
    (3, "nodeSelector:\n  kubernetes.io/hostname: cp-1\n", {},
     ["traefik.values: nodeSelector.kubernetes.io/hostname: pins Traefik to one node"]),
    (3, None, {"cert_manager": {"chart_version": "v1.20.0"}}, ["cert_manager.chart_version: 'v1.20.0'"]),
], ids=["two-control-planes", "built-in-acme", "deployment", "hostname-pin", "other-chart"])
def test_ha_refusals_exit_2_naming_the_field_and_touch_nothing(tmp_path: Path, planes: int, values_text: str | None,
                                                               changes: dict[str, object], expected: list[str]) -> None:
    lab = ha_lab_file(tmp_path, planes, values_text, **changes)
    # a dry run would read the lab: these are refused before, so no tool is even looked for
    for argv in (["render", "traefik"], ["apply", "--dry-run"]):
        if argv[0] == "render" and "cert_manager" in changes:
            argv = ["render", "cert-manager"]
        refused(run_labup("-c", str(lab), *argv, env={"PATH": "/nonexistent"}), *expected)


def test_ha_refuses_the_tls_challenge(tmp_path: Path) -> None:
    data = yaml.safe_load(ha_lab_file(tmp_path).read_text())
    data["traefik"]["acme"]["challenge"] = "tls"
    path = tmp_path / "tls.yaml"
    path.write_text(yaml.safe_dump(data))
    refused(run_labup("-c", str(path), "render", "traefik"), "traefik.acme.challenge: 'tls' cannot be used")


def test_daemonset_in_single_exits_2_naming_deployment_kind(tmp_path: Path) -> None:
    data = example_data()
    (tmp_path / "v.yaml").write_text("deployment:\n  kind: DaemonSet\ncertificatesResolvers: null\n")
    data["traefik"]["values"] = "v.yaml"
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(data))
    refused(run_labup("-c", str(path), "render", "traefik"),
            "traefik.values: deployment.kind: 'DaemonSet' runs one Traefik per node, which is topology: ha")


@pytest.mark.root
def test_switching_single_to_ha_and_back_is_a_planned_change_that_leaves_nothing(
        simlab: Callable[..., SimLab]) -> None:
    lab = simlab(nodes=HA_NODES)  # topology single first, on a lab that could be ha
    ok(lab.labup("apply"))
    [single_node] = [p.node for p in lab.running_traefik()]

    lab.write_lab(lab.ha_lab_data())
    plan = ok(lab.labup("apply", "--dry-run"))
    steps = plan.steps()
    assert steps["cert-manager/release"]["status"] == "would-change"
    assert "topology single -> ha" in steps["traefik/release"]["summary"]
    ok(lab.labup("apply"))
    assert sorted(p.node for p in lab.running_traefik()) == ["cp-1", "cp-2", "cp-3"]
    assert lab.emu.list("apps/v1", "Deployment", "traefik") == []
    assert lab.emu.list("apps/v1", "ReplicaSet", "traefik") == []

    lab.write_lab()  # back to single
    plan = ok(lab.labup("apply", "--dry-run"))
    assert "topology ha -> single" in plan.steps()["traefik/release"]["summary"]
    back = ok(lab.labup("apply", json_out=False))
    assert "topology ha -> single: removed release cert-manager (namespace cert-manager)" in back.stderr
    assert "topology ha -> single: removed Secret traefik/labup-tls" in back.stderr
    assert [p.node for p in lab.running_traefik()] == [single_node]
    assert lab.emu.list("apps/v1", "DaemonSet", "traefik") == []
    assert lab.emu.list("apps/v1", "Deployment", "cert-manager") == []  # labup's cert-manager is gone
    assert lab.emu.find("v1", "Secret", "labup-tls", "traefik") is None
    for kind in ("Issuer", "Certificate"):
        assert lab.emu.list("cert-manager.io/v1", kind, "traefik") == []
    assert "topology ha -> single: removed Certificate traefik/labup-tls" in back.stderr
    before = lab.counts()
    ok(lab.labup("apply"))
    assert (lab.counts() - before).writes == 0


@pytest.mark.root
def test_rollback_undoes_cert_manager_like_any_phase(simlab: Callable[..., SimLab]) -> None:
    lab = ha_lab(simlab)
    ok(lab.labup("apply"))
    assert lab.emu.list("apps/v1", "Deployment", "cert-manager")
    ok(lab.labup("rollback", "--yes"))
    assert lab.emu.list("apps/v1", "Deployment", "cert-manager") == []
    for kind in ("Issuer", "Certificate"):
        assert lab.emu.list("cert-manager.io/v1", kind, "traefik") == []
    assert lab.emu.list("apps/v1", "DaemonSet", "traefik") == []
    # the CRDs stay (crds.keep): deleting one deletes every object of its kind, not only labup's
    assert lab.emu.find("apiextensions.k8s.io/v1", "CustomResourceDefinition", "certificates.cert-manager.io")


@pytest.mark.root
def test_ha_verify_warns_for_a_control_plane_without_traefik_and_names_cert_manager_failures(
        simlab: Callable[..., SimLab]) -> None:
    lab = ha_lab(simlab)
    lab.cert_manager.failure = "connection"
    run = lab.labup("apply")
    assert run.returncode == 1 and "https-cert" in run.checks(), run.stderr[-3000:]  # Traefik stays, verify runs
    cert = run.checks()["https-cert"]
    assert "cert-manager failed to issue Certificate traefik/labup-tls" in cert["summary"], cert
    assert "Timeout during connect" in cert["summary"]
    assert run.elapsed < 15  # a failure ends the certificate wait (cert_timeout_s 20)

    # cp-3 stops taking Traefik (a taint it does not tolerate): the holder still answers, cp-3 is named
    node = lab.emu.get("v1", "Node", "cp-3")
    node["spec"]["taints"] = [*node["spec"].get("taints", []), {"key": "maintenance", "effect": "NoExecute"}]
    lab.emu.update("v1", "Node", node)
    for pod in [p for p in lab.traefik_pods() if p["spec"].get("nodeName") == "cp-3"]:
        lab.emu.store.delete(lab.emu.registry.by_kind("v1", "Pod"), "traefik", pod["metadata"]["name"])
    lab.wait_until(lambda: "cp-3" not in [p.node for p in lab.running_traefik()])
    placement = lab.labup("verify", "--only", "vip-holder,traefik-placement").checks()["traefik-placement"]
    holder = lab.labup("verify", "--only", "vip-holder").checks()["vip-holder"]["data"]["holder"]
    if holder == "cp-3":
        assert placement["status"] == "fail"
    else:
        assert placement["status"] == "warn", placement
        assert placement["data"]["missing"] == ["cp-3"]


@pytest.mark.root
def test_single_to_ha_carries_the_backed_up_certificate_over_and_orders_nothing(
        simlab: Callable[..., SimLab]) -> None:
    """Traefik's RSA 4096 certificate (its ACME default), backed up in topology single, becomes cert-manager's
    Secret before the Certificate exists: cert-manager keeps it (its readiness policies pass), no order."""
    lab = simlab(nodes=HA_NODES, rsa_bits=4096)
    ok(lab.labup("apply"))
    assert len(lab.acme.orders) == 1
    ok(lab.labup("backup"))
    served = ok(lab.labup("verify", "--only", "https-cert")).checks()["https-cert"]["data"]["domains"][lab.domain]

    lab.write_lab(lab.ha_lab_data())
    plan = ok(lab.labup("apply", "--dry-run")).steps()
    assert plan["cert-manager/carry-over"]["status"] == "would-change"
    assert "from backup acme-" in plan["cert-manager/carry-over"]["summary"]
    run = ok(lab.labup("apply"))
    assert lab.cert_manager.orders == [] and lab.cert_manager.kept == ["traefik/labup-tls"]
    cert = run.checks()["https-cert"]
    assert cert["status"] == "pass" and "from Secret traefik/labup-tls" in cert["summary"]
    now = ok(lab.labup("verify", "--only", "https-cert")).checks()["https-cert"]["data"]["domains"][lab.domain]
    assert now["der_sha256"] == served["der_sha256"]  # the very same certificate
    assert len(lab.acme.orders) == 1  # and Traefik's ACME asked nothing more either
    before = lab.counts()
    again = ok(lab.labup("apply"))
    assert again.steps()["cert-manager/carry-over"]["status"] == "ok"
    assert (lab.counts() - before).writes == 0


@pytest.mark.root
def test_a_certificate_cert_manager_would_not_keep_is_not_carried_over(simlab: Callable[..., SimLab]) -> None:
    """The test CA's EC P-256 certificate (not Traefik's RSA 4096): carrying it over would only make
    cert-manager re-issue, so the step says why and cert-manager orders one."""
    lab = simlab(nodes=HA_NODES)
    ok(lab.labup("apply"))
    ok(lab.labup("backup"))
    lab.write_lab(lab.ha_lab_data())
    run = ok(lab.labup("apply"))
    step = run.steps()["cert-manager/carry-over"]
    assert step["status"] == "ok"
    assert "its key in backup acme-" in step["summary"] and "is ECDSA secp256r1, the Certificate asks RSA 4096" \
        in step["summary"]
    assert len(lab.cert_manager.orders) == 1 and lab.cert_manager.kept == []


@pytest.mark.root
def test_helm4_would_hold_a_release_hostage_to_its_certificate(simlab: Callable[..., SimLab], tmp_path: Path) -> None:
    """Why labup creates the Issuer and Certificate itself: the same objects inside a Helm release make
    Helm 4's --wait=watcher (kstatus reads Ready=False as in progress) wait for Let's Encrypt, and a
    failed order fails the release. The simulated cert-manager marks a Certificate not Ready as it is
    created, as the real one does long before a release's pods are Ready."""
    lab = ha_lab(simlab)
    ok(lab.labup("apply", "--only", "vip,helm,namespace,cert-manager"))  # the CRDs, the controller
    lab.cert_manager.failure = "connection"
    [_issuer, certificate] = yaml.safe_load_all(
        ok(lab.labup("render", "cert-manager", json_out=False)).stdout.split("---\n", 1)[1])
    certificate["metadata"]["name"] = "held"
    values = tmp_path / "held.yaml"
    values.write_text(yaml.safe_dump({"extraObjects": [certificate]}))
    helm = [str(lab.helm_bin / "helm"), "upgrade", "--install", "held", str(CM_STANDIN.parent / "traefik-standin"),
            "-n", "traefik", "-f", str(values), "--wait=watcher", "--timeout", "4s",
            "--kubeconfig", str(lab.kubeconfig)]
    done = lab.net.run("cl", helm, env=lab.env, timeout=60)
    assert done.returncode != 0, done.stdout
    assert "Certificate/traefik/held not ready" in done.stderr, done.stderr
