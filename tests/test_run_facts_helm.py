# ruff: noqa: F811  (the fixtures imported from test_phase_traefik are parameters by the same name)
"""Issue 13, the Helm and Kubernetes half of "one read per fact": a release's history, values and
manifest from Helm's own records (labup.facts.release), Kubernetes objects read once per run
(labup.facts.kube), checked against what the real helm 4.1.4 and 3.17.3 say about the same release.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from labup.adapters.helm import ChartRef, HelmAdapter, HelmNotFound
from labup.adapters.kube import KubeAdapter
from labup.checks.kube_facts import LabKubeFacts
from labup.config import load
from labup.engine.context import Context
from labup.engine.shared import RunShared
from labup.errors import Unreadable
from labup.facts.kube import KubeReads, kube_reads
from labup.facts.release import (
    CliRelease,
    StoredRelease,
    decode_secret,
    helm_adapter,
    release_facts,
    snapshot,
    storage_readable,
)
from labup.ui import Reporter
from test_phase_traefik import (  # noqa: F401  (fixtures: pytest finds them by name in this module)
    CHART,
    HELMS,
    NS,
    REL,
    TraefikLab,
    emu,
    make_lab,
)

from kubeemu import KubeEmulator
from kubeemu.helmrelease import release_secrets
from kubeemu.helmrun import helm_binary

SECRET_LIST = rf"^/api/v1/namespaces/{NS}/secrets$"
TOKEN = "s3cr3t-token-of-the-test"  # a value that must never appear in a message or a repr


def labup_requests(emu: KubeEmulator, path: str) -> int:
    """GETs labup itself made (helm's own requests carry helm's user agent)."""
    return sum(1 for e in emu.log.entries("GET", path) if e.user_agent.startswith("labup"))


def helm_with(lab: TraefikLab, env: dict[str, str] | None = None) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(helm_binary(lab.version)), *args, "-n", NS, "--kubeconfig", str(lab.kubeconfig)],
                              env={**os.environ, **lab.env, **(env or {})}, capture_output=True, text=True,
                              timeout=60, check=False)
    return run


def run_context(lab: TraefikLab, monkeypatch: pytest.MonkeyPatch) -> Context:
    """An in-process run of this lab, with the lab's helm (as the helm phase would have found it)."""
    for key, value in lab.env.items():
        monkeypatch.setenv(key, value)
    ctx = Context(lab=load(lab.path), dry_run=False, reporter=Reporter(quiet=True))
    ctx.facts.update(helm_binary=str(helm_binary(lab.version)), helm_version=lab.version)
    return ctx


# -- (a) Helm's records, decoded, say what helm says --------------------------------------------------


@pytest.mark.parametrize("version", HELMS)
def test_decoded_records_equal_helm_history_values_and_manifest(
        version: str, emu: KubeEmulator, make_lab: Callable[..., TraefikLab], monkeypatch: pytest.MonkeyPatch) -> None:
    lab = make_lab(version)
    helm = helm_with(lab)
    assert helm("install", REL, str(CHART)).returncode == 0
    secret_env = f"env[0].name=TOKEN,env[0].value={TOKEN}"
    assert helm("upgrade", REL, str(CHART), "--set", "image.tag=v3.7.10", "--set", secret_env).returncode == 0
    emu.never_ready("traefik", image="docker.io/traefik:v9.9.9-broken")
    failed = helm("upgrade", REL, str(CHART), "--set", "image.tag=v9.9.9-broken", "--wait", "--timeout", "2s")
    assert failed.returncode == 1, failed.stderr
    assert helm("rollback", REL, "2").returncode == 0
    assert lab.revisions() == [(1, "superseded"), (2, "superseded"), (3, "failed"), (4, "deployed")]

    for key, value in lab.env.items():
        monkeypatch.setenv(key, value)
    kube = KubeAdapter(lab.kubeconfig, None, 10)
    h = HelmAdapter(helm_binary(version), version, lab.kubeconfig)
    before = labup_requests(emu, SECRET_LIST)
    stored = StoredRelease(lambda: kube, REL, NS)
    assert stored.history() == h.history(REL, NS)  # revision, status, chart, app version, description, time
    assert [(r.chart_name, r.chart_version) for r in stored.history()] == [("traefik", "41.3.0")] * 4
    assert "failed" in stored.history()[2].description and stored.history()[3].description == "Rollback to 2"
    for revision in (1, 2, 3, 4):
        assert stored.values(revision) == h.get_values(REL, NS, revision)
        assert stored.manifest(revision).strip() == h.get_manifest(REL, NS, revision).strip()
    assert stored.values() == h.get_values(REL, NS) == {"image": {"tag": "v3.7.10"},
                                                        "env": [{"name": "TOKEN", "value": TOKEN}]}
    assert "v9.9.9-broken" in stored.manifest(3) and "v3.7.10" in stored.manifest()
    assert labup_requests(emu, SECRET_LIST) == before + 1  # every answer above from one list request
    with pytest.raises(HelmNotFound):
        stored.values(9)
    # the values never show in a repr (a traceback, a debug print)
    [secret] = [s for s in release_secrets(emu, NS, REL) if s["metadata"]["labels"]["version"] == "4"]
    assert TOKEN not in repr(decode_secret(secret))


def test_no_release_is_an_empty_history(emu: KubeEmulator, make_lab: Callable[..., TraefikLab]) -> None:
    lab = make_lab("4.1.4")
    stored = StoredRelease(lambda: KubeAdapter(lab.kubeconfig, None, 10), REL, NS)
    assert stored.history() == [] and stored.latest() is None
    with pytest.raises(HelmNotFound):
        stored.manifest()


# -- decoding: what helm accepts, what is refused ---------------------------------------------------------


def secret(payload: bytes, name: str = "sh.helm.release.v1.traefik.v1", *, helm_b64: bool = True) -> dict[str, Any]:
    inner = base64.b64encode(payload) if helm_b64 else payload
    return {"metadata": {"name": name, "namespace": NS},
            "data": {"release": base64.b64encode(inner).decode()}}


RELEASE = {"name": "traefik", "version": 1, "config": {"password": TOKEN}, "manifest": "---\nkind: X\n",
           "info": {"status": "deployed", "description": "Install complete", "last_deployed": "2026-01-01T00:00:00Z"},
           "chart": {"metadata": {"name": "traefik", "version": "41.3.0", "appVersion": "v3.7.11"}}}


def test_decode_plain_json_and_a_release_without_chart() -> None:
    # releases stored before helm compressed them: no gzip header, plain JSON
    plain = decode_secret(secret(json.dumps(RELEASE).encode()))
    assert plain.revision.chart == "traefik-41.3.0" and plain.values == {"password": TOKEN}
    bare = decode_secret(secret(gzip.compress(json.dumps({**RELEASE, "chart": None, "config": None}).encode())))
    assert (bare.revision.chart, bare.revision.app_version, bare.values) == ("MISSING", "MISSING", {})


@pytest.mark.parametrize(("data", "why"), [
    (secret(b"", helm_b64=False), "no `release` data"),
    ({"metadata": {"name": "sh.helm.release.v1.traefik.v1", "namespace": NS}, "data": {"release": "%%%"}},
     "not base64"),
    (secret(b"\x1f\x8b\x08" + b"garbage " + TOKEN.encode()), "not gzip"),
    (secret(gzip.compress(json.dumps(RELEASE).encode())[:-12]), "cut short"),
    (secret(gzip.compress(b"{not json " + TOKEN.encode())), "not JSON"),
    (secret(gzip.compress(b"[" * 200_000)), "not JSON"),  # nested too deep for the parser
    (secret(gzip.compress(json.dumps({**RELEASE, "version": "1"}).encode())), "no release revision"),
])
def test_a_record_that_does_not_decode_is_named_never_quoted(data: dict[str, Any], why: str) -> None:
    with pytest.raises(Unreadable) as caught:
        decode_secret(data)
    message = f"{caught.value.message} {caught.value.hint}"
    assert "traefik/sh.helm.release.v1.traefik.v1" in message and why in message
    assert TOKEN not in message and caught.value.__cause__ is None and caught.value.__suppress_context__


def test_a_record_over_the_bound_is_refused_before_it_is_inflated() -> None:
    bomb = gzip.compress(b'{"version": 1, "manifest": "' + b" " * (4 * 1024 * 1024) + b'"}')
    assert len(bomb) < 64 * 1024  # small on the wire, big once inflated
    with pytest.raises(Unreadable, match=r"over 1 MiB once decompressed"):
        decode_secret(secret(bomb), limit=1024 * 1024)
    assert decode_secret(secret(bomb), limit=8 * 1024 * 1024).revision.revision == 1


# -- (c) another storage driver: the helm CLI, as before --------------------------------------------------


def test_which_storage_labup_reads() -> None:
    assert storage_readable({}) is None
    assert storage_readable({"HELM_DRIVER": "secret"}) is None and storage_readable({"HELM_DRIVER": "Secrets"}) is None
    assert storage_readable({"HELM_DRIVER": "configmap"}) == "HELM_DRIVER=configmap"
    assert storage_readable({"HELM_DRIVER": "sql"}) == "HELM_DRIVER=sql"
    # helm pointed at another cluster or user than the kubeconfig's: only helm knows where its records are
    assert storage_readable({"HELM_KUBECONTEXT": "other"}) == "HELM_KUBECONTEXT is set"


@pytest.mark.parametrize("version", HELMS)
def test_helm_driver_configmap_reads_through_the_helm_cli(
        version: str, emu: KubeEmulator, make_lab: Callable[..., TraefikLab], monkeypatch: pytest.MonkeyPatch) -> None:
    lab = make_lab(version)
    lab.env["HELM_DRIVER"] = "configmap"
    first, doc = lab.labup("phase", "traefik")
    assert first.returncode == 0, first.stderr
    assert release_secrets(emu, NS, REL) == [] and emu.list("v1", "ConfigMap", NS)  # helm kept it in a ConfigMap
    calls = len(lab.helm_calls())
    again, doc = lab.labup("phase", "traefik")
    assert again.returncode == 0, again.stderr
    assert {s["step"]: s["status"] for s in doc["steps"]} == {"placement": "ok", "release": "ok", "pod": "ok"}
    verbs = [a[0] for a, _ in lab.helm_calls()[calls:]]
    assert verbs.count("history") == 1 and verbs.count("get") == 2, verbs  # each asked once: values, manifest
    assert "status" not in verbs

    config = load(lab.path)
    monkeypatch.setenv("HELM_DRIVER", "configmap")
    status = LabKubeFacts(config, 30).release_status()  # verify, through helm
    assert status is not None and (status["version"], status["info"]["status"]) == (1, "deployed")
    assert isinstance(snapshot(RunShared(), REL, NS, lambda: KubeAdapter(None, None, 1), lambda: 1 / 0),  # type: ignore[arg-type,return-value]
                      CliRelease)
    monkeypatch.delenv("HELM_DRIVER")
    assert LabKubeFacts(config, 30).release_status() is None  # no Secrets: the records are elsewhere


# -- (d) a helm write drops what the run read ---------------------------------------------------------------


@pytest.mark.parametrize("version", HELMS)
def test_a_helm_write_drops_the_runs_snapshot(
        version: str, emu: KubeEmulator, make_lab: Callable[..., TraefikLab], monkeypatch: pytest.MonkeyPatch) -> None:
    lab = make_lab(version)
    assert helm_with(lab)("install", REL, str(CHART)).returncode == 0
    ctx = run_context(lab, monkeypatch)
    before = labup_requests(emu, SECRET_LIST)
    assert [r.revision for r in release_facts(ctx).history()] == [1]
    verify = LabKubeFacts(ctx.lab, 30, ctx.shared)  # verify inside this apply: the run's snapshots
    assert verify.release_status()["version"] == 1  # type: ignore[index]
    pods = verify.traefik_pods()
    assert labup_requests(emu, SECRET_LIST) == before + 1  # one read for the phase and the check

    helm_adapter(ctx).upgrade_install(REL, ChartRef("path", str(CHART)), NS, "41.3.0", {"image": {"tag": "v3.7.10"}},
                                      30, description="test")
    status = LabKubeFacts(ctx.lab, 30, ctx.shared).release_status()
    assert status is not None and (status["version"], status["info"]["status"]) == (2, "deployed")
    assert release_facts(ctx).values() == {"image": {"tag": "v3.7.10"}}
    assert labup_requests(emu, SECRET_LIST) == before + 2
    # Traefik's pods were dropped too: read again, the new revision's pod among them
    pods_path = rf"^/api/v1/namespaces/{NS}/pods$"
    listed = labup_requests(emu, pods_path)
    after = LabKubeFacts(ctx.lab, 30, ctx.shared).traefik_pods()
    assert labup_requests(emu, pods_path) == listed + 1 and {p.name for p in after} != {p.name for p in pods}


# -- Kubernetes objects: once per run, dropped by labup's writes ------------------------------------------


class CountingKube:
    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def get_namespace(self, name: str) -> dict[str, Any] | None:
        self.calls.append(("namespace", name))
        return {"metadata": {"name": name, "labels": {"a": "b"}}}

    def list_pods(self, namespace: str, label_selector: str | None = None) -> list[dict[str, Any]]:
        self.calls.append(("pods", namespace, label_selector or ""))
        return [{"metadata": {"name": "p"}}]

    def get_workload(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append(("workload", kind, name))
        return {"kind": kind}


def test_kube_reads_once_whatever_the_label_order_and_dropped_by_writes() -> None:
    k, reads = CountingKube(), KubeReads()
    a = reads.pods(k, NS, {"app.kubernetes.io/name": "traefik", "app.kubernetes.io/instance": "traefik-traefik"})
    b = reads.pods(k, NS, {"app.kubernetes.io/instance": "traefik-traefik", "app.kubernetes.io/name": "traefik"})
    assert a == b
    assert k.calls == [("pods", NS, "app.kubernetes.io/instance=traefik-traefik,app.kubernetes.io/name=traefik")]
    a[0]["metadata"]["name"] = "edited"  # a caller's edit stays its own
    assert reads.pods(k, NS, {"app.kubernetes.io/name": "traefik", "app.kubernetes.io/instance": "traefik-traefik"}
                      )[0]["metadata"]["name"] == "p"
    reads.namespace(k, NS)  # type: ignore[arg-type]
    reads.workload(k, "Deployment", NS, "traefik")  # type: ignore[arg-type]
    reads.namespace(k, NS)  # type: ignore[arg-type]
    assert len(k.calls) == 3
    reads.forget_workloads(NS)  # a helm write: pods and workloads, not the namespace
    reads.namespace(k, NS)  # type: ignore[arg-type]
    reads.workload(k, "Deployment", NS, "traefik")  # type: ignore[arg-type]
    assert len(k.calls) == 4
    reads.forget_namespace(NS)
    reads.namespace(k, NS)  # type: ignore[arg-type]
    reads.pods(k, NS, {"x": "y"}, fresh=True)  # type: ignore[arg-type]
    assert len(k.calls) == 6
    shared = RunShared()
    assert kube_reads(shared) is kube_reads(shared)


def test_a_failed_read_is_not_kept() -> None:
    reads, answers = KubeReads(), iter([RuntimeError("down"), {"metadata": {}}])

    class Flaky(CountingKube):
        def get_namespace(self, name: str) -> dict[str, Any] | None:
            answer = next(answers)
            if isinstance(answer, Exception):
                raise answer
            return answer

    with pytest.raises(RuntimeError):
        reads.namespace(Flaky(), NS)  # type: ignore[arg-type]
    assert reads.namespace(Flaky(), NS) == {"metadata": {}}  # type: ignore[arg-type]


def test_snapshot_is_one_per_release_and_fresh_on_request(tmp_path: Path) -> None:
    shared = RunShared()
    kube = KubeAdapter(tmp_path / "none", None, 1)
    one = snapshot(shared, REL, NS, lambda: kube, lambda: 1 / 0)  # type: ignore[arg-type,return-value]
    assert snapshot(shared, REL, NS, lambda: kube, lambda: 1 / 0) is one  # type: ignore[arg-type,return-value]
    assert snapshot(shared, REL, "other", lambda: kube, lambda: 1 / 0) is not one  # type: ignore[arg-type,return-value]
    assert snapshot(shared, REL, NS, lambda: kube, lambda: 1 / 0, fresh=True) is not one  # type: ignore[arg-type,return-value]
    with pytest.raises(Unreadable, match="no kubeconfig"):  # no I/O until asked; then the adapter's answer
        one.history()
