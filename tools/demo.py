#!/usr/bin/env python3
"""`make demo`: labup's main job for real, on the bundled simulated lab, without leaving this machine.

    labup apply             every phase: the Talos VIP patch, helm, the namespace label, Traefik, verify
    labup verify            every check again: ARP for the VIP, its holder, HTTP -> HTTPS, the certificate
    labup apply (again)     converged: it changes nothing

The lab is the test suite's (tests/e2e/simlab.py): a talosctl simulator, a Kubernetes API emulator, the
real helm 4.1.4 with a stand-in Traefik chart, an ACME stand-in, and real Linux network namespaces on a
bridge (192.0.2.0/24) where ARP, HTTP and TLS are real packets.

Staying home, by construction rather than by care:
- the whole demo runs under `unshare --user --map-root-user --net --mount --pid`: a user namespace
  (no root needed; root takes the same path), a network namespace with only `lo` (no packet can reach
  a real network), a mount namespace (a private tmpfs on /run holds the lab's /run/netns entries, and
  one on the temporary folder holds every file of the lab), a PID namespace (when the demo ends, the
  kernel ends every process it started);
- labup, helm and the talosctl simulator get an environment built here, not the user's: their own
  PATH, HOME, TMPDIR, TALOSCONFIG, KUBECONFIG and HELM_* homes; the user's talosctl, talosconfig,
  kubeconfig and kube context are never looked at.

Without user namespaces (macOS, a kernel or policy that forbids them) it says why in one sentence and
shows the offline plan (`labup -c examples/lab.yaml apply --dry-run`) instead; under CI
(LABUP_NO_SKIPS=1) that is a failure.

Needs no pytest: the test harness is imported from tests/ as tools/bench_lab.py does.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported from tests/ at run time, inside the namespaces
    from e2e.counters import Counts
    from e2e.simlab import SimLab

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
EXAMPLE = REPO / "examples" / "lab.yaml"
HELM_VERSION = "4.1.4"
HELM = REPO / ".tools" / "helm" / HELM_VERSION / "helm"
LABUP = Path(sys.executable).with_name("labup")  # this venv's labup (not resolved: the venv's own)
# the tools the demo itself runs (unshare, ip, mount) come from here, never from the user's PATH
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ISOLATE = ("--user", "--map-root-user", "--net", "--mount", "--pid", "--fork", "--mount-proc", "--kill-child")
TMP_PREFIX = "labup-demo-"
TIMEOUT_S = 300  # one labup command
ROLLBACK_S = 15  # what labup is given to roll back and exit after Ctrl-C


def say(text: str = "") -> None:
    print(text, flush=True)


# -- outside: the user's process --------------------------------------------------------------------


def clean_env(home: Path) -> dict[str, str]:
    """Everything the namespaced demo inherits: nothing of the user's environment."""
    return {"PATH": SYSTEM_PATH, "HOME": str(home), "TMPDIR": str(home), "LANG": "C.UTF-8", "NO_COLOR": "1"}


def system_tool(name: str) -> str | None:
    return shutil.which(name, path=SYSTEM_PATH)


def isolated(*argv: str) -> list[str]:
    """argv run in fresh user, network, mount and PID namespaces (`unshare`, from the system path)."""
    return [system_tool("unshare") or "unshare", *ISOLATE, "--", *argv]


def live_demo_unavailable() -> str | None:
    """Why this machine cannot run the live demo (one sentence), or None when it can: it tries the very
    namespaces and mounts the demo uses (about 0.1 s)."""
    if not sys.platform.startswith("linux"):
        return f"it needs Linux network namespaces, and this is {sys.platform}"
    for tool, package in (("unshare", "util-linux"), ("mount", "util-linux"), ("ip", "iproute2")):
        if system_tool(tool) is None:
            return f"it needs the `{tool}` command ({package}), which is not in {SYSTEM_PATH}"
    with tempfile.TemporaryDirectory(prefix=TMP_PREFIX) as home:
        try:
            probe = subprocess.run(isolated(sys.executable, "-I", __file__, "--probe"), env=clean_env(Path(home)),
                                   stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"this system could not start a user namespace ({exc})"
    if probe.returncode == 0:
        return None
    said = (probe.stderr.strip().splitlines() or [f"exit {probe.returncode}"])[-1]
    reason = f"this system does not let {'root' if os.geteuid() == 0 else 'a user'} create private user and " \
             f"network namespaces (`unshare --user --net`: {said})"
    try:
        if Path("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").read_text().strip() == "1":
            reason += "; AppArmor restricts them here (sysctl kernel.apparmor_restrict_unprivileged_userns=1)"
    except OSError:
        pass
    return reason


def offline_plan() -> int:
    """The fallback: the offline plan for the bundled example, with an environment of its own too."""
    with tempfile.TemporaryDirectory(prefix=TMP_PREFIX) as home:
        env = {**clean_env(Path(home)), "PATH": f"{LABUP.parent}{os.pathsep}{SYSTEM_PATH}"}
        say(f"$ labup -c {EXAMPLE.relative_to(REPO)} apply --dry-run")
        return subprocess.run([str(LABUP), "-c", str(EXAMPLE), "apply", "--dry-run"], env=env, cwd=REPO,
                              stdin=subprocess.DEVNULL, check=False).returncode


def sweep_stale() -> None:
    """Temporary folders of demos that were killed (their pid is gone): empty, their tmpfs went with them."""
    for path in Path(tempfile.gettempdir()).glob(f"{TMP_PREFIX}*"):
        m = re.match(rf"{TMP_PREFIX}(\d+)-", path.name)
        if m and path.is_dir() and path.stat().st_uid == os.getuid() and not Path(f"/proc/{m[1]}").exists():
            shutil.rmtree(path, ignore_errors=True)


def outside() -> int:
    say("labup demo: labup's main job, for real, on the simulated lab bundled with its tests.")
    say("  simulated: the Talos nodes (a talosctl simulator), Kubernetes (an API emulator), Traefik (a stand-in")
    say("             chart and HTTPS server), Let's Encrypt (a local ACME stand-in);")
    say(f"  real:      the labup command, helm {HELM_VERSION}, and the network: Linux network namespaces on a bridge,")
    say("             where ARP, HTTP and TLS are real packets.")
    say("  Nothing leaves this machine: the demo runs in a private network namespace that has only `lo`,")
    say("  made without root through a user namespace. Your talosctl, talosconfig and kubeconfig are never used.")
    say()
    if not os.access(HELM, os.X_OK):
        say(f"labup demo: helm {HELM_VERSION} is not installed at {HELM}: run `make demo`, which installs it")
        return 1
    reason = live_demo_unavailable()
    if reason is not None:
        say(f"The live demo cannot run here: {reason}.")
        if os.environ.get("LABUP_NO_SKIPS") == "1":
            say("labup demo: FAILED: the live demo must run under CI (LABUP_NO_SKIPS=1)")
            return 1
        say("Instead, labup's plan for the bundled example lab, offline (nothing is contacted):")
        say()
        return offline_plan()
    sweep_stale()
    tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-"))
    host_netns = os.stat("/proc/self/ns/net").st_ino
    try:
        proc = subprocess.Popen(isolated(sys.executable, "-I", __file__, "--inside", str(tmp), str(host_netns)),
                                env=clean_env(tmp), stdin=subprocess.DEVNULL)
        while True:
            try:
                code = proc.wait()
                break
            except KeyboardInterrupt:  # Ctrl-C reached the demo too: it tears its lab down, then exits
                continue
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if code == 0:
        say(f"Nothing is left: the namespaces and every process ended with the demo, {tmp} is removed.")
    return code if code in (0, 130) else 1  # 130: stopped by Ctrl-C


# -- inside: the private namespaces ---------------------------------------------------------------------


def run(*argv: str) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(argv)}`: {proc.stderr.strip() or f'exit {proc.returncode}'}")
    return proc.stdout


def private_mounts(tmp: Path | None) -> None:
    """A private tmpfs on /run (where `ip netns add` keeps its entries; the host's /run is out of sight)
    and on the temporary folder; both vanish with the mount namespace."""
    run_dir = Path("/run")
    if any(p == run_dir or run_dir in p.parents for p in (REPO, Path(sys.executable), *([tmp] if tmp else []))):
        run_dir = Path("/run/netns")  # the repository lives under /run: hide only the netns entries
    run("mount", "-t", "tmpfs", "-o", "mode=0755,size=16m", "labup-demo-run", str(run_dir))
    Path("/run/netns").mkdir(exist_ok=True)
    if tmp is not None:
        run("mount", "-t", "tmpfs", "-o", "mode=0700", "labup-demo-lab", str(tmp))


def interfaces() -> list[str]:
    return [line.split(":")[1].strip().split("@")[0] for line in run("ip", "-o", "link", "show").splitlines()]


def probe() -> int:
    """What the demo needs of the namespaces: private mounts, `ip netns add`/`exec`, only `lo` here."""
    try:
        private_mounts(None)
        run("ip", "netns", "add", "labup-demo-probe")
        run("ip", "-n", "labup-demo-probe", "link", "set", "lo", "up")
        run("ip", "netns", "exec", "labup-demo-probe", "true")
        run("ip", "netns", "del", "labup-demo-probe")
        if interfaces() != ["lo"]:
            raise RuntimeError(f"the private network namespace has {interfaces()}")
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


class Demo:
    def __init__(self, lab: SimLab) -> None:
        from e2e.topology import CLIENT

        self.lab = lab
        self.client = CLIENT.name
        # labup's whole environment: SimLab's (PATH: the helm wrapper, the talosctl simulator, this venv,
        # the system; HOME, TMPDIR and HELM_* homes in the lab; the simulator's TALOSCONFIG), plus the
        # lab's kubeconfig named outright. It replaces the environment: nothing else is inherited.
        self.env = {**lab.env, "KUBECONFIG": str(lab.kubeconfig)}

    def labup(self, *args: str) -> int:
        """The real labup, in human form, in the lab's client namespace (192.0.2.100), where it shows.
        Ctrl-C reaches labup too: it is let roll back and exit, then the demo stops."""
        say(f"$ labup -c lab.yaml {' '.join(args)}")
        proc = self.lab.net.popen(self.client, [str(LABUP), "-c", "lab.yaml", *args], env=self.env,
                                  cwd=str(self.lab.lab_file.parent), stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + TIMEOUT_S
        interrupted = False
        while True:
            try:
                code = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                break
            except KeyboardInterrupt:  # its rollback takes a second or two here: it gets ROLLBACK_S
                if not interrupted:
                    deadline = min(deadline, time.monotonic() + ROLLBACK_S)
                interrupted = True
            except subprocess.TimeoutExpired:
                proc.kill()
                if interrupted:
                    break
                raise
        if interrupted:
            raise KeyboardInterrupt
        return code


def describe(lab: SimLab) -> None:
    from e2e.topology import CLIENT

    nodes = ", ".join(f"{n.name} {n.address} ({n.role})" for n in lab.nodes)
    say(f"  nodes {nodes}; VIP {lab.vip} on ens18; domain {lab.domain}")
    say(f"  labup runs at {CLIENT.ip} (the operator's machine, a namespace of its own);")
    say("  lab.yaml names the simulator's talosconfig, the emulator's kubeconfig and the stand-in chart.")


def changes(delta: Counts) -> str:
    return (f"{delta.talos_patches} Talos patch(es), {delta.helm_writes} helm install/upgrade(s), "
            f"{delta.api_writes} Kubernetes write(s)")


def steps(lab: SimLab) -> str | None:
    """Steps 2 to 4 on a started lab; what failed, or None."""
    demo = Demo(lab)
    say()
    say("[2/5] labup apply: every phase for real. vip: the Talos patch (through talosctl); helm: labup")
    say("      installs its checksum-verified helm; namespace: the Pod Security label; traefik: the helm")
    say("      release; then verify, which waits for the certificate. Results on stdout, progress on stderr.")
    before = lab.counts()
    code = demo.labup("apply")
    say(f"  -> exit {code}; made {changes(lab.counts() - before)} (counted by the simulators)")
    if code != 0:
        return f"step 2, `labup apply` exited {code}"

    say()
    say("[3/5] labup verify: prove it again, any time: ARP for the VIP answered now, the node holding")
    say("      it, Traefik pinned there, HTTP redirecting to HTTPS, the certificate, the label, the release.")
    code = demo.labup("verify")
    say(f"  -> exit {code}: {'no check failed (a warning is advice)' if code == 0 else 'a check failed'}")
    if code != 0:
        return f"step 3, `labup verify` exited {code}"

    say()
    say("[4/5] labup apply again: every step reads the live state first and changes only what differs;")
    say("      converged, it changes nothing (--detailed-exitcode: exit 0 = nothing to do, 5 = changes).")
    before = lab.counts()
    code = demo.labup("apply", "--detailed-exitcode")
    delta = lab.counts() - before
    say(f"  -> exit {code}; made {changes(delta)}")
    if code != 0 or delta.writes != 0:
        return f"step 4, the second `labup apply` exited {code} and made {changes(delta)}"
    say("  changed nothing: labup's exit code and the simulators' counts agree.")
    return None


def teardown(lab: SimLab) -> str | None:
    say()
    say("[5/5] Tearing the lab down (stand-ins, emulator, namespaces)")
    from netlab import list_netns

    prefix = lab.net.prefix
    try:
        lab.close()
    except AssertionError as exc:  # what the lab's background parts ran into
        return f"step 5, the teardown: {exc}"
    left = list_netns(prefix)
    if left:
        return f"step 5, the teardown: namespaces still there: {left}"
    say("  done: no namespace left")
    return None


def demo(tmp: Path) -> int:
    sys.path.insert(0, str(TESTS))
    from e2e.simlab import SimLab  # the simulated lab needs no pytest (talos_sim.sim, not its fixtures)

    say("[1/5] Starting the simulated lab (namespaces, talosctl simulator, API emulator, ACME stand-in)")
    started = time.monotonic()
    try:
        lab = SimLab(tmp / "lab", helm_version=HELM_VERSION).start()
        lab.write_lab()
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
        say(f"labup demo: FAILED at step 1, starting the simulated lab: {exc}")
        return 1
    describe(lab)
    say(f"  ready in {time.monotonic() - started:.1f} s")
    failed = None
    try:
        failed = steps(lab)
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
        failed = f"the simulated lab: {exc}"
    finally:  # also on Ctrl-C, which then goes on up
        broken = teardown(lab)
        failed = failed or broken
    if failed:
        say(f"labup demo: FAILED at {failed}")
        return 1
    say("labup demo: every step passed: apply, verify (every check), a second apply that changed nothing.")
    return 0


class Stopped(Exception):
    """SIGTERM or SIGHUP: the demo's lab is torn down, whatever labup is doing."""


def inside(tmp: Path, host_netns: int) -> int:
    """PID 1 of the private namespaces (where a signal with no handler is ignored): SIGTERM and SIGHUP
    stop the demo; Ctrl-C lets the running labup finish (it rolls back), then stops it."""

    def stop(signum: int, frame: object) -> None:
        raise Stopped(signal.Signals(signum).name)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)
    try:
        if os.stat("/proc/self/ns/net").st_ino == host_netns:
            raise RuntimeError("not in a private network namespace")
        private_mounts(tmp)
        if interfaces() != ["lo"]:
            raise RuntimeError(f"the private network namespace has {interfaces()}, not only lo")
        for name in ("home", "tmp"):
            (tmp / name).mkdir()
        os.environ.update(HOME=str(tmp / "home"), TMPDIR=str(tmp / "tmp"))
        tempfile.tempdir = None  # the netlab scratch folders and the simulator's bytecode go in there
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
        say(f"labup demo: FAILED: the private namespaces could not be set up: {exc}")
        return 1
    try:
        return demo(tmp)
    except (KeyboardInterrupt, Stopped) as exc:
        say(f"labup demo: stopped ({str(exc) or 'Ctrl-C'}); the lab is torn down")
        return 130


def main(argv: list[str]) -> int:
    if argv[:1] == ["--probe"]:
        return probe()
    if argv[:1] == ["--inside"] and len(argv) == 3:
        return inside(Path(argv[1]), int(argv[2]))
    if argv:
        print("usage: demo.py", file=sys.stderr)
        return 2
    return outside()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
