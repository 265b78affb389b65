"""SimLab: the whole simulated lab in which the real `labup` command runs, apply to verify.

    with SimLab(tmp_path) as lab:              # ~0.5 s to build
        lab.write_lab()                        # lab.yaml for this lab (overrides: write_lab(traefik={...}))
        run = lab.labup("apply")               # the real labup, in the client namespace, --json
        assert run.returncode == 0, run.stderr
        before = lab.counts(); lab.labup("apply"); assert (lab.counts() - before).writes == 0

What is real and what is simulated:
- the network: real namespaces on a bridge (netlab): cp-1 192.0.2.10, wk-1 192.0.2.11, the client
  192.0.2.100 where labup runs. ARP, HTTP and TLS between them are real; nothing leaves 192.0.2.0/24.
- Talos: the talosctl simulator (a wrapper on PATH, a state file); node names, addresses and MACs
  match the namespaces. The VIP mirror puts the VIP in the namespace of the node Talos elects.
- Kubernetes: kubeemu, listening on 127.0.0.1 *inside the client namespace* (labup and the helm it runs
  reach it there), made a Talos-like cluster by kubeemu.cluster (nodes, taint, scheduler, Pod Security).
- helm: the real binary (4.1.4 by default), behind a wrapper that logs each call.
- Traefik: the stand-in chart installs a Deployment; when its pod runs on the host network of node X,
  the pod mirror starts the stand-in HTTPS server in X's namespace.
- the nodes' disks: root/node-disks/<address>/... (lab.node_file). Traefik's acme.json is a real file
  there, in Traefik's format (e2e/acme.py), and `talosctl read` returns it as Talos would.

Everything is torn down by close() (also on a failed start): the mirrors, the stand-ins, the
emulator and its socket, the namespaces. Errors the background parts met are raised there.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from kubernetes import client, config

from .acme import AcmeSim
from .certmanager import CertManagerSim
from .counters import Counts, count, helm_calls, write_helm_wrapper
from .mirrors import PodMirror, VipMirror
from .oneshot import OneShotRunner, one_shot
from .topology import CLIENT, DEFAULT_NODES, DOMAIN, LINK, VIP, LabNode, net_nodes
from kubeemu import KubeEmulator
from kubeemu.cluster import Cluster, NodeSpec, PodOnNode, install_cluster
from kubeemu.helmrun import HELM_DIR
from netlab import CertSet, NetLab, make_cert_set
from talos_sim import Lab as TalosLab
from talos_sim.sim import TalosSim

T = TypeVar("T")
TESTS = Path(__file__).resolve().parents[1]
STANDIN_CHART = TESTS / "charts" / "traefik-standin"
CERT_MANAGER_CHART = TESTS / "charts" / "cert-manager-standin"
LABUP = str(Path(sys.executable).with_name("labup"))
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # `ip` for labup and netlab


@dataclass(frozen=True)
class LabupRun:
    """One labup invocation: its exit, its output, its --json document (if any), its wall time."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    elapsed: float

    @property
    def doc(self) -> dict[str, Any]:
        return json.loads(self.stdout) if self.stdout.strip().startswith("{") else {}

    def steps(self, phase: str | None = None) -> dict[str, dict[str, Any]]:
        """`phase/step` -> step record (or `step` -> record with `phase`)."""
        out = {}
        for s in self.doc.get("steps") or []:
            if phase is None:
                out[f"{s['phase']}/{s['step']}"] = s
            elif s["phase"] == phase:
                out[s["step"]] = s
        return out

    def checks(self) -> dict[str, dict[str, Any]]:
        """name -> check record. `labup verify` lists checks (status pass/fail/warn/skip); `labup apply`
        reports them as steps of its verify phase (status ok/failed, a skip said in the summary), which
        are mapped to the same shape here."""
        if "checks" in self.doc:
            return {c["name"]: c for c in self.doc["checks"]}
        out = {}
        for name, step in self.steps("verify").items():
            summary = step.get("summary") or ""
            status = {"ok": "pass", "failed": "fail"}.get(step["status"], step["status"])
            if status == "pass" and summary.startswith(("skip:", "warn:")):
                status = summary.split(":", 1)[0]
            out[name] = {**step, "name": name, "status": status}
        return out


class SimLab:
    def __init__(self, root: Path, *, nodes: Sequence[LabNode] = DEFAULT_NODES, talos_version: str = "v1.13.0",
                 helm_version: str = "4.1.4", chart: Path = STANDIN_CHART, domain: str = DOMAIN,
                 traefik_namespace: str = "traefik", rsa_bits: int | None = None) -> None:
        self.root = root
        self.nodes = tuple(nodes)
        self.talos_version = talos_version
        self.helm_version = helm_version
        self.chart = chart
        self.domain = domain
        self.traefik_namespace = traefik_namespace
        self.rsa_bits = rsa_bits  # the issued certificate's key: RSA of that size (Traefik's default 4096), else EC
        self.vip = VIP
        self.lab_file = root / "lab" / "lab.yaml"
        self.helm_bin = root / "helm-bin"
        self.helm_log = root / "helm-calls.jsonl"
        # the nodes' disks (talos_sim.nodefs): what `talosctl read` returns, where Traefik keeps acme.json
        self.files_dir = root / "node-disks"
        self._stack = ExitStack()
        # set by start()
        self.net: NetLab
        self.certs: CertSet
        self.sim: TalosSim
        self.emu: KubeEmulator
        self.cluster: Cluster
        self.kubeconfig: Path
        self.vip_mirror: VipMirror
        self.pod_mirror: PodMirror
        self.acme: AcmeSim
        self.env: dict[str, str]
        self._api: client.ApiClient | None = None

    # -- lifecycle ----------------------------------------------------------------------------------

    def __enter__(self) -> SimLab:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> SimLab:
        try:
            self._build()
        except BaseException:
            self._stack.close()
            raise
        return self

    def _build(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.net = self._stack.enter_context(NetLab(net_nodes(self.nodes)))
        self.certs = make_cert_set(self.root / "certs", self.domain, rsa_bits=self.rsa_bits)
        self.sim = TalosSim(self.root / "talos", self._talos_lab())
        self.emu = self._start_emulator()
        self.kubeconfig = self.emu.write_kubeconfig(self.root / "kube" / "config")
        self.cluster = install_cluster(self.emu, [NodeSpec(n.name, n.address, n.role) for n in self.nodes])
        self.acme = AcmeSim(self.emu, self.certs, self.domain, self.root / "acme", files_dir=self.files_dir,
                            addresses={n.name: n.address for n in self.nodes}).start()
        self._stack.callback(self.acme.stop)
        self.cert_manager = CertManagerSim(self.emu, self.certs).start()  # idle until its CRDs exist
        self._stack.callback(self.cert_manager.stop)
        self.pod_mirror = PodMirror(self.net, {n.name: n.netns for n in self.nodes}, self.certs.good,
                                    follow=lambda pod: pod.namespace == self.traefik_namespace and not one_shot(pod),
                                    decide=self.acme.decide, forget=self.acme.forget)
        self.cluster.on_pod_running(self.pod_mirror.on_running)
        self.one_shots = OneShotRunner(self.emu, self.files_dir, {n.name: n.address for n in self.nodes},
                                       self.root / "one-shot")
        self.cluster.on_pod_running(self.one_shots.on_running)
        self.cluster.on_pod_gone(self.pod_mirror.on_gone)
        # closed last-in first-out: the requeue thread stops, then the stand-ins, then the emulator
        self._stack.callback(self.pod_mirror.stop_all)
        self._stack.callback(self.cluster.close)
        self.vip_mirror = VipMirror(self.net, self.sim.state, self.vip, {n.address: n.netns for n in self.nodes})
        self._stack.callback(self.vip_mirror.stop)
        self.vip_mirror.start()
        real_helm = HELM_DIR / self.helm_version / "helm"
        if not os.access(real_helm, os.X_OK):
            raise FileNotFoundError(f"helm {self.helm_version} is not installed at {real_helm}: `make install`")
        write_helm_wrapper(self.helm_bin, real_helm, self.helm_log)
        self.env = self._env()

    def _talos_lab(self) -> TalosLab:
        lab = TalosLab(files_dir=str(self.files_dir))
        for n in self.nodes:
            node = lab.add_node(n.address, n.name, n.role, self.talos_version, link=LINK)
            node.links[0].mac = n.mac  # `talosctl get links` shows the namespace's real MAC
        return lab

    def _start_emulator(self) -> KubeEmulator:
        # bound inside the client namespace: 127.0.0.1 there is where labup and helm will dial
        sock = self.net.call_in(CLIENT.name, lambda: socket.create_server(("127.0.0.1", 0)))
        emu = KubeEmulator(nodes=(), listen_socket=sock)
        try:
            emu.start()
        except BaseException:
            sock.close()
            raise
        self._stack.callback(emu.stop)
        return emu

    def _env(self) -> dict[str, str]:
        home = self.root / "home"
        tmp = self.root / "tmp"
        for folder in (home, tmp):
            folder.mkdir(parents=True, exist_ok=True)
        venv_bin = str(Path(sys.executable).parent)
        return {
            **self.sim.env,  # TALOS_SIM_STATE, TALOSCONFIG (its PATH is replaced below)
            # the helm wrapper first, then talosctl; no other helm or talosctl can be found
            "PATH": os.pathsep.join([str(self.helm_bin), str(self.sim.bin_dir), venv_bin, SYSTEM_PATH]),
            "HOME": str(home),
            "HELM_CACHE_HOME": str(home / "cache"), "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
            "TMPDIR": str(tmp),
            "NO_COLOR": "1", "LANG": "C.UTF-8",
        }

    def close(self) -> None:
        """Tear everything down, then raise what the background parts ran into (if anything)."""
        errors = []
        if hasattr(self, "vip_mirror"):
            errors += [f"vip mirror: {e}" for e in self.vip_mirror.errors]
        if hasattr(self, "cluster"):
            errors += [f"pod hook: {e}" for e in self.cluster.hook_errors]
        if hasattr(self, "emu"):
            errors += [f"kubeemu: {e}" for e in self.emu.internal_errors]
        if hasattr(self, "acme"):
            errors += [f"acme: {e}" for e in self.acme.errors]
        if hasattr(self, "cert_manager"):
            errors += [f"cert-manager: {e}" for e in self.cert_manager.errors]
        if hasattr(self, "one_shots"):
            errors += [f"one-shot pod: {e}" for e in self.one_shots.errors]
        if self._api is not None:
            self._api.close()
            self._api = None
        self._stack.close()
        if errors:
            raise AssertionError("the simulated lab ran into errors:\n" + "\n".join(errors))

    # -- lab.yaml -----------------------------------------------------------------------------------

    def lab_data(self) -> dict[str, Any]:
        """The lab.yaml for this lab: short timeouts, fast retries, the test CA for https-cert."""
        return {
            "name": "tazlab",
            "nodes": [{"name": n.name, "address": n.address, "role": n.role} for n in self.nodes],
            "vip": {"address": self.vip, "interface": LINK, "wait_timeout_s": 5},
            "talos": {"talosconfig": str(self.sim.talosconfig)},
            "kubernetes": {"kubeconfig": str(self.kubeconfig), "timeout_s": 5},
            "helm": {"version": self.helm_version, "install_dir": str(self.helm_bin)},
            "traefik": {"namespace": self.traefik_namespace, "chart": str(self.chart), "domains": [self.domain],
                        "acme": {"email": "admin@labup-tests.dev"}, "wait_timeout_s": 10,
                        "cert_timeout_s": 20},
            "verify": {"timeout_s": 3, "ca_file": str(self.certs.ca.cert_path)},
            "retry": {"attempts": 4, "initial_s": 0.01, "max_s": 0.05, "total_s": 10},
        }

    def ha_lab_data(self) -> dict[str, Any]:
        """lab_data() for topology ha: cert-manager from its stand-in chart, short waits."""
        return {**self.lab_data(), "topology": "ha",
                "cert_manager": {"chart": str(CERT_MANAGER_CHART), "wait_timeout_s": 10}}

    def write_lab(self, data: dict[str, Any] | None = None, path: Path | None = None,
                  **sections: dict[str, Any] | list[Any] | str | None) -> Path:
        """Write lab.yaml (default: beside its .labup/ state in root/lab). `sections` are merged into
        the defaults one level deep: write_lab(traefik={"values": "x.yaml"}) keeps the other keys."""
        doc = copy.deepcopy(data) if data is not None else self.lab_data()
        for key, value in sections.items():
            if isinstance(value, dict) and isinstance(doc.get(key), dict):
                doc[key] = {**doc[key], **value}
            elif value is None:
                doc.pop(key, None)
            else:
                doc[key] = value
        target = path or self.lab_file
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(doc, sort_keys=False))
        return target

    # -- running labup ------------------------------------------------------------------------------

    def labup_argv(self, *args: str, json_out: bool = True, lab_file: Path | None = None) -> list[str]:
        if args[:1] == ("--version",):
            return [LABUP, *args]
        return [LABUP, "-c", str(lab_file or self.lab_file), *(["--json"] if json_out else []), *args]

    def labup(self, *args: str, json_out: bool = True, lab_file: Path | None = None, timeout: float = 180,
              env: dict[str, str] | None = None) -> LabupRun:
        """Run the real labup in the client namespace, as the operator would, and wait for it."""
        argv = self.labup_argv(*args, json_out=json_out, lab_file=lab_file)
        started = time.monotonic()
        proc = self.net.run(CLIENT.name, argv, env=self.env | (env or {}), timeout=timeout,
                            cwd=str(self.lab_file.parent))
        return LabupRun(argv, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)

    def start_labup(self, *args: str, json_out: bool = True, lab_file: Path | None = None,
                    env: dict[str, str] | None = None, **popen: Any) -> subprocess.Popen[str]:
        """labup in the background (to interrupt it, or race a second one); the lab kills it on close.
        `ip netns exec` execs labup itself, so a signal to this process reaches labup; with
        start_new_session=True it leads a process group, and os.killpg() is a terminal's Ctrl-C
        (labup and the helm it runs both get SIGINT)."""
        argv = self.labup_argv(*args, json_out=json_out, lab_file=lab_file)
        return self.net.popen(CLIENT.name, argv, env=self.env | (env or {}), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=str(self.lab_file.parent), **popen)

    def wait_until(self, what: Callable[[], Any], timeout: float = 30.0, interval: float = 0.02) -> Any:
        """Poll `what` until it returns something true (returned) or `timeout` passes (its last value)."""
        deadline = time.monotonic() + timeout
        while True:
            found = what()
            if found or time.monotonic() > deadline:
                return found
            time.sleep(interval)

    # -- looking at the lab -------------------------------------------------------------------------

    def counts(self) -> Counts:
        return count(self.sim.state, self.helm_log, self.emu)

    def helm_calls(self) -> list[list[str]]:
        return helm_calls(self.helm_log)

    def node(self, name: str) -> LabNode:
        return next(n for n in self.nodes if name in (n.name, n.netns, n.address))

    def node_file(self, node: str, path: str) -> Path:
        """The host file that is `path` on a node's disk (by name, netns or address); may not exist."""
        return self.sim.node_file(self.node(node).address, path)

    def acme_json(self, node: str, storage_dir: str = "/var/mnt/traefik") -> dict[str, Any]:
        """Traefik's acme.json on a node's disk, parsed ({} for an empty file: Traefik's "no data")."""
        raw = self.node_file(node, f"{storage_dir.rstrip('/')}/acme.json").read_bytes()
        return json.loads(raw) if raw.strip() else {}

    def arp_vip(self, timeout: float = 3.5) -> str | None:
        """The MAC the VIP resolves to from the client (None: nobody answers ARP for it)."""
        self.net.flush_neighbours(CLIENT.name)
        return self.net.resolve_mac(CLIENT.name, self.vip, timeout)

    def in_client(self, fn: Callable[[], T], timeout: float = 30.0) -> T:
        """Run fn in a thread inside the client namespace (where the API server listens)."""
        return self.net.call_in(CLIENT.name, fn, timeout)

    def k8s(self, fn: Callable[[client.CoreV1Api, client.AppsV1Api], T], timeout: float = 30.0) -> T:
        """Call the official Python client from inside the client namespace:
        lab.k8s(lambda core, apps: core.list_node())."""
        if self._api is None:
            self._api = config.new_client_from_config(config_file=str(self.kubeconfig))
        api = self._api
        return self.in_client(lambda: fn(client.CoreV1Api(api), client.AppsV1Api(api)), timeout)

    def traefik_pods(self) -> list[dict[str, Any]]:
        return self.emu.list("v1", "Pod", self.traefik_namespace)

    def running_traefik(self) -> list[PodOnNode]:
        return [p for p in self.cluster.running_pods() if p.namespace == self.traefik_namespace]

    def configure_vip_in_talos(self, *addresses: str) -> None:
        """Put the VIP in the given nodes' configs behind labup's back (Talos >= 1.12 document form),
        as a test's starting point: Talos elects a holder, the VIP mirror follows."""
        with self.sim.edit() as lab:
            for address in addresses:
                node = lab.node(address)
                node.config = node.config.rstrip("\n") + (
                    f"\n---\napiVersion: v1alpha1\nkind: Layer2VIPConfig\nname: {self.vip}\nlink: {LINK}\n")
