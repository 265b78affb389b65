"""Phase namespace and the Kubernetes adapter, with the real official client over real HTTP against
kubeemu: the `labup` command as a subprocess for the user's view, the adapter in-process for its error
mapping, its retries (none of its own) and its timeouts."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from labup.adapters import kube as k
from labup.config import load
from labup.engine.context import Context
from labup.engine.model import Observation
from labup.engine.retry import is_transient
from labup.errors import ConfigError, PermanentError, PreflightError, Unreadable
from labup.namespace import steps as phase
from labup.ui import Reporter

from conftest import example_data, run_labup
from kubeemu import KubeEmulator

TOKEN = "emu-token-7d1f0c"  # must never show in any output or the journal
NS_PATH = r"^/api/v1/namespaces/traefik$"
WANTED = {"pod-security.kubernetes.io/enforce": "privileged", "pod-security.kubernetes.io/audit": "privileged",
          "pod-security.kubernetes.io/warn": "privileged"}
BASELINE = {"pod-security.kubernetes.io/enforce": "baseline", "pod-security.kubernetes.io/warn": "restricted",
            "pod-security.kubernetes.io/enforce-version": "v1.30", "app.kubernetes.io/part-of": "homelab"}
FORBIDDEN = ('namespaces "traefik" is forbidden: User "lab-reader" cannot {verb} resource "namespaces" '
             'in API group "" at the cluster scope')


# -- fixtures and helpers ---------------------------------------------------------------------------


@pytest.fixture
def emu() -> Iterator[KubeEmulator]:
    # require_auth: a request without the token gets 401, so every passing test proves it was sent
    with KubeEmulator(token=TOKEN, require_auth=True) as emulator:
        yield emulator
    assert not emulator.internal_errors, emulator.internal_errors


def lab_data(kubeconfig: Path | None, namespace: str = "traefik") -> dict[str, Any]:
    data = example_data()
    data["nodes"] = [{"name": "cp-1", "address": "192.0.2.11", "role": "controlplane"},
                     {"name": "worker-1", "address": "192.0.2.21", "role": "worker"}]
    data["vip"] = {"address": "192.0.2.250", "interface": "ens18"}
    data["kubernetes"] = {"kubeconfig": str(kubeconfig) if kubeconfig else None, "timeout_s": 5}
    data["traefik"]["namespace"] = namespace
    data["retry"] = {"attempts": 5, "initial_s": 0.01, "max_s": 0.05, "total_s": 20}
    return data


@pytest.fixture
def lab(emu: KubeEmulator, write_lab: Callable[..., Path], tmp_path: Path) -> Path:
    return write_lab(lab_data(emu.write_kubeconfig(tmp_path / "kube" / "config")))


def labup(lab: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    result = run_labup("-c", str(lab), "--json", *args, timeout=60)
    assert TOKEN not in result.stdout + result.stderr
    return result, json.loads(result.stdout)


def step(doc: dict[str, Any]) -> dict[str, Any]:
    [only] = [s for s in doc["steps"] if s["phase"] == "namespace"]
    return only


def writes(emu: KubeEmulator) -> list[tuple[str, str, int]]:
    return [(e.method, e.path, e.status) for e in emu.log.entries(writes_only=True)]


def labels(emu: KubeEmulator, name: str = "traefik") -> dict[str, str]:
    return emu.get("v1", "Namespace", name)["metadata"].get("labels") or {}


def journal_text(lab: Path) -> str:
    return (lab.parent / ".labup" / "journal.jsonl").read_text()


# -- the phase, through the real command ------------------------------------------------------------


def test_absent_namespace_created_labelled_converged_then_deleted_by_rollback(emu: KubeEmulator, lab: Path) -> None:
    result, doc = labup(lab, "phase", "namespace")
    assert result.returncode == 0, result.stderr
    assert step(doc)["status"] == "changed"
    ns = emu.get("v1", "Namespace", "traefik")
    assert ns["metadata"]["labels"] == WANTED
    assert ns["metadata"]["annotations"][phase.CREATED_BY].startswith("tazlab/")
    assert writes(emu) == [("POST", "/api/v1/namespaces", 201)]

    emu.log.clear()  # converged: the second run reads and writes nothing
    result, doc = labup(lab, "phase", "namespace")
    assert result.returncode == 0, result.stderr
    assert step(doc)["status"] == "ok"
    assert writes(emu) == []

    emu.log.clear()
    result, doc = labup(lab, "rollback", "namespace", "--yes")
    assert result.returncode == 0, result.stderr
    [undone] = doc["undone"]
    assert undone["status"] == "undone" and "deleted namespace traefik" in undone["summary"]
    assert emu.find("v1", "Namespace", "traefik") is None
    assert writes(emu) == [("DELETE", "/api/v1/namespaces/traefik", 200)]
    assert TOKEN not in journal_text(lab)


def test_baseline_namespace_dry_run_then_labelled_then_restored_exactly(emu: KubeEmulator, lab: Path) -> None:
    emu.create("v1", "Namespace", {"metadata": {"name": "traefik", "labels": BASELINE}})

    result, doc = labup(lab, "apply", "--dry-run", "--diff", "--only", "namespace")
    assert result.returncode == 0, result.stderr
    planned = step(doc)
    assert planned["status"] == "would-change"
    diff = planned["diff"].splitlines()
    assert "- pod-security.kubernetes.io/enforce: baseline" in diff
    assert "+ pod-security.kubernetes.io/enforce: privileged" in diff
    assert "+ pod-security.kubernetes.io/audit: privileged" in diff  # was absent: nothing to remove
    assert "- pod-security.kubernetes.io/warn: restricted" in diff
    assert "- pod-security.kubernetes.io/enforce: baseline" in result.stderr  # the human sees it too
    assert writes(emu) == [] and not (lab.parent / ".labup").exists()

    result, doc = labup(lab, "phase", "namespace")
    assert result.returncode == 0, result.stderr
    assert step(doc)["status"] == "changed"
    assert labels(emu) == BASELINE | WANTED  # the others (part-of, enforce-version) untouched
    assert writes(emu) == [("PATCH", "/api/v1/namespaces/traefik", 200)]

    emu.log.clear()
    result, doc = labup(lab, "rollback", "namespace", "--yes")
    assert result.returncode == 0, result.stderr
    assert labels(emu) == BASELINE  # audit removed, enforce and warn back to their values
    assert "restored namespace traefik's labels" in doc["undone"][0]["summary"]
    assert writes(emu) == [("PATCH", "/api/v1/namespaces/traefik", 200)]  # never a delete: not labup's


def test_rollback_leaves_a_created_namespace_that_holds_something(emu: KubeEmulator, lab: Path) -> None:
    assert labup(lab, "phase", "namespace")[0].returncode == 0
    emu.create("v1", "Secret", {"metadata": {"name": "sh.helm.release.v1.traefik.v1", "namespace": "traefik",
                                             "labels": {"owner": "helm"}}, "type": "helm.sh/release.v1"})
    emu.create("v1", "ConfigMap", {"metadata": {"name": "kube-root-ca.crt", "namespace": "traefik"}})
    emu.log.clear()
    result, doc = labup(lab, "rollback", "namespace", "--yes")
    assert result.returncode == 0, result.stderr
    summary = doc["undone"][0]["summary"]
    assert "left namespace traefik in place" in summary
    assert "secrets/sh.helm.release.v1.traefik.v1" in summary and "kube-root-ca" not in summary
    assert labels(emu) == WANTED
    assert writes(emu) == []


def test_a_500_on_the_patch_is_retried_and_converges(emu: KubeEmulator, lab: Path) -> None:
    emu.create("v1", "Namespace", {"metadata": {"name": "traefik", "labels": BASELINE}})
    emu.inject_fault("PATCH", NS_PATH, 500, count=1)
    result, doc = labup(lab, "phase", "namespace")
    assert result.returncode == 0, result.stderr
    assert step(doc)["status"] == "changed"
    assert [e.status for e in emu.log.entries("PATCH", NS_PATH)] == [500, 200]
    assert "attempt 1 failed" in result.stderr
    assert labels(emu) == BASELINE | WANTED


@pytest.mark.parametrize(("existing", "method", "verb"), [
    pytest.param(None, "POST", "create", id="create"),
    pytest.param(BASELINE, "PATCH", "patch", id="patch"),
])
def test_403_names_the_missing_permission_and_changes_nothing(
        emu: KubeEmulator, lab: Path, existing: dict[str, str] | None, method: str, verb: str) -> None:
    if existing:
        emu.create("v1", "Namespace", {"metadata": {"name": "traefik", "labels": existing}})
    emu.inject_fault(method, r"^/api/v1/namespaces", 403, count=10, message=FORBIDDEN.format(verb=verb))
    result, doc = labup(lab, "phase", "namespace")
    assert result.returncode == 1
    needs = f"needs `{verb}` on `namespaces` (cluster-scoped)"
    assert needs in doc["error"] and needs in result.stderr
    assert f'cannot {verb} resource "namespaces"' in doc["error"]  # the server's own words too
    assert len(emu.log.entries(method)) == 1  # a 403 is never retried
    assert [w for w in writes(emu) if w[2] < 400] == []
    assert (labels(emu) == existing) if existing else emu.find("v1", "Namespace", "traefik") is None


def test_a_wrong_token_is_refused_in_preflight(write_lab: Callable[..., Path], tmp_path: Path) -> None:
    with KubeEmulator(token="the-right-token") as emulator:
        kubeconfig = emulator.write_kubeconfig(tmp_path / "kubeconfig", token="a-wrong-token-value")
        lab = write_lab(lab_data(kubeconfig))
        for args in (("phase", "namespace"), ("apply", "--dry-run", "--only", "namespace")):
            result, doc = labup(lab, *args)
            assert result.returncode == 1, result.stderr
            assert "the kubeconfig's credentials were refused" in result.stderr
            assert "a-wrong-token-value" not in result.stdout + result.stderr
        assert doc["steps"][0]["status"] == "failed"  # the dry run says why, it does not guess
        assert writes(emulator) == []
        assert "a-wrong-token-value" not in journal_text(lab)
    assert not emulator.internal_errors


def test_no_kubeconfig_stops_apply_in_preflight_and_dry_run_says_unknown(
        no_outside_tools: None, write_lab: Callable[..., Path], tmp_path: Path) -> None:
    lab = write_lab(lab_data(None))  # falls back to $KUBECONFIG, which names a missing file
    result, doc = labup(lab, "phase", "namespace")
    assert result.returncode == 1
    assert doc["error"].startswith("pre-flight failed, nothing was changed: no kubeconfig at")
    assert f"{tmp_path / 'no-kubeconfig'} ($KUBECONFIG)" in doc["error"]
    assert "talosctl" in doc["hint"]

    missing = tmp_path / "nowhere" / "kubeconfig"
    lab = write_lab(lab_data(missing))
    result, doc = labup(lab, "apply", "--dry-run", "--diff", "--only", "namespace")
    assert result.returncode == 0, result.stderr
    planned = step(doc)
    assert planned["status"] == "unknown"
    assert f"no kubeconfig at {missing} (kubernetes.kubeconfig in lab.yaml)" in planned["summary"]


def test_an_unreachable_api_is_unknown_in_a_dry_run(write_lab: Callable[..., Path], tmp_path: Path) -> None:
    with socket.socket() as closed:  # a port nothing listens on: connection refused, at once
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    lab = write_lab(lab_data(_kubeconfig(tmp_path, port)))
    result, doc = labup(lab, "apply", "--dry-run", "--diff", "--only", "namespace")
    assert result.returncode == 0, result.stderr
    planned = step(doc)
    assert planned["status"] == "unknown"
    assert f"no answer from the Kubernetes API at http://127.0.0.1:{port}" in planned["summary"]
    assert "Connection refused" in planned["summary"] and "gave up after retrying" in planned["summary"]


# -- the phase, in-process (guards and undo corner cases) -------------------------------------------


def context(lab_yaml: Path, **traefik: Any) -> Context:
    lab = load(lab_yaml)
    if traefik:
        lab = replace(lab, traefik=replace(lab.traefik, **traefik))
    return Context(lab=lab, dry_run=False, reporter=Reporter(quiet=True))


def test_system_namespaces_are_refused_by_config_and_by_the_phase(write_lab: Callable[..., Path],
                                                                  tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="system namespace"):
        load(write_lab(lab_data(None, namespace="kube-system")))
    for name in ("kube-system", "kube-public", "kube-node-lease", "default"):
        ctx = context(write_lab(lab_data(tmp_path / "absent")), namespace=name)
        step_ = phase.PrivilegedNamespace(ctx)
        with pytest.raises(PreflightError, match="weakening Pod Security for system workloads"):
            step_.preflight(ctx)  # refused before the kubeconfig is even looked at
        with pytest.raises(PreflightError):
            step_.apply(ctx, Observation(False, "", data={"exists": True, "labels": {}}))


def test_undo_keeps_labels_changed_since_and_namespaces_made_again(emu: KubeEmulator, lab: Path) -> None:
    ctx = context(lab)
    step_ = phase.PrivilegedNamespace(ctx)
    before = {"pod-security.kubernetes.io/enforce": "baseline", "pod-security.kubernetes.io/audit": None,
              "pod-security.kubernetes.io/warn": None}
    emu.create("v1", "Namespace", {"metadata": {"name": "traefik", "labels": {
        **WANTED, "pod-security.kubernetes.io/warn": "restricted"}}})  # someone changed warn after labup
    said = step_.undo(ctx, {"namespace": "traefik", "created": False, "before": before})
    assert labels(emu) == {"pod-security.kubernetes.io/enforce": "baseline",
                           "pod-security.kubernetes.io/warn": "restricted"}
    assert "left pod-security.kubernetes.io/warn=restricted" in said

    # a created namespace, deleted and made again by someone else since: not labup's to delete
    said = step_.undo(ctx, {"namespace": "traefik", "created": True, "marker": "tazlab/0123", "uid": "x"})
    assert "not the one labup created" in said and emu.find("v1", "Namespace", "traefik") is not None
    assert step_.undo(ctx, {"namespace": "gone", "created": True, "marker": "m"}) == "namespace gone is already gone"


def test_undo_never_deletes_a_namespace_it_cannot_see_all_of(emu: KubeEmulator, lab: Path) -> None:
    ctx = context(lab)
    step_ = phase.PrivilegedNamespace(ctx)
    undo = step_.apply(ctx, step_.observe(ctx))
    emu.inject_fault("GET", r"^/apis/apps/v1$", 503, count=1)  # an API group that does not answer
    with pytest.raises(PermanentError, match=r"cannot tell whether namespace traefik .* is empty") as exc:
        step_.undo(ctx, undo)  # undo-failed: the journal keeps it for a later `labup rollback`
    assert "kubectl get all -n traefik" in (exc.value.hint or "")
    assert emu.find("v1", "Namespace", "traefik") is not None
    assert "deleted namespace traefik" in step_.undo(ctx, undo)  # answers again: empty, deleted


def test_a_create_whose_answer_was_lost_is_recognised(emu: KubeEmulator, lab: Path) -> None:
    """The retried POST gets 409: the marker drawn in observe() tells labup's own namespace apart."""
    ctx = context(lab)
    step_ = phase.PrivilegedNamespace(ctx)
    seen = step_.observe(ctx)
    emu.create("v1", "Namespace", {"metadata": {"name": "traefik", "annotations": {
        phase.CREATED_BY: seen.data["marker"]}, "labels": WANTED}})  # "the first attempt landed"
    undo = step_.apply(ctx, seen)
    assert undo["created"] is True and undo["marker"] == seen.data["marker"]

    emu.update("v1", "Namespace", {"metadata": {"name": "traefik", "annotations": {phase.CREATED_BY: "other"},
                                                "labels": {}}})  # someone else's namespace
    undo = step_.apply(ctx, seen)
    assert undo == {"namespace": "traefik", "created": False, "before": dict.fromkeys(WANTED)}
    assert labels(emu) == WANTED


# -- the adapter ------------------------------------------------------------------------------------


CALL = k.Call("patch", "namespaces")


@pytest.mark.parametrize(("status", "kind", "transient", "says"), [
    (401, k.KubeUnauthorized, False, "the kubeconfig's credentials were refused"),
    (403, k.KubeForbidden, False, "needs `patch` on `namespaces` (cluster-scoped)"),
    (404, k.KubeNotFound, False, 'namespaces "traefik" not found'),
    (409, k.KubeConflict, False, "409 AlreadyExists"),
    (422, k.KubeApiError, False, "422 Invalid"),
    (429, k.KubeUnavailable, True, "429 TooManyRequests"),
    (500, k.KubeUnavailable, True, "500 InternalError"),
    (503, k.KubeUnavailable, True, "503 ServiceUnavailable"),
])
def test_http_errors_map_to_labup_errors(status: int, kind: type, transient: bool, says: str) -> None:
    reason = {401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "AlreadyExists", 422: "Invalid",
              429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable"}[status]
    message = FORBIDDEN.format(verb="patch") if status == 403 else 'namespaces "traefik" not found'
    body = json.dumps({"kind": "Status", "status": "Failure", "reason": reason, "code": status,
                       "message": message}).encode()
    err = k.error_for_status(CALL, status, body, "https://192.0.2.11:6443", "/home/me/.kube/config")
    assert type(err) is kind and says in str(err)
    assert is_transient(err) is transient  # exactly what ctx.retry will retry
    assert getattr(err, "status", None) == status
    if status == 403:
        assert isinstance(err, PermanentError) and err.call == CALL


def test_permissions_are_named_with_their_scope() -> None:
    assert k.Call("list", "pods", "traefik").permission == "`list` on `pods` in namespace `traefik`"
    assert k.Call("get", "deployments", "traefik", "apps").permission == (
        "`get` on `deployments.apps` in namespace `traefik`")
    body = b"<html>bad gateway</html>"  # a proxy in front of the API: not a Status body
    assert "(502: <html>bad gateway</html>)" in str(k.error_for_status(CALL, 502, body, "s"))


def test_transport_errors_map_to_labup_errors() -> None:
    import ssl

    import urllib3.exceptions as u

    refused = u.NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")
    for exc in (refused, u.ReadTimeoutError(None, "/", "Read timed out."), u.ProtocolError("reset"),
                ConnectionResetError(104, "reset")):
        err = k.error_for_transport(CALL, exc, "https://192.0.2.11:6443")
        assert isinstance(err, k.KubeUnavailable) and is_transient(err)
    bad_cert = u.SSLError(ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] self-signed"))
    err = k.error_for_transport(CALL, u.MaxRetryError(None, "/", bad_cert), "https://192.0.2.11:6443")
    assert isinstance(err, k.KubeApiError) and not is_transient(err) and "certificate-authority" in (err.hint or "")


def test_the_client_never_retries_on_its_own(tmp_path: Path) -> None:
    """urllib3 would retry a dropped connection 3 times; labup's policy must be the only one."""
    accepted: list[int] = []
    with _server(lambda conn: (conn.recv(65536), conn.close()), accepted) as port:
        adapter = k.KubeAdapter(_kubeconfig(tmp_path, port), None, 2)
        with pytest.raises(k.KubeUnavailable, match="no answer from the Kubernetes API"):
            adapter.get_namespace("traefik")
    assert len(accepted) == 1


def test_every_request_has_a_timeout(tmp_path: Path) -> None:
    release = threading.Event()
    with _server(lambda conn: release.wait(5), []) as port:  # accepts, never answers
        adapter = k.KubeAdapter(_kubeconfig(tmp_path, port), None, 0.3)
        started = time.monotonic()
        with pytest.raises(k.KubeUnavailable, match="timed out"):
            adapter.list_pods("traefik")
        assert time.monotonic() - started < 2
        release.set()


def test_kubeconfig_resolution_and_unusable_kubeconfigs(emu: KubeEmulator, tmp_path: Path) -> None:
    real = emu.write_kubeconfig(tmp_path / "real")
    missing = tmp_path / "missing"
    home = {"HOME": str(tmp_path)}
    assert k.kubeconfig_paths(real, {"KUBECONFIG": str(missing)}) == ([real], "kubernetes.kubeconfig in lab.yaml")
    # $KUBECONFIG is a path list, merged like kubectl does: the missing entry is skipped
    merged = k.KubeAdapter(None, None, 5, env={"KUBECONFIG": f"{missing}:{real}"})
    assert merged.source == "$KUBECONFIG" and merged.get_namespace("default") is not None
    assert k.kubeconfig_paths(None, {})[0] == [Path("~/.kube/config").expanduser()]

    broken = tmp_path / "broken"
    broken.write_text(f"token: {TOKEN}\nclusters: [\n")
    cases = {missing: "no kubeconfig at", broken: "cannot be used"}
    for path, says in cases.items():
        adapter = k.KubeAdapter(path, None, 5, env=home)
        for _ in range(2):  # the same answer each time, without reading again
            with pytest.raises(Unreadable, match=says) as exc:
                adapter.get_namespace("default")
            assert TOKEN not in exc.value.message and "talosctl" in (exc.value.hint or "")
    with pytest.raises(Unreadable, match="Expected object with name nope"):
        k.KubeAdapter(real, "nope", 5).check_config()


def test_adapter_reads_what_the_traefik_phase_and_verify_need(emu: KubeEmulator, tmp_path: Path) -> None:
    adapter = k.KubeAdapter(emu.write_kubeconfig(tmp_path / "kubeconfig"), None, 5)
    assert adapter.get_namespace("traefik") is None
    adapter.create_namespace("traefik", labels={"a": "1"})
    with pytest.raises(k.KubeConflict):
        adapter.create_namespace("traefik")
    assert k.labels_of(adapter.patch_namespace_labels("traefik", {"a": None, "b": "2"})) == {"b": "2"}
    pod = {"metadata": {"name": "traefik-abc", "namespace": "traefik", "labels": {"app.kubernetes.io/name": "traefik"}},
           "spec": {"hostNetwork": True, "nodeName": "emu-node-1", "containers": [{"name": "t", "image": "t"}]}}
    emu.create("v1", "Pod", pod)
    emu.create("v1", "Event", {"metadata": {"name": "e1", "namespace": "traefik"}, "reason": "FailedCreate",
                               "involvedObject": {"kind": "ReplicaSet", "name": "traefik-1"}})
    [found] = adapter.list_pods("traefik", label_selector="app.kubernetes.io/name=traefik")
    assert found["spec"]["hostNetwork"] is True
    assert adapter.list_pods("traefik", label_selector="app=other") == []
    assert [p["metadata"]["name"] for p in adapter.list_pods("traefik", field_selector="spec.nodeName=emu-node-1")] == [
        "traefik-abc"]
    assert [n["metadata"]["name"] for n in adapter.list_nodes()] == ["emu-node-1"]
    assert adapter.get_node("emu-node-1")["metadata"]["labels"]["kubernetes.io/hostname"] == "emu-node-1"
    assert adapter.get_node("nope") is None
    assert [e["reason"] for e in adapter.list_events("traefik", "involvedObject.name=traefik-1")] == ["FailedCreate"]
    contents = adapter.namespace_contents("traefik")
    assert contents.found == ["pods/traefik-abc"] and not contents.unchecked  # events are not content
    emu.inject_fault("GET", r"^/apis/apps/v1$", 503, count=1)  # e.g. an aggregated API that is down
    assert "apps/v1 (" in adapter.namespace_contents("traefik").unchecked[0]
    assert adapter.delete_namespace("traefik") is True and adapter.delete_namespace("traefik") is False
    assert {e.user_agent for e in emu.log.entries()} == {"labup/0.1.0"}


def test_importing_labup_does_not_import_kubernetes() -> None:
    code = ("import sys, labup.cli, labup.runs, labup.phases.namespace, labup.namespace.steps, labup.adapters.kube; "
            "sys.exit('kubernetes' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], timeout=30, check=False).returncode == 0


# -- tiny raw servers for transport failures ---------------------------------------------------------


def _kubeconfig(tmp_path: Path, port: int) -> Path:
    path = tmp_path / f"kubeconfig-{port}"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "u", "user": {"token": TOKEN}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    return path


class _server:
    """Accepts connections on 127.0.0.1 and hands each to `handle` (in its own thread)."""

    def __init__(self, handle: Callable[[socket.socket], object], accepted: list[int]) -> None:
        self.handle = handle
        self.accepted = accepted
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.1)
        self.stop = threading.Event()

    def _loop(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted.append(1)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            self.handle(conn)

    def __enter__(self) -> int:
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()
        return int(self.sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=2)
        self.sock.close()

