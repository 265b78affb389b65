"""The whole lab, end to end (issue 7): the real `labup` command, run in the client namespace of the
simulated lab (tests/e2e), from `apply` to `verify`; the seven walls of FACTS.md §1 provoked; faults.

The lab: real namespaces (ARP, HTTP, TLS), the talosctl simulator, kubeemu as a Talos-like cluster
(control-plane taint, kube-scheduler's filters, Pod Security admission), real helm and the stand-in
chart; the stand-in HTTPS server runs on the node Kubernetes placed Traefik on. See tests/e2e/simlab.py.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from e2e import TWO_CP_NODES, LabupRun, SimLab

pytestmark = pytest.mark.root


PSA = "pod-security.kubernetes.io"
WORKER_AS_CP = [{"name": "cp-1", "address": "192.0.2.10", "role": "controlplane"},
                {"name": "wk-1", "address": "192.0.2.11", "role": "controlplane"}]


def ok(run: LabupRun) -> LabupRun:
    assert run.returncode == 0, run.stderr[-4000:]
    return run




def assert_verified(run: LabupRun) -> None:
    checks = run.checks()
    assert sorted(checks) == sorted(["vip-arp", "vip-holder", "traefik-placement", "http-redirect", "https-cert",
                                     "psa-label", "helm-release", "acme-backup"])
    for name, check in checks.items():
        # acme-backup advises `labup backup` until one holds the served certificate: a warning, not a failure
        assert check["status"] == ("warn" if name == "acme-backup" else "pass"), check


def extra_values(lab: SimLab, values: dict[str, Any]) -> None:
    path = lab.root / "extra-values.yaml"
    path.write_text(yaml.safe_dump(values))
    lab.write_lab(traefik={"values": str(path)})


def refused_before_any_write(lab: SimLab, *args: str, exit_code: int = 1) -> LabupRun:
    """exit 1: the lab disagrees with lab.yaml (found in pre-flight); exit 2: the input itself is bad."""
    before = lab.counts()
    run = lab.labup(*args)
    spent = lab.counts() - before
    assert run.returncode == exit_code, run.stderr
    assert spent.writes == 0, spent
    assert run.doc["error"].startswith("pre-flight failed, nothing was changed: ")
    assert lab.sim.holder() is None and lab.vip_mirror.holder is None
    return run


def journal(lab: SimLab) -> list[dict[str, Any]]:
    path = lab.lab_file.parent / ".labup" / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def traefik_deployment(lab: SimLab) -> dict[str, Any]:
    return lab.emu.get("apps/v1", "Deployment", "traefik", lab.traefik_namespace)


# -- a fresh lab ----------------------------------------------------------------------------------


@pytest.mark.helm
@pytest.mark.parametrize(("talos", "helm"), [("v1.13.0", "4.1.4"), ("v1.11.5", "3.17.3")],
                         ids=["talos1.13-helm4", "talos1.11-helm3"])
def test_fresh_apply_converges_and_verifies_then_reapply_writes_nothing(
        simlab: Callable[..., SimLab], talos: str, helm: str) -> None:
    lab = simlab(talos_version=talos, helm_version=helm)
    cp = lab.node("cp-1")
    plan = lab.labup("apply", "--dry-run", "--detailed-exitcode")
    assert plan.returncode == 5, plan.stderr[-2000:]  # changes pending
    assert {s["status"] for s in plan.steps("verify").values()} == {"would-run"}  # checks are no changes
    first = ok(lab.labup("apply"))
    assert first.doc["ok"] is True
    assert_verified(first)
    # the lab as it should be: the VIP on the control plane, Traefik there on the host network
    assert lab.sim.holder() == cp.address and lab.vip_mirror.holder == cp.netns
    assert lab.arp_vip() == cp.mac
    [pod] = lab.running_traefik()
    assert pod.node == "cp-1" and pod.host_network
    assert lab.pod_mirror.serving() == [cp.netns]
    labels = lab.emu.get("v1", "Namespace", "traefik")["metadata"]["labels"]
    assert {k: v for k, v in labels.items() if k.startswith(PSA)} == {
        f"{PSA}/{m}": "privileged" for m in ("enforce", "audit", "warn")}
    for ns in ("default", "kube-system", "kube-public"):  # never cluster-wide
        assert not any(k.startswith(PSA) for k in lab.emu.get("v1", "Namespace", ns)["metadata"].get("labels") or {})

    before = lab.counts()
    second = ok(lab.labup("apply"))
    spent = lab.counts() - before
    assert spent.talos_patches == 0 and spent.helm_writes == 0 and spent.api_writes == 0, spent.as_dict()
    assert {s["status"] for s in second.steps().values()} <= {"ok", "pass", "skip"}, second.steps()
    assert_verified(second)
    nothing = lab.labup("apply", "--dry-run", "--detailed-exitcode")
    assert nothing.returncode == 0, nothing.stderr[-2000:]  # nothing to do, and everything was read
    assert nothing.doc["complete"] is True and "would-change" not in nothing.doc["counts"]


# -- the seven walls (FACTS.md §1) -----------------------------------------------------------------


@pytest.mark.parametrize("talos", ["v1.13.0", "v1.11.5"])
def test_wall1_vip_asked_on_a_worker_is_refused_before_any_write(simlab: Callable[..., SimLab], talos: str) -> None:
    lab = simlab(talos_version=talos)
    lab.write_lab(nodes=WORKER_AS_CP)
    run = refused_before_any_write(lab, "apply")
    assert "wk-1 (192.0.2.11): lab.yaml says role: controlplane, Talos says worker" in run.doc["error"]
    assert "virtual (shared) IP is not allowed on non-controlplane nodes" in run.doc["error"]
    assert "nodes[1].role: worker" in run.doc["hint"]


def test_wall2_values_for_an_older_chart_are_refused_before_any_write(simlab: Callable[..., SimLab]) -> None:
    lab = simlab()
    extra_values(lab, {"ports": {"web": {"redirectTo": {"port": "websecure"}}}})
    run = refused_before_any_write(lab, "apply", exit_code=2)
    assert "ports.web.redirectTo" in run.doc["error"]
    assert "additional properties 'redirectTo' not allowed" in run.doc["error"]
    assert "ports.web.http.redirections.entryPoint" in run.doc["hint"]


def test_wall3_a_rollout_that_can_never_roll_is_refused_before_any_write(simlab: Callable[..., SimLab]) -> None:
    lab = simlab()
    extra_values(lab, {"updateStrategy": {"rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}})
    run = refused_before_any_write(lab, "apply", exit_code=2)
    assert "updateStrategy.rollingUpdate.maxUnavailable: 0" in run.doc["error"]
    assert "maxUnavailable: 1, maxSurge: 0" in run.doc["hint"]


def test_wall4_namespace_without_the_label_is_named(simlab: Callable[..., SimLab]) -> None:
    """Skipping the namespace phase on a namespace left at the cluster default (baseline): Pod Security
    refuses Traefik's pod; labup quotes the refusal, says the fix, and rolls the run back."""
    lab = simlab()
    lab.write_lab(traefik={**lab.lab_data()["traefik"], "wait_timeout_s": 3})
    lab.emu.create("v1", "Namespace", {"metadata": {"name": "traefik"}})
    run = lab.labup("apply", "--skip", "namespace")
    assert run.returncode == 1
    assert 'violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true)' in run.doc["error"]
    assert "labup phase namespace" in run.doc["hint"]
    assert [(u["phase"], u["step"]) for u in run.doc["undone"]] == [("vip", "cp-1")]
    assert lab.running_traefik() == [] and lab.pod_mirror.serving() == []
    # and with the namespace phase: that namespace labelled, the same lab converges
    ok(lab.labup("apply"))


def test_wall5_failover_makes_the_connection_paradox_and_reapply_moves_traefik(
        simlab: Callable[..., SimLab]) -> None:
    lab = simlab(nodes=TWO_CP_NODES)
    cp1, cp2 = lab.node("cp-1"), lab.node("cp-2")
    ok(lab.labup("apply"))
    assert [p.node for p in lab.running_traefik()] == ["cp-1"]

    lab.sim.set_holder(cp2.address)  # Talos fails the VIP over; Traefik stays where it was pinned
    assert lab.vip_mirror.wait_for(cp2.netns)
    verify = lab.labup("verify")
    assert verify.returncode == 1
    redirect = verify.checks()["http-redirect"]
    assert redirect["status"] == "fail" and "connection refused" in redirect["summary"]
    assert "connection paradox" in redirect["hint"] and "kubernetes.io/hostname: cp-2" in redirect["hint"]
    placement = verify.checks()["traefik-placement"]
    assert placement["status"] == "fail" and "the connection paradox" in placement["summary"]
    assert "Traefik runs on cp-1, but the VIP is on cp-2" in placement["summary"]

    again = ok(lab.labup("apply"))
    assert_verified(again)
    assert [p.node for p in lab.running_traefik()] == ["cp-2"]
    assert lab.pod_mirror.serving() == [cp2.netns]
    assert lab.arp_vip() == cp2.mac and cp1.netns not in lab.pod_mirror.serving()


def test_wall6_two_replicas_with_acme_are_refused_before_any_write(simlab: Callable[..., SimLab]) -> None:
    lab = simlab()
    extra_values(lab, {"deployment": {"replicas": 2}})
    run = refused_before_any_write(lab, "apply", exit_code=2)
    assert "deployment.replicas: 2 replicas" in run.doc["error"]
    assert "cannot share ACME state between instances" in run.doc["error"]


def test_wall7_certificates_live_on_the_node_and_survive_a_restart(simlab: Callable[..., SimLab]) -> None:
    lab = simlab()
    ok(lab.labup("apply"))
    spec = traefik_deployment(lab)["spec"]["template"]["spec"]
    [acme] = [v for v in spec["volumes"] if "hostPath" in v]
    assert acme["hostPath"] == {"path": "/var/mnt/traefik", "type": "DirectoryOrCreate"}
    init = " ".join(" ".join(c.get("command") or []) for c in spec["initContainers"])
    assert "chmod 600 /data/acme.json" in init
    assert any(m["name"] == acme["name"] and m["mountPath"] == "/data"
               for m in spec["containers"][0]["volumeMounts"])

    # Traefik restarts (its pod deleted): it comes back on the same node, with the same hostPath
    [pod] = lab.running_traefik()
    lab.emu.store.delete(lab.emu.registry.by_kind("v1", "Pod"), pod.namespace, pod.name)  # type: ignore[arg-type]
    lab.emu.controllers.resync()
    assert lab.wait_until(lambda: [p.node for p in lab.running_traefik()] == ["cp-1"], 5)
    assert_verified(ok(lab.labup("verify")))

    # storage off /var: refused as invalid input, nothing run
    lab.write_lab(traefik={**lab.lab_data()["traefik"], "acme": {"email": "a@tazlab.example",
                                                                 "storage_dir": "/opt/traefik"}})
    before = lab.counts()
    run = lab.labup("apply")
    assert run.returncode == 2 and "traefik.acme.storage_dir" in run.stderr
    assert lab.counts() - before == type(before)()


# -- faults ---------------------------------------------------------------------------------------


def test_transient_talos_and_api_errors_are_retried_and_the_run_converges(simlab: Callable[..., SimLab]) -> None:
    lab = simlab()
    cp = lab.node("cp-1")
    lab.sim.inject(cp.address, unavailable=2)
    fault = lab.emu.inject_fault("GET", r"^/api/v1/namespaces/traefik$", 503, count=2)
    run = ok(lab.labup("apply"))
    assert_verified(run)
    assert lab.sim.read_state().node(cp.address).faults == [] and fault.remaining == 0
    unavailable = [c for c in lab.sim.calls(node=cp.address) if c["rc"] == 1]
    assert len(unavailable) == 2


def test_helm_failure_rolls_the_whole_run_back(simlab: Callable[..., SimLab]) -> None:
    lab = simlab()
    lab.write_lab(traefik={**lab.lab_data()["traefik"], "wait_timeout_s": 3})
    configs = {n.address: lab.sim.config_text(n.address) for n in lab.nodes}
    namespaces = {n["metadata"]["name"]: n["metadata"].get("labels") for n in lab.emu.list("v1", "Namespace")}
    lab.emu.never_ready("traefik/traefik")  # the release never gets ready: helm gives up
    run = lab.labup("apply")
    assert run.returncode == 1
    assert "helm could not install release traefik" in run.doc["error"]
    assert [(u["phase"], u["step"]) for u in run.doc["undone"]] == [("namespace", "pod-security"), ("vip", "cp-1")]
    # exactly as before: Talos configs, namespaces and their labels, no release
    assert {n.address: lab.sim.config_text(n.address) for n in lab.nodes} == configs
    assert {n["metadata"]["name"]: n["metadata"].get("labels") for n in lab.emu.list("v1", "Namespace")} == namespaces
    assert lab.emu.list("v1", "Secret") == [] and lab.emu.list("apps/v1", "Deployment") == []
    assert lab.sim.holder() is None and lab.vip_mirror.wait_for(None) and lab.arp_vip(timeout=1.5) is None
    assert journal(lab)[-1]["event"] == "run-end"


def test_sigint_during_the_traefik_phase(simlab: Callable[..., SimLab]) -> None:
    """Ctrl-C at the terminal (labup and its helm both get SIGINT) while helm waits for Traefik."""
    lab = simlab()
    lab.emu.never_ready("traefik/traefik")
    proc = lab.start_labup("apply", start_new_session=True)
    assert lab.wait_until(lambda: any(argv[0] == "upgrade" for argv in lab.helm_calls()), 60)
    assert lab.wait_until(lambda: lab.emu.find("apps/v1", "Deployment", "traefik", "traefik"), 10)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "interrupted by SIGINT" in err
    events = journal(lab)
    assert events[-1]["event"] == "run-end" and events[-1]["error"] == "interrupted by SIGINT"
    applied = {(e["phase"], e["step"]) for e in events if e["event"] == "applied"}
    undone = {(e["phase"], e["step"]) for e in events if e["event"] == "undone"}
    assert applied == undone == {("vip", "cp-1"), ("namespace", "pod-security")}
    # the lock is free: the next run takes it, and converges
    lab.emu.controllers.never_ready.clear()
    assert_verified(ok(lab.labup("apply")))


def test_sigint_during_the_first_install_leaves_the_namespaces_as_before(simlab: Callable[..., SimLab]) -> None:
    lab = simlab()
    namespaces = {n["metadata"]["name"]: n["metadata"].get("labels") for n in lab.emu.list("v1", "Namespace")}
    lab.emu.never_ready("traefik/traefik")
    proc = lab.start_labup("apply", start_new_session=True)
    assert lab.wait_until(lambda: lab.emu.find("apps/v1", "Deployment", "traefik", "traefik"), 60)
    os.killpg(proc.pid, signal.SIGINT)
    proc.communicate(timeout=60)
    lab.wait_until(lambda: not lab.emu.list("v1", "Secret", "traefik"), 15)  # helm's own cleanup
    assert {n["metadata"]["name"]: n["metadata"].get("labels") for n in lab.emu.list("v1", "Namespace")} == namespaces


def test_two_concurrent_applies_the_second_exits_4(simlab: Callable[..., SimLab]) -> None:
    lab = simlab()
    lab.emu.never_ready("traefik/traefik")  # keeps the first run inside helm's wait, holding the lock
    first = lab.start_labup("apply")
    try:
        assert lab.wait_until(lambda: any(argv[0] == "upgrade" for argv in lab.helm_calls()), 60)
        before = lab.counts()
        second = lab.labup("apply")
        assert second.returncode == 4, second.stderr
        spent = lab.counts() - before  # the first run sits in helm's wait meanwhile: no talosctl, no new helm
        assert spent.talos_calls == 0 and spent.helm_calls == 0, spent
    finally:
        lab.emu.controllers.never_ready.clear()
        for pod in lab.traefik_pods():  # Traefik's readiness probe passes: the first run's helm wait ends
            lab.cluster.set_pod_ready(pod["metadata"]["namespace"], pod["metadata"]["name"])
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err[-3000:]
    assert_verified(LabupRun([], 0, out, err, 0.0))


def test_sigint_early_in_a_run_ends_labup_at_once(simlab: Callable[..., SimLab]) -> None:
    """Ctrl-C at moments spread over the first second of an apply (pre-flight's concurrent talosctl
    calls, the first writes): labup ends within seconds every time, with no thread's traceback. sh's
    timeout timers once kept it alive talos.timeout_s (30 s) after some of these moments."""
    import time

    lab = simlab()
    for delay in (0.3, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.8):
        proc = lab.start_labup("apply", json_out=False, start_new_session=True)
        time.sleep(delay)
        started = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert time.monotonic() - started < 5, (delay, err[-2000:])
        assert "Traceback" not in err, (delay, err[-2000:])
        ok(lab.labup("rollback", "--yes"))
