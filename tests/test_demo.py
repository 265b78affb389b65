"""`make demo` (tools/demo.py): labup's main job for real on the simulated lab, and it stays home.

The demo runs as `make demo` runs it (minus the install), in a user's environment full of traps: a
talosctl, helm and kubectl first on PATH that log every call and fail, a kubeconfig and a talosconfig
in HOME (~/.kube/config, ~/.talos/config) and others named by KUBECONFIG and TALOSCONFIG, all pointing
at 127.0.0.1:PORT where this test listens and counts connections. Then: exit 0, none of the fakes ran,
no connection came, the output shows apply working, verify's checks passing and a second apply
changing nothing, and nothing is left behind (network namespace, temporary folder, process).

As root it runs twice: as root (CI's `make demo`) and as the unprivileged user nobody (a laptop): the
same path, a user namespace made without root.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO
from kubeemu.helmrun import helm_binary
from netlab.nsenter import NETNS_RUN_DIR

pytestmark = pytest.mark.helm

DEMO = REPO / "tools" / "demo.py"
NOBODY = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
CHECKS = ("vip-arp", "vip-holder", "traefik-placement", "http-redirect", "https-cert", "psa-label", "helm-release")
TRAPS = ("talosctl", "helm", "kubectl")

FAKE_TOOL = textwrap.dedent("""\
    #!/bin/sh
    # a trap: the user's {name}; the demo must never run it
    echo "{name} $*" >> {log}
    exit 1
""")


class Listener:
    """127.0.0.1:PORT in this (the host's) network namespace, counting the connections it accepts."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            conn.close()

    def wait_for(self, count: int, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while self.connections < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.connections >= count

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@dataclass
class UserWorld:
    """What a user's machine holds: folders another user can use too (the demo may run as nobody)."""

    root: Path
    home: Path
    tmp: Path
    log: Path
    env: dict[str, str]


def kubeconfig(port: int) -> str:
    return textwrap.dedent(f"""\
        apiVersion: v1
        kind: Config
        clusters: [{{name: home, cluster: {{server: "https://127.0.0.1:{port}", insecure-skip-tls-verify: true}}}}]
        users: [{{name: admin, user: {{token: "not-a-real-token"}}}}]
        contexts: [{{name: home, context: {{cluster: home, user: admin}}}}]
        current-context: home
        """)


def talosconfig(port: int) -> str:
    return textwrap.dedent(f"""\
        context: home
        contexts:
          home:
            endpoints: ["127.0.0.1:{port}"]
            nodes: ["127.0.0.1"]
        """)


@pytest.fixture
def world() -> Iterator[tuple[UserWorld, Listener]]:
    listener = Listener()
    root = Path(tempfile.mkdtemp(prefix="labup-trap-"))  # pytest's tmp_path is 0700: nobody cannot enter
    try:
        home, tmp, bin_dir, logs = (root / n for n in ("home", "tmp", "bin", "logs"))
        for folder in (home / ".kube", home / ".talos", tmp, bin_dir, logs):
            folder.mkdir(parents=True)
        log = logs / "calls.log"
        for name in TRAPS:
            fake = bin_dir / name
            fake.write_text(FAKE_TOOL.format(name=name, log=log))
        (home / ".kube" / "config").write_text(kubeconfig(listener.port))
        (home / ".talos" / "config").write_text(talosconfig(listener.port))
        (root / "kubeconfig").write_text(kubeconfig(listener.port))
        (root / "talosconfig").write_text(talosconfig(listener.port))
        for path in [root, *root.rglob("*")]:  # everyone may read and run; the user's folders are theirs
            path.chmod(0o755)
        if os.geteuid() == 0:
            for path in (home, tmp, logs):
                os.chown(path, 65534, 65534)
        env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "HOME": str(home),
               "TMPDIR": str(tmp), "KUBECONFIG": str(root / "kubeconfig"), "TALOSCONFIG": str(root / "talosconfig"),
               "HELM_KUBECONTEXT": "home", "TALOS_HOME": str(home / ".talos")}
        yield UserWorld(root, home, tmp, log, env), listener
    finally:
        listener.close()
        shutil.rmtree(root, ignore_errors=True)


def namespaces() -> set[str]:
    try:
        return set(os.listdir(NETNS_RUN_DIR))
    except FileNotFoundError:
        return set()


def ns_of(pid: int | str, kind: str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/{kind}")
    except OSError:
        return None


def pids() -> set[int]:
    return {int(p) for p in os.listdir("/proc") if p.isdigit()}


def demo_processes(before: set[int]) -> list[str]:
    """Processes started since `before` that belong to a demo: in other user or PID namespaces than this
    one (the demo's private ones), or running tools/demo.py."""
    own = {kind: ns_of("self", kind) for kind in ("user", "pid")}
    found = []
    for pid in pids() - before:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile
        foreign = any(ns_of(pid, kind) not in (None, own[kind]) for kind in own)
        if foreign or str(DEMO) in cmdline:
            found.append(f"{pid}: {cmdline.strip()}")
    return found


def nobody_can_search(folder: Path) -> bool:
    st = folder.stat()
    return bool(st.st_mode & 0o001 or (st.st_uid == 65534 and st.st_mode & 0o100)
                or (st.st_gid == 65534 and st.st_mode & 0o010))


def as_nobody(stash: Path) -> tuple[str, ...]:
    """setpriv to nobody, with this venv's base interpreter within nobody's reach. Where it lies in a
    folder nobody cannot enter (a pyenv Python under root's 0700 home, as on CI's machines), it is shown
    through a private mount namespace: a tmpfs over that folder holding just the interpreter's tree (on
    a laptop, the user's own Python is theirs to run)."""
    base = Path(os.path.realpath(sys.executable)).parents[1]
    hidden = next((p for p in reversed([base, *base.parents]) if not nobody_can_search(p)), None)
    if hidden is None:
        return NOBODY
    script = ('mount --bind "$1" "$2" && mount -t tmpfs -o mode=0755 labup-test "$3" && mkdir -p "$1" '
              '&& mount --move "$2" "$1" && shift 3 && exec "$@"')
    stash.mkdir()
    return ("unshare", "--mount", "--", "sh", "-c", script, "sh", str(base), str(stash), str(hidden), *NOBODY)


def run_demo(prefix: tuple[str, ...], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """tools/demo.py as `make demo` runs it; on a timeout the whole process group is killed."""
    proc = subprocess.Popen([*prefix, sys.executable, str(DEMO)], env=env, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"the demo did not finish in 90 s:\n{out[-4000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, "")


def section(out: str, start: str, end: str) -> str:
    return out[out.index(start):out.index(end)]


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


@pytest.mark.parametrize("as_user", ["self", "nobody"])
def test_demo_runs_labups_main_job_and_stays_home(world: tuple[UserWorld, Listener], as_user: str) -> None:
    user, listener = world
    helm_binary("4.1.4")  # skips saying how to get it
    prefix: tuple[str, ...] = ()
    if as_user == "nobody":
        if os.geteuid() != 0:
            pytest.skip("needs root: to run the demo as the unprivileged user nobody")
        prefix = as_nobody(user.root / "python")
        probe = subprocess.run([*prefix, sys.executable, "-c", f"open({str(DEMO)!r}).read()"],
                               capture_output=True, text=True, timeout=30)
        assert probe.returncode == 0, (f"the demo cannot be run as uid 65534 (is a folder above {REPO} not "
                                       f"world-readable?): {probe.stderr.strip()}")
    socket.create_connection(("127.0.0.1", listener.port), timeout=5).close()  # the count works...
    assert listener.wait_for(1)
    listener.connections = 0  # ...and starts from 0
    netns_before, pids_before = namespaces(), pids()
    tmp_before = {p.name for p in Path("/tmp").glob("labup-demo-*")}

    # `make demo` installs no test tools: a pytest that cannot be imported proves the demo needs none
    no_pytest = user.home.parent / "no-pytest"
    no_pytest.mkdir(exist_ok=True)
    (no_pytest / "pytest.py").write_text('raise ImportError("the demo must not need pytest")\n')
    no_pytest.chmod(0o755)
    run = run_demo(prefix, {**user.env, "PYTHONPATH": str(no_pytest)})
    out = run.stdout
    if "The live demo cannot run here" in out and run.returncode == 0:
        pytest.skip(out.split("The live demo cannot run here: ", 1)[1].split("\n", 1)[0])

    assert run.returncode == 0, out[-6000:]
    # the user's tools, configs and addresses were never used
    assert not user.log.exists() or user.log.read_text() == "", user.log.read_text()
    assert listener.connections == 0
    # labup's main job, in its human form: apply changed things, verify passed every check...
    applied = section(out, "[2/5]", "[3/5]")
    for step in ("vip/cp-1", "namespace/pod-security", "traefik/release"):
        assert re.search(rf"^  changed +{step}: ", applied, re.M), (step, applied)
    assert "made 1 Talos patch(es), 1 helm install/upgrade(s)" in applied
    verified = section(out, "[3/5]", "[4/5]")
    for check in CHECKS:
        assert re.search(rf"^  pass +{check}: ", verified, re.M), (check, verified)
    # the certificate is only on Traefik's node yet: acme-backup advises `labup backup`
    assert re.search(r"^  warn +acme-backup: no backup of the certificates", verified, re.M), verified
    assert "-> exit 0: no check failed" in verified
    # ...and the second apply changed nothing
    again = section(out, "[4/5]", "[5/5]")
    assert "$ labup -c lab.yaml apply --detailed-exitcode" in again
    assert not re.search(r"^  changed +[\w-]+/[\w-]+: ", again, re.M), again
    assert "-> exit 0; made 0 Talos patch(es), 0 helm install/upgrade(s), 0 Kubernetes write(s)" in again
    assert "labup demo: every step passed" in out
    # nothing left behind: no namespace (the demo's are never in this /run/netns at all), no folder,
    # no process
    leaked = [n for n in namespaces() - netns_before
              if not ((m := re.match(r"nlab-(\d+)-", n)) and int(m[1]) > 1 and _alive(int(m[1])))]
    assert leaked == []  # a concurrent test's own namespaces aside
    assert list(user.tmp.iterdir()) == []
    # no new folder (another demo on the machine, started before or during this one, is its own business)
    assert {p.name for p in Path("/tmp").glob("labup-demo-*")} - tmp_before == set()
    assert demo_processes(pids_before) == []
