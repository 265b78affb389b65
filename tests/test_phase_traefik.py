"""Phase traefik through the real `labup` command, with real helm 4.1.4 and 3.17.3 against kubeemu
and the talosctl simulator: the stand-in chart tests/charts/traefik-standin (chart 41.3.0 with the
pinned values.schema.json, so helm validates values as the real chart does).

The emulated cluster has the lab's two nodes, the control plane tainted
`node-role.kubernetes.io/control-plane:NoSchedule`, and a scheduler that honours nodeSelector and
tolerations, so a pod lands where Kubernetes would put it. Traefik's namespace is already labelled
privileged (the namespace phase's job, not under test here).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from labup.adapters import helm as helm_adapter
from labup.traefik import diagnose
from labup.traefik.diffs import comparable

from conftest import REPO, example_data, run_labup
from helmdist import Mirror
from kubeemu import AdmissionRequest, ApiError, KubeEmulator
from kubeemu.helmrelease import decode_release, release_secrets, set_latest_status
from kubeemu.helmrun import helm_binary
from talos_sim.fixtures import EXAMPLE_CP, EXAMPLE_VIP, EXAMPLE_WORKER, TalosSim

CHART = Path(__file__).parent / "charts" / "traefik-standin"
PIN_DIR = REPO / "phases" / "traefik"
CP, WORKER = "talos-unw-ifc", "talos-worker-1"
NS = REL = "traefik"
CP_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
PRIVILEGED = {f"pod-security.kubernetes.io/{m}": "privileged" for m in ("enforce", "audit", "warn")}
WAIT_S = 2  # traefik.wait_timeout_s: how long a doomed rollout is waited for
LIVE_EMAIL = "admin@labup-tests.dev"
SECRETS = rf"^/api/v1/namespaces/{NS}/secrets$"
HELMS = [pytest.param("4.1.4", id="helm4", marks=pytest.mark.helm),
         pytest.param("3.17.3", id="helm3", marks=pytest.mark.helm)]

# Logs each call's argv and the values file's mode, then runs the real helm (same argv, same env).
WRAPPER = """#!{python}
import json, os, stat, sys
args = sys.argv[1:]
modes = [oct(stat.S_IMODE(os.stat(args[i + 1]).st_mode)) for i, a in enumerate(args) if a == "-f"]
with open({log!r}, "a") as fh:
    fh.write(json.dumps([args, modes]) + "\\n")
os.execv({real!r}, [{real!r}, *args])
"""


# -- the emulated cluster ---------------------------------------------------------------------------


def honest_scheduler(pod: dict[str, Any], nodes: list[dict[str, Any]]) -> str | None:
    """kube-scheduler's filters that matter here: nodeSelector, taints (NoSchedule) vs tolerations."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    tolerations = spec.get("tolerations") or []

    def tolerated(taint: dict[str, Any]) -> bool:
        return any((t.get("key") in (None, "", taint["key"])) and t.get("effect") in (None, "", taint["effect"])
                   and (t.get("operator") == "Exists" or t.get("value") == taint.get("value"))
                   for t in tolerations)

    for node in sorted(nodes, key=lambda n: n["metadata"]["name"]):
        labels = node["metadata"].get("labels") or {}
        if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
            continue
        if all(tolerated(t) for t in (node.get("spec") or {}).get("taints") or []
               if t["effect"] in ("NoSchedule", "NoExecute")):
            return str(node["metadata"]["name"])
    return None


def taint(emu: KubeEmulator, node: str, *taints: dict[str, str]) -> None:
    obj = emu.get("v1", "Node", node)
    obj["spec"]["taints"] = [*(obj["spec"].get("taints") or []), *taints]
    emu.update("v1", "Node", obj)


@pytest.fixture
def emu() -> Iterator[KubeEmulator]:
    with KubeEmulator(nodes=(CP, WORKER)) as emulator:
        node = emulator.get("v1", "Node", CP)
        node["metadata"]["labels"]["node-role.kubernetes.io/control-plane"] = ""
        emulator.update("v1", "Node", node)
        taint(emulator, CP, CP_TAINT)
        emulator.set_scheduler(honest_scheduler)
        emulator.create("v1", "Namespace", {"metadata": {"name": NS, "labels": PRIVILEGED}})
        yield emulator
    assert not emulator.internal_errors, emulator.internal_errors


def configure_vip(sim: TalosSim) -> None:
    """The VIP configured on the control plane (the vip phase's result): Talos elects it there."""
    with sim.edit() as lab:
        node = lab.node(EXAMPLE_CP)
        node.config = node.config.rstrip("\n") + (
            f"\n---\napiVersion: v1alpha1\nkind: Layer2VIPConfig\nname: {EXAMPLE_VIP}\nlink: ens18\n")


# -- a lab.yaml for all that, and the runs ------------------------------------------------------------


class TraefikLab:
    def __init__(self, emu: KubeEmulator, sim: TalosSim, root: Path, version: str) -> None:
        self.emu, self.sim, self.version = emu, sim, version
        self.dir = root / "lab"
        self.dir.mkdir(exist_ok=True)
        self.path = self.dir / "lab.yaml"
        self.kubeconfig = emu.write_kubeconfig(root / "kube" / "config")
        self.helm_log = root / "helm-calls.log"
        self.bin = root / f"helm-{version}"
        self.bin.mkdir(exist_ok=True)
        wrapper = self.bin / "helm"
        wrapper.write_text(WRAPPER.format(python=sys.executable, log=str(self.helm_log),
                                          real=str(helm_binary(version))))
        wrapper.chmod(0o755)
        self.tmp = root / "labup-tmp"  # labup's TMPDIR: no values file may outlive a call
        self.tmp.mkdir(exist_ok=True)
        home = root / "home"
        self.env = {"HOME": str(home), "HELM_CACHE_HOME": str(home / "cache"),
                    "HELM_CONFIG_HOME": str(home / "config"), "HELM_DATA_HOME": str(home / "data"),
                    "TMPDIR": str(self.tmp)}
        self.values_file = self.dir / "extra-values.yaml"
        self.chart: dict[str, str] = {"chart": str(CHART)}  # where every lab.yaml written takes it from
        self.write()

    def write(self, *, extra_values: dict[str, Any] | None = None, **traefik: Any) -> None:
        data = example_data()
        data["nodes"] = [{"name": CP, "address": EXAMPLE_CP, "role": "controlplane"},
                         {"name": WORKER, "address": EXAMPLE_WORKER, "role": "worker"}]
        data["vip"] = {"address": EXAMPLE_VIP, "interface": "ens18", "wait_timeout_s": 2}
        data["kubernetes"] = {"kubeconfig": str(self.kubeconfig), "timeout_s": 5}
        data["helm"] = {"version": self.version, "install_dir": str(self.bin)}
        # a real apply refuses a reserved domain (Let's Encrypt would): an ordinary one, never contacted
        data["traefik"]["acme"] = {**data["traefik"]["acme"], "email": LIVE_EMAIL}
        data["traefik"].update({"wait_timeout_s": WAIT_S, **self.chart, **traefik})
        if extra_values is not None:
            self.values_file.write_text(yaml.safe_dump(extra_values))
            data["traefik"]["values"] = str(self.values_file)
        data["retry"] = {"attempts": 3, "initial_s": 0.01, "max_s": 0.05, "total_s": 10}
        self.path.write_text(yaml.safe_dump(data))

    def labup(self, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
        result = run_labup("-c", str(self.path), "--json", *args, env=self.env, timeout=120)
        assert not list(self.tmp.iterdir()), "labup left a temporary file behind"
        return result, json.loads(result.stdout)

    # -- what the cluster saw --

    def revisions(self) -> list[tuple[int, str]]:
        return [(int(s["metadata"]["labels"]["version"]), s["metadata"]["labels"]["status"])
                for s in release_secrets(self.emu, NS, REL)]

    def release(self, revision: int | None = None) -> dict[str, Any]:
        secrets = release_secrets(self.emu, NS, REL)
        secret = secrets[-1] if revision is None else next(
            s for s in secrets if int(s["metadata"]["labels"]["version"]) == revision)
        return decode_release(secret)

    def secret_posts(self) -> int:
        return len(self.emu.log.entries("POST", SECRETS))

    def writes(self) -> list[tuple[str, str]]:
        return [(e.method, e.path) for e in self.emu.log.entries(writes_only=True)]

    def pods(self) -> list[dict[str, Any]]:
        return self.emu.list("v1", "Pod", NS)

    def helm_calls(self) -> list[tuple[list[str], list[str]]]:
        if not self.helm_log.exists():
            return []
        return [tuple(json.loads(line)) for line in self.helm_log.read_text().splitlines()]

    def helm(self, *args: str) -> None:
        """The real helm, straight (no labup): to set a release up as a user's own helm would."""
        env = {**os.environ, **self.env}
        result = subprocess.run([str(helm_binary(self.version)), *args, "-n", NS, "--kubeconfig", str(self.kubeconfig)],
                                env=env, capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def chart_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mirror]:
    """A chart repository on 127.0.0.1 holding the stand-in chart, packaged and indexed by real helm
    (relative URLs in index.yaml: the repo works at whatever port it is served on)."""
    helm, out = helm_binary("4.1.4"), tmp_path_factory.mktemp("chart-repo")
    env = {**os.environ, "HOME": str(out / "home")}
    for args in (["package", str(CHART), "-d", str(out)], ["repo", "index", str(out)]):
        subprocess.run([str(helm), *args], env=env, check=True, capture_output=True, timeout=60)
    files = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert set(files) == {"index.yaml", "traefik-41.3.0.tgz"}
    with Mirror(files) as mirror:
        yield mirror


@pytest.fixture
def make_lab(emu: KubeEmulator, talos_sim: Callable[..., TalosSim], tmp_path: Path) -> Callable[..., TraefikLab]:
    def make(version: str, vip: bool = True) -> TraefikLab:
        sim = talos_sim()
        if vip:
            configure_vip(sim)
            assert sim.holder() == EXAMPLE_CP
        return TraefikLab(emu, sim, tmp_path, version)

    return make


def steps(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["step"]: s for s in doc["steps"] if s["phase"] == "traefik"}


def statuses(doc: dict[str, Any]) -> dict[str, str]:
    return {name: s["status"] for name, s in steps(doc).items()}


# -- the stand-in chart is the pinned chart's twin --------------------------------------------------


def test_standin_chart_ships_the_pinned_schema() -> None:
    pin = yaml.safe_load((PIN_DIR / "chart.yaml").read_text())
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert (chart["name"], chart["version"], chart["appVersion"]) == (pin["name"], pin["version"], pin["app_version"])
    assert hashlib.sha256((CHART / "values.schema.json").read_bytes()).hexdigest() == pin["schema_sha256"]


# -- install, converge, dry run ------------------------------------------------------------------------


@pytest.mark.helm
@pytest.mark.parametrize(("version", "source"), [("4.1.4", "path"), ("3.17.3", "repo")], ids=["helm4-path",
                                                                                          "helm3-repo"])
def test_install_converge_and_dry_run_diff(version: str, source: str, make_lab: Callable[..., TraefikLab],
                                          chart_repo: Mirror) -> None:
    """Both majors, and both ways of getting the chart: a local folder, and repo/chart from a chart
    repository (`repo add --force-update` + the pinned `--version`, as with the real Traefik repo)."""
    lab = make_lab(version)
    if source == "repo":
        lab.chart = {"chart": "standin/traefik", "repo_url": chart_repo.url}
        lab.write()
    dry, doc = lab.labup("phase", "traefik", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert statuses(doc) == {"placement": "ok", "release": "would-change", "pod": "would-change"}
    release = steps(doc)["release"]
    assert release["summary"].startswith(f"new release: install {REL} in namespace {NS}, chart traefik-41.3.0, "
                                         f"pinned to {CP}")
    assert "+  kubernetes.io/hostname: talos-unw-ifc" in release["diff"]
    assert "+hostNetwork: true" in release["diff"]
    if source == "path":
        assert "+++ manifest labup would install (helm template)" in release["diff"]
    else:
        assert "(manifest diff: only for a local chart; standin/traefik 41.3.0 is fetched" in release["diff"]
    assert lab.writes() == [] and chart_repo.gets == []  # a dry run writes nothing, fetches nothing

    first, doc = lab.labup("phase", "traefik")
    assert first.returncode == 0, first.stderr
    assert statuses(doc)["release"] == "changed"
    assert statuses(doc)["pod"] in ("ok", "changed")  # ok: already Ready when helm's wait ended
    assert steps(doc)["pod"]["summary"].endswith(f"is Running and Ready on {CP} on the host network")
    assert lab.revisions() == [(1, "deployed")]
    [pod] = lab.pods()
    assert (pod["spec"]["nodeName"], pod["status"]["phase"], pod["spec"]["hostNetwork"]) == (CP, "Running", True)
    assert pod["spec"]["nodeSelector"] == {"kubernetes.io/hostname": CP}
    assert CP_TAINT | {"operator": "Exists"} in pod["spec"]["tolerations"]
    dep = lab.emu.get("apps/v1", "Deployment", "traefik", NS)
    assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 1, "maxSurge": 0}
    # the flags of the installed major, the pinned chart, values from a private file
    [(upgrade, modes)] = [(a, m) for a, m in lab.helm_calls() if a[:2] == ["upgrade", "--install"]]
    native = ["--rollback-on-failure", "--wait=watcher"] if version.startswith("4") else ["--atomic", "--wait"]
    assert all(flag in upgrade for flag in native), upgrade
    assert upgrade[upgrade.index("--timeout") + 1] == f"{WAIT_S}s"
    assert upgrade[upgrade.index("--kubeconfig") + 1] == str(lab.kubeconfig)
    assert modes == ["0o600"] and "--reset-values" in upgrade and "--create-namespace" not in upgrade
    assert LIVE_EMAIL not in " ".join(upgrade)  # values never on the command line
    if source == "repo":
        assert ["repo", "add", "--force-update", "standin", chart_repo.url] in [a for a, _ in lab.helm_calls()]
        assert upgrade[upgrade.index("--install") + 2] == "standin/traefik"
        assert upgrade[upgrade.index("--version") + 1] == "41.3.0"
        assert "GET /traefik-41.3.0.tgz" in chart_repo.gets

    posts = lab.secret_posts()
    writes = len(lab.writes())
    calls = len(lab.helm_calls())
    again, doc = lab.labup("phase", "traefik")
    assert again.returncode == 0, again.stderr
    assert statuses(doc) == {"placement": "ok", "release": "ok", "pod": "ok"}
    assert (lab.secret_posts(), len(lab.writes())) == (posts, writes)  # converged: no helm write at all
    # converged: the release read from Helm's records (no history/status/get), and no render: the chart
    # already accepted these exact values at this version (a changed value renders again, below)
    assert [a[0] for a, _ in lab.helm_calls()[calls:]] == ["version"]

    lab.write(acme={"email": "ops@labup-tests.dev"})
    dry, doc = lab.labup("phase", "traefik", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    diff = steps(doc)["release"]["diff"]
    assert "--- values of revision 1 (deployed)" in diff
    assert f"-      email: {LIVE_EMAIL}\n+      email: ops@labup-tests.dev" in diff
    if source == "path":
        assert f'-            - "--certificatesresolvers.letsencrypt.acme.email={LIVE_EMAIL}"' in diff
        assert "template" in [a[0] for a, _ in lab.helm_calls()[calls:]]  # new values: rendered first
    assert len(lab.writes()) == writes


# -- failures: helm's native rollback, labup's own check and undo -----------------------------------


@pytest.mark.parametrize("version", HELMS)
def test_upgrade_that_never_gets_ready_is_rolled_back(version: str, make_lab: Callable[..., TraefikLab]) -> None:
    lab = make_lab(version)
    assert lab.labup("phase", "traefik")[0].returncode == 0
    values_before = lab.release(1)["config"]
    lab.emu.never_ready("traefik", image="docker.io/traefik:v9.9.9-broken")
    lab.write(extra_values={"image": {"tag": "v9.9.9-broken"}})

    failed, doc = lab.labup("phase", "traefik")
    assert failed.returncode == 1, failed.stderr
    if version.startswith("4"):
        # helm waited, gave up, and rolled back itself (--rollback-on-failure)
        assert statuses(doc)["release"] == "failed"
        assert "helm rolled it back to revision 1, the one live before this run" in doc["error"]
        assert "not ready" in doc["error"]
        assert lab.revisions() == [(1, "superseded"), (2, "failed"), (3, "deployed")]
    else:
        # helm 3 --wait calls a 1-replica, maxUnavailable-1 Deployment ready with no pod ready: labup's
        # own check catches it, and undoes the release (helm rollback to the revision before this run)
        assert statuses(doc) == {"placement": "ok", "release": "changed", "pod": "failed"}
        assert "never became Ready" in doc["error"]
        [undone] = doc["undone"]
        assert (undone["step"], undone["status"]) == ("release", "undone")
        assert "rolled release traefik back to revision 1" in undone["summary"]
        assert lab.revisions() == [(1, "superseded"), (2, "superseded"), (3, "deployed")]
    assert lab.release()["config"] == values_before
    dep = lab.emu.get("apps/v1", "Deployment", "traefik", NS)
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "docker.io/traefik:v3.7.11"


@pytest.mark.helm
def test_write_error_during_upgrade_is_rolled_back_by_helm3_atomic(make_lab: Callable[..., TraefikLab]) -> None:
    """Helm 3's own --atomic rollback (its --wait cannot fail here, see above): a 500 on the
    Deployment write. (Helm 4's --rollback-on-failure is the never-ready case above.)"""
    lab = make_lab("3.17.3")
    assert lab.labup("phase", "traefik")[0].returncode == 0
    lab.write(acme={"email": "ops@labup-tests.dev"})
    lab.emu.inject_fault("PATCH", rf"^/apis/apps/v1/namespaces/{NS}/deployments/traefik$", 500, count=1)
    failed, doc = lab.labup("phase", "traefik")
    assert failed.returncode == 1, failed.stderr
    assert "helm rolled it back to revision 1, the one live before this run" in doc["error"]
    assert "atomic" in doc["error"]
    assert lab.revisions() == [(1, "superseded"), (2, "failed"), (3, "deployed")]
    assert lab.release()["config"] == lab.release(1)["config"]


@pytest.mark.parametrize("version", HELMS)
def test_failed_fresh_install_leaves_no_release(version: str, make_lab: Callable[..., TraefikLab]) -> None:
    lab = make_lab(version)
    lab.emu.never_ready("traefik")
    failed, doc = lab.labup("phase", "traefik")
    assert failed.returncode == 1, failed.stderr
    if version.startswith("4"):
        assert "helm uninstalled it: no release is left" in doc["error"]
    else:
        assert "uninstalled release traefik from namespace traefik (this run installed it)" in \
            doc["undone"][0]["summary"]
    assert release_secrets(lab.emu, NS, REL) == []
    assert lab.emu.find("apps/v1", "Deployment", "traefik", NS) is None
    assert lab.pods() == []


@pytest.mark.parametrize("version", HELMS)
def test_stuck_release_is_diagnosed_with_the_command_that_unsticks_it(
        version: str, make_lab: Callable[..., TraefikLab]) -> None:
    lab = make_lab(version)
    lab.helm("upgrade", "--install", REL, str(CHART))
    lab.helm("upgrade", "--install", REL, str(CHART), "--set", "deployment.replicas=1")
    set_latest_status(lab.emu, NS, REL, "pending-upgrade")  # as an interrupted `helm upgrade` leaves it
    writes = len(lab.writes())
    stuck, doc = lab.labup("phase", "traefik")
    assert stuck.returncode == 1, stuck.stderr
    assert "pre-flight failed, nothing was changed" in doc["error"]
    assert "stuck in pending-upgrade (revision 2)" in doc["error"]
    assert f"helm rollback traefik 1 -n traefik --kubeconfig {lab.kubeconfig}" in doc["hint"]
    assert len(lab.writes()) == writes


@pytest.mark.helm
def test_stuck_first_install_is_told_to_uninstall(make_lab: Callable[..., TraefikLab]) -> None:
    lab = make_lab("4.1.4")
    lab.helm("upgrade", "--install", REL, str(CHART))
    set_latest_status(lab.emu, NS, REL, "pending-install")
    dry, doc = lab.labup("phase", "traefik", "--dry-run")
    assert dry.returncode == 1
    release = steps(doc)["release"]
    assert release["status"] == "failed"
    assert "stuck in pending-install (revision 1)" in release["error"]
    assert f"helm uninstall traefik -n traefik --kubeconfig {lab.kubeconfig}" in release["hint"]


# -- placement ------------------------------------------------------------------------------------------


@pytest.mark.helm
def test_no_vip_holder_stops_before_any_cluster_write(make_lab: Callable[..., TraefikLab]) -> None:
    lab = make_lab("4.1.4", vip=False)
    result, doc = lab.labup("phase", "traefik")
    assert result.returncode == 1
    assert f"no control-plane node holds the VIP {EXAMPLE_VIP} yet" in doc["error"]
    assert "labup phase vip" in doc["hint"]
    assert lab.writes() == []
    assert not any(a[:2] == ["upgrade", "--install"] for a, _ in lab.helm_calls())


@pytest.mark.helm
def test_untolerated_taint_on_the_vip_node_stops_before_install(
        emu: KubeEmulator, make_lab: Callable[..., TraefikLab]) -> None:
    lab = make_lab("4.1.4")
    taint(emu, CP, {"key": "dedicated", "value": "storage", "effect": "NoSchedule"})
    result, doc = lab.labup("phase", "traefik")
    assert result.returncode == 1
    assert (f"Traefik cannot run on {CP}, which holds the VIP {EXAMPLE_VIP}: node {CP} has the taint "
            "dedicated=storage:NoSchedule, which Traefik does not tolerate") in doc["error"]
    assert lab.writes() == []


@pytest.mark.helm
def test_pod_on_another_node_is_the_connection_paradox(emu: KubeEmulator, make_lab: Callable[..., TraefikLab]) -> None:
    lab = make_lab("4.1.4")
    emu.set_scheduler(lambda pod, nodes: WORKER)  # a scheduler that ignores Traefik's pinning
    result, doc = lab.labup("phase", "traefik")
    assert result.returncode == 1
    assert f"Traefik runs on {WORKER}, but the VIP {EXAMPLE_VIP} is held by {CP}" in doc["error"]
    assert "connection paradox" in doc["error"]
    assert release_secrets(emu, NS, REL) == []  # undone: this run installed it


@pytest.mark.helm
def test_pod_security_rejection_says_label_the_namespace(emu: KubeEmulator,
                                                         make_lab: Callable[..., TraefikLab]) -> None:
    def baseline(req: AdmissionRequest) -> None:
        if req.rt.kind == "Pod" and req.operation == "CREATE" and req.obj["spec"].get("hostNetwork"):
            raise ApiError(403, f'pods "{req.obj["metadata"]["name"]}" is forbidden: violates PodSecurity '
                                '"baseline:latest": host namespaces (hostNetwork=true)')

    emu.add_admission_hook(baseline)
    lab = make_lab("4.1.4")
    result, doc = lab.labup("phase", "traefik")
    assert result.returncode == 1
    assert 'violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true)' in doc["error"]
    assert doc["hint"] == "label the namespace: labup phase namespace"


# -- pure parts ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("stderr", "write", "kind"), [
    ('Error: kubernetes cluster unreachable: Get "http://127.0.0.1:1/version": dial tcp 127.0.0.1:1: '
     "connect: connection refused", True, helm_adapter.HelmUnavailable),
    ("Error: the server is currently unable to handle the request", False, helm_adapter.HelmUnavailable),
    ("Error: UPGRADE FAILED: context deadline exceeded", False, helm_adapter.HelmUnavailable),
    ("Error: UPGRADE FAILED: context deadline exceeded", True, helm_adapter.HelmFailed),
    ("Error: UPGRADE FAILED: another operation (install/upgrade/rollback) is in progress", True,
     helm_adapter.HelmReleaseBusy),
    ("Error: release: not found", False, helm_adapter.HelmNotFound),
    ('level=WARN msg="upgrade failed"\nError: UPGRADE FAILED: release traefik failed, and has been rolled back '
     "due to rollback-on-failure being set: resource Deployment/traefik/traefik not ready\ncontext deadline "
     "exceeded", True, helm_adapter.HelmRolledBack),
    ('Error: create: failed to create: namespaces "nons" not found', True, helm_adapter.HelmFailed),
])
def test_helm_errors_are_classified(stderr: str, write: bool, kind: type) -> None:
    error = helm_adapter.classify("upgrade --install", stderr, 1, write=write)
    assert type(error) is kind
    assert "level=WARN" not in str(error)


def test_helm_error_hints_and_rollback_action() -> None:
    error = helm_adapter.classify("x", "Error: release traefik failed, and has been uninstalled due to atomic "
                                       "being set: timed out waiting for the condition", 1, write=True)
    assert isinstance(error, helm_adapter.HelmRolledBack) and error.action == "uninstalled"
    missing = helm_adapter.classify("x", 'Error: namespaces "traefik" not found', 1, write=True)
    assert missing.hint == "the release's namespace does not exist: run `labup phase namespace` first"


def test_revision_chart_name_and_version() -> None:
    rev = helm_adapter.Revision.from_json({"revision": 3, "status": "deployed", "chart": "my-chart-41.3.0-rc.1"})
    assert (rev.chart_name, rev.chart_version) == ("my-chart", "41.3.0-rc.1")
    history = [helm_adapter.Revision(n, s, "traefik-41.3.0", "", "", "") for n, s in
               [(1, "superseded"), (2, "failed"), (3, "deployed"), (4, "pending-upgrade")]]
    assert helm_adapter.last_deployed(history, before=4).revision == 3
    hint = diagnose.stuck_release("traefik", "traefik", history, lambda *a: "helm " + " ".join(a)).hint
    assert "`helm rollback traefik 3 -n traefik`" in hint


def test_values_file_is_private_and_removed() -> None:
    with helm_adapter.values_file({"y": "yes", "n": None}) as path:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert json.loads(path.read_text()) == {"y": "yes", "n": None}  # JSON: no YAML 1.1 `y` surprise
    assert not path.exists() and not path.parent.exists()


def test_comparable_ignores_helm_dropped_nulls_and_float_ints() -> None:
    assert comparable({"a": None, "b": {"c": None, "d": 1.0}, "e": [{"f": None}]}) == {"b": {"d": 1}, "e": [{}]}


def test_diagnose_port_holders_and_taints() -> None:
    ours = {"metadata": {"name": "traefik-x", "namespace": NS},
            "spec": {"hostNetwork": True, "containers": [{"ports": [{"containerPort": 80}, {"containerPort": 443}]}]}}
    other = {"metadata": {"name": "nginx", "namespace": "web"}, "status": {"phase": "Running"},
             "spec": {"containers": [{"ports": [{"containerPort": 8080, "hostPort": 80}]}]}}
    assert diagnose.port_holders(ours, [ours, other]) == ["web/nginx (port 80)"]
    tol = [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}]
    assert diagnose.untolerated([CP_TAINT, {"key": "x", "effect": "NoExecute"}], tol) == [
        {"key": "x", "effect": "NoExecute"}]
