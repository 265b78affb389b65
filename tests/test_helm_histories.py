# ruff: noqa: F811  (the fixtures imported from test_phase_traefik are parameters by the same name)
"""Issue 19, the Helm half: release histories and failures the real helm binaries (4.1.4, 3.17.3)
produce, against kubeemu, and what labup does with them (the rollback target, an uninstalled or
uninstalling release, writes whose answer was lost, server-side apply conflicts, time limits).

The lab, the emulated cluster and the helm wrapper are test_phase_traefik's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from labup.adapters import helm as helm_adapter
from labup.adapters import process
from labup.checks.kube import judge_release
from labup.config import load
from labup.errors import Interrupted
from test_phase_traefik import (  # noqa: F401  (fixtures: pytest finds them by name in this module)
    CHART,
    HELMS,
    NS,
    REL,
    WAIT_S,
    WORKER,
    TraefikLab,
    chart_repo,
    emu,
    make_lab,
    steps,
)

from conftest import LABUP
from kubeemu import AdmissionRequest, KubeEmulator
from kubeemu.helmrelease import release_secrets, set_latest_status
from kubeemu.helmrun import helm_binary

DEPLOYMENT = rf"^/apis/apps/v1/namespaces/{NS}/deployments/traefik$"
DEFAULT_IMAGE = "docker.io/traefik:v3.7.11"  # the stand-in chart's appVersion: what no values give


def native(version: str) -> list[str]:
    """The native-rollback flags of a major, as a user's own helm would be run."""
    return ["--rollback-on-failure", "--wait=watcher"] if version.startswith("4") else ["--atomic", "--wait"]


def helm_direct(lab: TraefikLab, *args: str) -> subprocess.CompletedProcess[str]:
    """The real helm, straight, whatever it answers."""
    env = {**os.environ, **lab.env}
    return subprocess.run([str(helm_binary(lab.version)), *args, "-n", NS, "--kubeconfig", str(lab.kubeconfig)],
                          env=env, capture_output=True, text=True, timeout=60, check=False)


def image(emu: KubeEmulator) -> str:
    dep = emu.get("apps/v1", "Deployment", "traefik", NS)
    return str(dep["spec"]["template"]["spec"]["containers"][0]["image"])


def upgrades(lab: TraefikLab) -> list[list[str]]:
    return [a for a, _ in lab.helm_calls() if a[:2] == ["upgrade", "--install"]]


def on_the_wrong_node(emu: KubeEmulator) -> None:
    """helm succeeds, labup's own pod check fails (the connection paradox): labup's undo runs."""
    emu.set_scheduler(lambda pod, nodes: WORKER)


# -- 6: the rollback target is the revision that is deployed ----------------------------------------


@pytest.mark.parametrize("version", HELMS)
def test_undo_goes_back_to_the_deployed_revision_not_a_superseded_one_that_never_ran(
        version: str, emu: KubeEmulator, make_lab: Callable[..., TraefikLab]) -> None:
    lab = make_lab(version)
    lab.helm("upgrade", "--install", REL, str(CHART))
    # An upgrade whose write fails, and whose native rollback's write fails too. helm marks the
    # failed upgrade `superseded` though it never ran (pkg/action/rollback.go performRollback:
    # `currentRelease.Info.Status = release.StatusSuperseded` when KubeClient.Update fails, both
    # v3.17.x and v4.1.x) and the rollback revision `failed`.
    # (helm 3 sends no PATCH when the live object already matches the target: the GET that
    # KubeClient.Update makes of each resource fails instead, in the upgrade and in the rollback)
    emu.inject_fault("GET", DEPLOYMENT, 500, count=2)
    broken = helm_direct(lab, "upgrade", REL, str(CHART), "--set", "image.tag=v9.9.9-never-live",
                         *native(version), "--timeout", "5s")
    assert broken.returncode == 1 and "an error occurred while rolling back the release" in broken.stderr
    assert lab.revisions() == [(1, "deployed"), (2, "superseded"), (3, "failed")]
    assert image(emu) == DEFAULT_IMAGE  # revision 1 is what runs

    on_the_wrong_node(emu)
    failed, doc = lab.labup("phase", "traefik")
    assert failed.returncode == 1, failed.stderr
    assert "connection paradox" in doc["error"]
    [undone] = doc["undone"]
    assert "rolled release traefik back to revision 1, the one live before this run" in undone["summary"]
    assert next(a for a, _ in lab.helm_calls() if a[0] == "rollback")[:3] == ["rollback", REL, "1"]
    assert lab.release().get("config") == lab.release(1).get("config")
    assert image(emu) == DEFAULT_IMAGE
    assert lab.revisions()[-1][1] == "deployed"


def test_last_deployed_prefers_deployed_over_a_newer_superseded() -> None:
    history = [helm_adapter.Revision(n, s, "traefik-41.3.0", "", "", "") for n, s in
               [(1, "deployed"), (2, "superseded"), (3, "failed")]]
    assert helm_adapter.last_deployed(history).revision == 1
    only_superseded = [helm_adapter.Revision(n, s, "traefik-41.3.0", "", "", "") for n, s in
                       [(1, "superseded"), (2, "superseded"), (3, "failed")]]
    assert helm_adapter.last_deployed(only_superseded).revision == 2


# -- 7: an uninstalled latest revision is no release -------------------------------------------------


@pytest.mark.parametrize("version", HELMS)
def test_failed_run_after_keep_history_uninstall_leaves_nothing(
        version: str, emu: KubeEmulator, make_lab: Callable[..., TraefikLab]) -> None:
    lab = make_lab(version)
    lab.helm("upgrade", "--install", REL, str(CHART))
    lab.helm("upgrade", REL, str(CHART), "--set", "image.tag=v3.7.10")
    lab.helm("uninstall", REL, "--keep-history")
    assert lab.revisions() == [(1, "superseded"), (2, "uninstalled")]
    assert emu.find("apps/v1", "Deployment", "traefik", NS) is None

    dry, doc = lab.labup("phase", "traefik", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert steps(doc)["release"]["summary"].startswith(f"new release: install {REL} in namespace {NS}")

    on_the_wrong_node(emu)
    failed, doc = lab.labup("phase", "traefik")
    assert failed.returncode == 1, failed.stderr
    assert "this run installed it" in doc["undone"][0]["summary"]
    assert not any(a[0] == "rollback" for a, _ in lab.helm_calls())  # never resurrected
    assert emu.find("apps/v1", "Deployment", "traefik", NS) is None
    assert all(status == "uninstalled" for _, status in lab.revisions())


# -- 8: an `uninstalling` latest revision is a stuck release -----------------------------------------


@pytest.mark.parametrize("version", HELMS)
def test_uninstalling_release_is_stuck_with_the_uninstall_hint(
        version: str, emu: KubeEmulator, make_lab: Callable[..., TraefikLab]) -> None:
    lab = make_lab(version)
    lab.helm("upgrade", "--install", REL, str(CHART))
    set_latest_status(emu, NS, REL, "uninstalling")  # as an interrupted `helm uninstall` leaves it
    fix = f"helm uninstall traefik -n traefik --kubeconfig {lab.kubeconfig}"

    # Real helm refuses the upgrade: pkg/action/upgrade.go prepareUpgrade returns
    # driver.NewErrNoDeployedReleases (pkg/storage/driver/driver.go ErrNoDeployedReleases,
    # `%q has no deployed releases`) when Releases.Deployed finds none and the last revision is
    # neither failed nor superseded.
    real = helm_direct(lab, "upgrade", "--install", REL, str(CHART))
    assert real.returncode == 1
    assert 'Error: UPGRADE FAILED: "traefik" has no deployed releases' in real.stderr
    said = helm_adapter.classify("upgrade --install", real.stderr, 1, write=True, namespace=NS)
    assert isinstance(said, helm_adapter.HelmStuck)
    assert "helm uninstall traefik -n traefik" in (said.hint or "")

    dry, doc = lab.labup("phase", "traefik", "--dry-run")
    release = steps(doc)["release"]
    assert dry.returncode == 1
    assert release["status"] == "failed"
    assert "uninstalling (revision 1)" in release["error"] and "upgrade" not in release.get("summary", "")
    assert fix in release["hint"]

    writes = len(lab.writes())
    stuck, doc = lab.labup("phase", "traefik")
    assert stuck.returncode == 1
    assert "pre-flight failed, nothing was changed" in doc["error"]
    assert "uninstalling (revision 1)" in doc["error"]
    assert fix in doc["hint"]
    assert len(lab.writes()) == writes and upgrades(lab) == []


# -- 9: a write whose answer was lost is decided from the release history -------------------------


@pytest.mark.parametrize("version", HELMS)
def test_lost_answer_after_the_release_was_deployed_is_success_without_a_second_upgrade(
        version: str, emu: KubeEmulator, make_lab: Callable[..., TraefikLab]) -> None:
    lab = make_lab(version)
    assert lab.labup("phase", "traefik")[0].returncode == 0
    lab.write(acme={"email": "ops@labup-tests.dev"})
    # The Secret update that marks revision 2 deployed is stored, and its answer never comes: helm
    # (pkg/action/upgrade.go RunWithContext/`Releases.Update(upgradedRelease)`) fails with `: EOF`.
    drop = emu.drop_after_commit("PUT", rf"^/api/v1/namespaces/{NS}/secrets/sh\.helm\.release\.v1\.{REL}\.v2$")
    ok, doc = lab.labup("phase", "traefik")
    assert ok.returncode == 0, doc
    assert drop.remaining == 0
    assert len(upgrades(lab)) == 2  # the first run's, and this run's one: no blind retry
    assert lab.revisions() == [(1, "superseded"), (2, "deployed")]


@pytest.mark.parametrize("version", HELMS)
def test_lost_answer_after_the_pending_revision_was_written_is_stuck_not_retried(
        version: str, emu: KubeEmulator, make_lab: Callable[..., TraefikLab]) -> None:
    lab = make_lab(version)
    assert lab.labup("phase", "traefik")[0].returncode == 0
    lab.write(acme={"email": "ops@labup-tests.dev"})
    # The POST that creates revision 2 (pending-upgrade) is stored and the connection dropped:
    # helm stops there (pkg/action/upgrade.go performUpgrade: `Releases.Create(upgradedRelease)`).
    drop = emu.drop_after_commit("POST", rf"^/api/v1/namespaces/{NS}/secrets$", how="reset")
    failed, doc = lab.labup("phase", "traefik")
    assert failed.returncode == 1 and drop.remaining == 0
    assert "connection reset by peer" in doc["error"] or ": EOF" in doc["error"]
    assert len(upgrades(lab)) == 2  # no blind retry into `another operation is in progress`
    assert "stuck in pending-upgrade (revision 2)" in doc["error"]
    assert f"helm rollback traefik 1 -n traefik --kubeconfig {lab.kubeconfig}" in doc["hint"]
    assert lab.revisions() == [(1, "deployed"), (2, "pending-upgrade")]


@pytest.mark.parametrize(("stderr", "kind"), [
    # pkg/kube/client.go IsReachable: errors.Wrap(err, "Kubernetes cluster unreachable") (v3.17.x),
    # fmt.Errorf("kubernetes cluster unreachable: %w", err) (v4.1.x): before any write.
    ('Error: Kubernetes cluster unreachable: Get "http://127.0.0.1:1/version": dial tcp 127.0.0.1:1: '
     "connect: connection refused", "HelmUnavailable"),
    ('Error: kubernetes cluster unreachable: Get "http://127.0.0.1:1/version": dial tcp 127.0.0.1:1: '
     "connect: connection refused", "HelmUnavailable"),
    # after the release Secret may have been written: labup reads the history to decide
    ('Error: UPGRADE FAILED: update: failed to update: Put "http://127.0.0.1:5/api/v1/namespaces/traefik/'
     'secrets/sh.helm.release.v1.traefik.v2": EOF', "HelmUncertain"),
    ('Error: UPGRADE FAILED: create: failed to create: Post "http://127.0.0.1:5/api/v1/namespaces/traefik/'
     'secrets": read tcp 127.0.0.1:1->127.0.0.1:5: read: connection reset by peer', "HelmUncertain"),
    ("Error: UPGRADE FAILED: Service Unavailable", "HelmUncertain"),
])
def test_write_errors_retry_only_when_nothing_was_sent(stderr: str, kind: str) -> None:
    from labup.engine.retry import is_transient

    error = helm_adapter.classify("upgrade --install", stderr, 1, write=True)
    assert type(error).__name__ == kind
    assert is_transient(error) is (kind == "HelmUnavailable")


# -- 10: server-side apply conflicts (Helm 4) -------------------------------------------------------

# Helm 4's text, verbatim: pkg/kube/client.go patchResourceServerSide (v4.1.4) wraps the API
# server's 409 as `conflict occurred while applying object %s/%s %s: %w`; the API server's message
# is apimachinery's pkg/util/managedfields/internal/conflict.go getConflictMessage + printManager.
CONFLICT = ('Error: UPGRADE FAILED: an error occurred while rolling back the release. original upgrade error: '
            'conflict occurred while applying object traefik/traefik apps/v1, Kind=Deployment: Apply failed '
            'with 1 conflict: conflict with "kubectl-scale" using apps/v1: .spec.replicas: conflict occurred '
            'while applying object traefik/traefik apps/v1, Kind=Deployment: Apply failed with 1 conflict: '
            'conflict with "kubectl-scale" using apps/v1: .spec.replicas')


def test_conflict_text_names_the_field_manager() -> None:
    error = helm_adapter.classify("upgrade --install", CONFLICT, 1, write=True)
    assert isinstance(error, helm_adapter.HelmConflict)
    assert error.managers == [("kubectl-scale", ".spec.replicas")]
    assert '"kubectl-scale" owns .spec.replicas of Deployment traefik/traefik' in error.message
    assert "traefik.force_conflicts: true" in (error.hint or "")


@pytest.mark.helm
def test_helm4_conflict_is_diagnosed_and_force_conflicts_takes_the_field(
        emu: KubeEmulator, make_lab: Callable[..., TraefikLab]) -> None:
    lab = make_lab("4.1.4")
    assert lab.labup("phase", "traefik")[0].returncode == 0
    # `kubectl scale --replicas 2` took .spec.replicas (an Update by field manager kubectl-scale)
    dep = emu.get("apps/v1", "Deployment", "traefik", NS)
    dep["spec"]["replicas"] = 2
    emu.update("apps/v1", "Deployment", dep)
    emu.own_field("apps/v1", "Deployment", "traefik", NS, ".spec.replicas", "kubectl-scale")
    lab.write(acme={"email": "ops@labup-tests.dev"})
    failed, doc = lab.labup("phase", "traefik")
    assert failed.returncode == 1
    assert 'field manager "kubectl-scale" owns .spec.replicas of Deployment traefik/traefik' in doc["error"]
    assert "traefik.force_conflicts: true" in doc["hint"]
    assert "--force-conflicts" not in upgrades(lab)[-1]

    lab.write(acme={"email": "ops@labup-tests.dev"}, force_conflicts=True)
    ok, doc = lab.labup("phase", "traefik")
    assert ok.returncode == 0, doc
    assert "--force-conflicts" in upgrades(lab)[-1]
    assert emu.get("apps/v1", "Deployment", "traefik", NS)["spec"]["replicas"] == 1


@pytest.mark.helm
def test_helm3_never_gets_force_conflicts(make_lab: Callable[..., TraefikLab]) -> None:
    lab = make_lab("3.17.3")
    # helm 3.17 has no such flag: cmd/helm/upgrade.go registers no "force-conflicts"
    assert "unknown flag: --force-conflicts" in helm_direct(lab, "upgrade", "--install", REL, str(CHART),
                                                           "--force-conflicts").stderr
    lab.write(force_conflicts=True)
    ok, _ = lab.labup("phase", "traefik")
    assert ok.returncode == 0, ok.stderr
    assert "--force-conflicts" not in upgrades(lab)[-1]


def test_force_conflicts_must_be_a_boolean(tmp_path: Path) -> None:
    import yaml

    from conftest import example_data, run_labup

    data = example_data()
    data["traefik"]["force_conflicts"] = "yes please"
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(data))
    result = run_labup("-c", str(path), "phase", "traefik", "--dry-run")
    assert result.returncode == 2
    assert "traefik.force_conflicts" in result.stderr
    data["traefik"]["force_conflicts"] = True
    path.write_text(yaml.safe_dump(data))
    assert load(path).traefik.force_conflicts is True


# -- 11: labup's time limits never cut helm's own rollback short ------------------------------------


def test_write_time_limits_cover_helms_own_worst_case(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []

    def fake_run(binary: Any, args: Any, **kw: Any) -> process.ToolResult:
        seen.append({"args": list(args), **kw})
        return process.ToolResult(("helm", *args), 0, "[]", "")

    monkeypatch.setattr(helm_adapter, "run_tool", fake_run)
    h = helm_adapter.HelmAdapter(Path("/bin/helm"), "4.1.4")
    chart = helm_adapter.ChartRef("path", str(CHART))
    t = 100.0
    h.upgrade_install(REL, chart, NS, "41.3.0", {}, t, "d")
    h.rollback(REL, NS, 1, t)
    h.uninstall(REL, NS, t)
    by = {s["args"][0]: s for s in seen}
    # Helm 4 first install: CRDs (60 s, pkg/action/install.go installCRDs `Wait(..., 60*time.Second)`),
    # then T, then the native rollback/uninstall's own wait T (upgrade.go failRelease `rollin.Timeout = u.Timeout`)
    assert by["upgrade"]["timeout"] >= 60 + 2 * t
    assert by["upgrade"]["grace_s"] >= t  # on Ctrl-C, helm's rollback gets its whole wait
    assert by["rollback"]["timeout"] >= t and by["uninstall"]["timeout"] >= t


def test_a_tool_that_outlives_its_grace_is_killed_and_says_so(tmp_path: Path) -> None:
    stubborn = tmp_path / "stubborn"
    stubborn.write_text("#!/bin/sh\ntrap '' INT TERM\nsleep 30\n")
    stubborn.chmod(0o755)
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGUSR1))

    def interrupt(signum: int, frame: Any) -> None:
        raise Interrupted("SIGTERM")

    previous = signal.signal(signal.SIGUSR1, interrupt)
    started = time.monotonic()
    try:
        timer.start()
        with pytest.raises(process.ToolKilled) as caught:
            process.run_tool(stubborn, [], timeout=20, grace_s=1.0)
    finally:
        timer.cancel()
        timer.join()
        signal.signal(signal.SIGUSR1, previous)
    assert time.monotonic() - started < 10
    assert caught.value.tool == "stubborn" and isinstance(caught.value, Interrupted)


@pytest.mark.parametrize("version", HELMS)
def test_helm_killed_after_its_grace_leaves_a_message_with_the_mend(
        version: str, emu: KubeEmulator, make_lab: Callable[..., TraefikLab]) -> None:
    lab = make_lab(version)
    assert lab.labup("phase", "traefik")[0].returncode == 0
    lab.write(acme={"email": "ops@labup-tests.dev"})
    stuck, release_hook = threading.Event(), threading.Event()

    def hang(req: AdmissionRequest) -> None:  # the Deployment write never answers (until the test ends)
        if req.rt.kind == "Deployment" and req.operation == "UPDATE":
            stuck.set()
            release_hook.wait(90)

    emu.add_admission_hook(hang)
    env = {**os.environ, "NO_COLOR": "1", **lab.env}
    run = subprocess.Popen([LABUP, "-c", str(lab.path), "--json", "phase", "traefik"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert stuck.wait(60), "helm never reached the Deployment"
        time.sleep(0.5)
        run.send_signal(signal.SIGTERM)
        out, err = run.communicate(timeout=120)
    finally:
        release_hook.set()
        if run.poll() is None:
            run.kill()
    doc = json.loads(out)
    assert run.returncode == 1, err
    if version.startswith("3"):
        # Helm 3 cancels (cmd/helm/upgrade.go: signal.Notify -> cancel) and its --atomic rollback
        # (pkg/action/upgrade.go handleContext -> failRelease) sends no write (the live Deployment
        # still matches revision 1): it finishes within its grace, and is not killed
        assert doc["error"] == "interrupted by SIGTERM", doc
        assert lab.revisions()[-1][1] == "deployed"
        assert lab.release()["info"]["description"] == "Rollback to 1"
        return
    # Helm 4's rollback applies server-side, meets the hung Deployment again, and outlives its grace
    assert "helm was killed" in doc["error"]
    latest = lab.revisions()[-1]
    assert latest[1] in ("pending-upgrade", "pending-rollback")
    assert f"left in {latest[1]} (revision {latest[0]})" in doc["error"]
    assert f"helm rollback traefik 1 -n traefik --kubeconfig {lab.kubeconfig}" in doc["hint"]


# -- 12: verify's hint for a pending release ---------------------------------------------------------


@pytest.mark.parametrize("version", HELMS)
def test_verify_hint_for_a_pending_release_names_the_revision(
        version: str, emu: KubeEmulator, make_lab: Callable[..., TraefikLab]) -> None:
    from labup.checks.kube_facts import LabKubeFacts

    lab = make_lab(version)
    lab.helm("upgrade", "--install", REL, str(CHART))
    set_latest_status(emu, NS, REL, "pending-install")
    config = load(lab.path)
    first = judge_release(config, LabKubeFacts(config, 30).release_status())
    assert first.status == "fail"
    assert f"`helm uninstall traefik -n traefik --kubeconfig {lab.kubeconfig}`" in (first.hint or "")
    assert "every later helm call fails" not in (first.hint or "")

    set_latest_status(emu, NS, REL, "deployed")
    lab.helm("upgrade", REL, str(CHART), "--set", "image.tag=v3.7.10")
    set_latest_status(emu, NS, REL, "pending-upgrade")
    later = judge_release(config, LabKubeFacts(config, 30).release_status())
    assert "stuck in pending-upgrade (revision 2)" in later.summary
    assert f"`helm rollback traefik 1 -n traefik --kubeconfig {lab.kubeconfig}`" in (later.hint or "")
    assert "every later helm call fails" not in (later.hint or "")
    assert release_secrets(emu, NS, REL)
