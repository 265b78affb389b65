"""`labup verify` for real, on the namespace lab: the labup command runs in the client namespace and
checks a VIP announced by ARP, a stand-in Traefik (HTTP 308 + TLS) and its certificates.

Every packet stays in the lab's namespaces (192.0.2.0/24). talosctl is a small fake on PATH that
answers `get links` / `get addresses` from files the test writes, like the real one (a stream of
JSON objects), so vip-holder and the paradox diagnosis can name nodes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from netlab import DEFAULT_VIP as VIP
from netlab import CertSet, NetLab

pytestmark = pytest.mark.root

LABUP = str(Path(sys.executable).with_name("labup"))
DOMAIN = "tazlab.example"
TIMEOUT = 2.5
NODES = {"cp": ("192.0.2.10", "controlplane"), "wk": ("192.0.2.11", "worker")}

FAKE_TALOSCTL = textwrap.dedent("""\
    #!{python}
    # fake talosctl: `-n A,B get KIND -o json` prints $FAKE_TALOS_DIR/A.KIND.json, B.KIND.json as they are;
    # a node without a file fails as talosctl 1.13 says it (the others still printed, exit 1)
    import os, sys
    args = sys.argv[1:]
    nodes = args[args.index("-n") + 1].split(",")
    kind = args[args.index("get") + 1]
    errors = []
    for node in nodes:
        path = os.path.join(os.environ["FAKE_TALOS_DIR"], f"{{node}}.{{kind}}.json")
        if os.path.exists(path):
            sys.stdout.write(open(path).read())
        else:
            errors.append(f'rpc error: code = Unavailable desc = connection error: desc = "transport: Error '
                          f'while dialing: dial tcp {{node}}:50000: connect: no route to host"')
    if errors:
        sys.stderr.write(f"{{len(errors)}} error(s) occurred:\\n" + "".join(f"\\t* {{e}}\\n" for e in errors))
        sys.exit(1)
""")


def resource(node: str, rtype: str, rid: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"node": node, "metadata": {"namespace": "network", "type": rtype, "id": rid, "version": 3,
                                       "owner": "network.Controller", "phase": "running"}, "spec": spec}


def write_talos_state(folder: Path, netlab: NetLab, holder: str | None) -> None:
    """What `talosctl get links/addresses -o json` would print for each node (indented, concatenated)."""
    folder.mkdir(exist_ok=True)
    for name, (addr, _) in NODES.items():
        links = [
            resource(addr, "LinkStatuses.net.talos.dev", "lo",
                     {"type": "loopback", "hardwareAddr": "00:00:00:00:00:00", "kind": "",
                      "operationalState": "unknown"}),
            resource(addr, "LinkStatuses.net.talos.dev", "ens18",
                     {"type": "ether", "hardwareAddr": netlab.mac_of(name), "kind": "", "operationalState": "up"}),
        ]
        ids = [("lo", "127.0.0.1/8"), ("ens18", f"{addr}/24")] + ([("ens18", f"{VIP}/32")] if name == holder else [])
        addresses = [resource(addr, "AddressStatuses.net.talos.dev", f"{link}/{cidr}",
                              {"address": cidr, "linkName": link, "family": "inet4", "scope": "global"})
                     for link, cidr in ids]
        (folder / f"{addr}.links.json").write_text("".join(json.dumps(r, indent=4) + "\n" for r in links))
        (folder / f"{addr}.addresses.json").write_text("".join(json.dumps(r, indent=4) + "\n" for r in addresses))


@pytest.fixture
def lab_file(tmp_path: Path, netlab_certs: CertSet) -> Path:
    data = {
        "name": "netlab",
        "nodes": [{"name": n, "address": a, "role": r} for n, (a, r) in NODES.items()],
        "vip": {"address": VIP, "interface": "ens18"},
        "traefik": {"domains": [DOMAIN], "acme": {"email": "admin@tazlab.example"}},
        "verify": {"timeout_s": TIMEOUT, "ca_file": str(netlab_certs.ca.cert_path)},
    }
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def talos_env(tmp_path: Path) -> dict[str, str]:
    """PATH with the fake talosctl first (and no real one), plus where it reads its answers."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "talosctl"
    fake.write_text(FAKE_TALOSCTL.format(python=sys.executable))
    fake.chmod(0o755)
    path = ":".join(p for p in os.environ.get("PATH", "").split(":") if p and not (Path(p) / "talosctl").exists())
    talosconfig = tmp_path / "talosconfig"
    talosconfig.write_text("context: lab\n")  # only its presence is checked: the fake reads files
    return {**os.environ, "PATH": f"{bin_dir}:{path}", "NO_COLOR": "1", "FAKE_TALOS_DIR": str(tmp_path / "talos"),
            "TALOSCONFIG": str(talosconfig)}


# the Kubernetes/Helm checks are proven against the API emulator (test_verify_unit, the e2e lab), and
# acme-backup (local backups) in test_certbackup; here, on the namespace network, verify runs the
# network and Talos checks
KUBE_CHECKS = ("traefik-placement", "psa-label", "helm-release", "acme-backup")


def labup_in_client(netlab: NetLab, lab_file: Path, env: dict[str, str], *args: str,
                    command: str = "verify") -> tuple[subprocess.CompletedProcess[str], dict[str, Any], float]:
    if command == "verify":
        args = (*args, *(a for name in KUBE_CHECKS for a in ("--skip", name)))
    start = time.monotonic()
    proc = netlab.run("cl", [LABUP, "-c", str(lab_file), "--json", command, *args], env=env, timeout=60)
    elapsed = time.monotonic() - start
    doc = json.loads(proc.stdout) if proc.stdout.strip() else {}
    return proc, doc, elapsed


def checks_of(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in doc["checks"]}


def serve(netlab: NetLab, certs: CertSet, node: str, mode: str = "good") -> None:
    issued = certs.mode(mode)
    netlab.start_standin(node, issued.cert_path, issued.key_path)


# -- the good lab ---------------------------------------------------------------------------------


def test_good_lab_passes_every_network_check(netlab: NetLab, netlab_certs: CertSet, lab_file: Path,
                                             talos_env: dict[str, str], tmp_path: Path) -> None:
    serve(netlab, netlab_certs, "cp")
    netlab.add_vip("cp")
    write_talos_state(tmp_path / "talos", netlab, holder="cp")
    proc, doc, elapsed = labup_in_client(netlab, lab_file, talos_env)
    assert proc.returncode == 0, proc.stderr
    assert doc["command"] == "verify" and doc["ok"] is True and doc["exit_code"] == 0
    checks = checks_of(doc)
    assert [c["name"] for c in doc["checks"]] == ["vip-arp", "vip-holder", "http-redirect", "https-cert"]
    assert checks["vip-arp"]["status"] == "pass"
    assert checks["vip-arp"]["data"]["mac"] == netlab.mac_of("cp")
    assert checks["vip-holder"]["status"] == "pass", checks["vip-holder"]
    assert checks["vip-holder"]["data"]["holder"] == "cp"
    assert checks["http-redirect"]["status"] == "pass", checks["http-redirect"]
    assert checks["http-redirect"]["data"]["location"] == f"https://{DOMAIN}/"
    assert checks["https-cert"]["status"] == "pass", checks["https-cert"]
    assert checks["https-cert"]["data"]["domains"][DOMAIN]["verified"] is True
    assert elapsed < TIMEOUT + 2
    # the human report is on stderr, one line per check (not a TTY: plain)
    assert "pass  vip-arp" in proc.stderr and "pass  https-cert" in proc.stderr


# -- the connection paradox (wall 5) --------------------------------------------------------------


def test_paradox_vip_elsewhere_than_traefik(netlab: NetLab, netlab_certs: CertSet, lab_file: Path,
                                            talos_env: dict[str, str], tmp_path: Path) -> None:
    serve(netlab, netlab_certs, "cp")  # Traefik on cp ...
    netlab.add_vip("wk")  # ... the VIP on wk: ARP answers, port 80 is refused
    write_talos_state(tmp_path / "talos", netlab, holder="wk")
    proc, doc, _ = labup_in_client(netlab, lab_file, talos_env)
    assert proc.returncode == 1
    checks = checks_of(doc)
    assert checks["vip-arp"]["status"] == "pass"
    assert checks["vip-arp"]["data"]["mac"] == netlab.mac_of("wk")
    redirect = checks["http-redirect"]
    assert redirect["status"] == "fail"
    assert "connection refused" in redirect["summary"] and "wk" in redirect["summary"]
    assert "nothing listens on port 80" in redirect["summary"]
    assert "connection paradox" in redirect["hint"]
    assert "kubernetes.io/hostname: wk" in redirect["hint"]
    assert "node-role.kubernetes.io/control-plane:NoSchedule" in redirect["hint"]
    assert "labup phase traefik" in redirect["hint"]
    assert checks["https-cert"]["status"] == "fail" and "443" in checks["https-cert"]["summary"]
    # Talos' view: the VIP on a node lab.yaml calls a worker is itself wrong
    assert checks["vip-holder"]["status"] == "fail" and "worker" in checks["vip-holder"]["summary"]


def test_paradox_without_talos_names_the_mac(netlab: NetLab, netlab_certs: CertSet, lab_file: Path,
                                             talos_env: dict[str, str]) -> None:
    serve(netlab, netlab_certs, "cp")
    netlab.add_vip("wk")
    proc, doc, _ = labup_in_client(netlab, lab_file, talos_env, "--only", "http-redirect")
    assert proc.returncode == 1
    redirect = checks_of(doc)["http-redirect"]
    assert redirect["status"] == "fail"
    assert netlab.mac_of("wk") in redirect["summary"]
    assert "connection paradox" in redirect["hint"]


def test_no_server_at_all_is_refused_with_the_diagnosis(netlab: NetLab, lab_file: Path,
                                                         talos_env: dict[str, str], tmp_path: Path) -> None:
    netlab.add_vip("cp")
    write_talos_state(tmp_path / "talos", netlab, holder="cp")
    proc, doc, _ = labup_in_client(netlab, lab_file, talos_env)
    assert proc.returncode == 1
    checks = checks_of(doc)
    assert checks["vip-arp"]["status"] == "pass" and checks["vip-holder"]["status"] == "pass"
    for name, port in (("http-redirect", 80), ("https-cert", 443)):
        assert checks[name]["status"] == "fail"
        assert f"connection refused on {VIP}:{port}" in checks[name]["summary"]
        assert "cp" in checks[name]["summary"]
        assert "Traefik is not running on cp" in checks[name]["hint"]
    assert "2 check(s) failed: http-redirect, https-cert" in proc.stderr


# -- certificates ---------------------------------------------------------------------------------


def test_traefik_default_cert_fails_with_the_acme_hint(netlab: NetLab, netlab_certs: CertSet, lab_file: Path,
                                                       talos_env: dict[str, str]) -> None:
    serve(netlab, netlab_certs, "cp", "traefik-default")
    netlab.add_vip("cp")
    proc, doc, _ = labup_in_client(netlab, lab_file, talos_env, "--only", "https-cert")
    assert proc.returncode == 1
    cert = checks_of(doc)["https-cert"]
    assert cert["status"] == "fail"
    assert "TRAEFIK DEFAULT CERT" in cert["summary"] and "ACME" in cert["summary"]
    assert "kubectl -n traefik logs deploy/traefik" in cert["hint"]
    assert "port 80" in cert["hint"]  # the default challenge is http
    assert cert["data"]["domains"][DOMAIN]["verified"] is False


def test_staging_cert_warns(netlab: NetLab, netlab_certs: CertSet, lab_file: Path,
                            talos_env: dict[str, str]) -> None:
    serve(netlab, netlab_certs, "cp", "staging")
    netlab.add_vip("cp")
    proc, doc, _ = labup_in_client(netlab, lab_file, talos_env, "--only", "https-cert", "--only", "http-redirect")
    assert proc.returncode == 0, proc.stderr  # warn is not a failure
    cert = checks_of(doc)["https-cert"]
    assert cert["status"] == "warn"
    assert "staging" in cert["summary"] and "(STAGING)" in cert["data"]["domains"][DOMAIN]["issuer"]
    assert "acme.json" in cert["hint"]
    assert doc["ok"] is True and doc["counts"]["warn"] == 1


def test_expiring_cert_warns(netlab: NetLab, netlab_certs: CertSet, lab_file: Path,
                             talos_env: dict[str, str]) -> None:
    serve(netlab, netlab_certs, "cp", "expiring")
    netlab.add_vip("cp")
    proc, doc, _ = labup_in_client(netlab, lab_file, talos_env, "--only", "https-cert")
    assert proc.returncode == 0
    cert = checks_of(doc)["https-cert"]
    assert cert["status"] == "warn"
    assert "expires in 4 day(s)" in cert["summary"]
    assert 4 < cert["data"]["domains"][DOMAIN]["days_left"] <= 5
    assert cert["data"]["domains"][DOMAIN]["verified"] is True


def test_without_ca_file_the_test_ca_is_not_trusted(netlab: NetLab, netlab_certs: CertSet, lab_file: Path,
                                                    talos_env: dict[str, str]) -> None:
    data = yaml.safe_load(lab_file.read_text())
    del data["verify"]["ca_file"]
    lab_file.write_text(yaml.safe_dump(data))
    serve(netlab, netlab_certs, "cp")
    netlab.add_vip("cp")
    proc, doc, _ = labup_in_client(netlab, lab_file, talos_env, "--only", "https-cert")
    assert proc.returncode == 1
    cert = checks_of(doc)["https-cert"]
    assert cert["status"] == "fail" and "does not verify" in cert["summary"]
    assert "verify.ca_file" in cert["hint"]


# -- no VIP: bounded failure, never a hang ----------------------------------------------------------


def test_absent_vip_fails_vip_arp_within_the_timeout(netlab: NetLab, netlab_certs: CertSet, lab_file: Path,
                                                     talos_env: dict[str, str], tmp_path: Path) -> None:
    serve(netlab, netlab_certs, "cp")
    write_talos_state(tmp_path / "talos", netlab, holder=None)
    proc, doc, elapsed = labup_in_client(netlab, lab_file, talos_env)
    assert elapsed < TIMEOUT + 2, f"verify took {elapsed:.1f}s"
    assert proc.returncode == 1
    checks = checks_of(doc)
    arp = checks["vip-arp"]
    assert arp["status"] == "fail" and f"no ARP answer for VIP {VIP}" in arp["summary"]
    for cause in ("etcd", "labup phase vip", "interface", "Layer-2"):
        assert cause in arp["hint"]
    assert checks["vip-holder"]["status"] == "fail" and "no node holds the VIP" in checks["vip-holder"]["summary"]
    for name in ("http-redirect", "https-cert"):
        assert checks[name]["status"] == "fail"


# -- a VIP that just went away: the cache must not answer for it -----------------------------------

# as a user with no capabilities at all (nobody): no raw socket, so labup reads the neighbour table
UNPRIVILEGED = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
                "--bounding-set=-all")


def shared_lab_file(lab_file: Path) -> Path:
    """A copy of lab.yaml that another user can read (pytest's tmp_path is root's, mode 0700)."""
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="labup-arp-"))
    folder.chmod(0o755)
    data = yaml.safe_load(lab_file.read_text())
    shutil.copyfile(data["verify"]["ca_file"], folder / "ca.crt")
    data["verify"]["ca_file"] = str(folder / "ca.crt")
    copy = folder / "lab.yaml"
    copy.write_text(yaml.safe_dump(data))
    for path in (copy, folder / "ca.crt"):
        path.chmod(0o644)
    return copy


@pytest.mark.parametrize("as_user", ["root", "unprivileged"])
def test_a_vip_removed_after_a_passing_verify_fails_at_once(netlab: NetLab, netlab_certs: CertSet, lab_file: Path,
                                                            talos_env: dict[str, str], as_user: str) -> None:
    serve(netlab, netlab_certs, "cp")
    netlab.add_vip("cp")
    shared = shared_lab_file(lab_file)
    prefix = UNPRIVILEGED if as_user == "unprivileged" else ()
    if prefix:
        probe = subprocess.run([*prefix, LABUP, "--version"], capture_output=True, text=True, timeout=30)
        assert probe.returncode == 0, (f"{LABUP} cannot be run as uid 65534 (is a folder above it not "
                                       f"world-executable?): {probe.stderr.strip()}")
    env = {**talos_env, "HOME": str(shared.parent)}
    method = "neighbour-confirmed" if as_user == "unprivileged" else "arp-request"

    def vip_arp() -> tuple[int, dict[str, Any], float]:
        start = time.monotonic()
        proc = netlab.run("cl", [*prefix, LABUP, "-c", str(shared), "--json", "verify", "--only", "vip-arp"],
                          env=env, timeout=60)
        return proc.returncode, checks_of(json.loads(proc.stdout))["vip-arp"], time.monotonic() - start

    try:
        netlab.resolve_mac("cl", VIP)  # the kernel of the operator's machine has an entry, as after any use
        code, first, _ = vip_arp()
        assert code == 0 and first["status"] == "pass", first
        assert first["data"]["mac"] == netlab.mac_of("cp") and first["data"]["method"] == method
        # at once again, VIP still up: a fresh answer is still found (unprivileged: the kernel confirms
        # the entry when a TCP handshake with the VIP completes, here the stand-in Traefik's port 443)
        code, again, _ = vip_arp()
        assert code == 0 and again["status"] == "pass", again
        # the kernel still holds a REACHABLE entry for the VIP: exactly what must not count
        cached = netlab.neighbour("cl", VIP)
        assert cached is not None and cached.get("lladdr") == netlab.mac_of("cp")
        netlab.remove_vip()
        code, second, elapsed = vip_arp()
    finally:
        import shutil

        shutil.rmtree(shared.parent, ignore_errors=True)
    assert code == 1 and second["status"] == "fail", second
    assert second["data"]["method"] == method and second["data"]["cached_mac"] == netlab.mac_of("cp")
    assert f"no ARP answer for VIP {VIP}" in second["summary"] and "proves nothing" in second["summary"]
    # labup's own run time: the process start (python, imports) is measured apart by the bench
    assert second["seconds"] <= TIMEOUT + 0.5, second
    assert elapsed < TIMEOUT + 3


# -- selection --------------------------------------------------------------------------------------


def test_only_runs_just_that_check(netlab: NetLab, lab_file: Path, talos_env: dict[str, str]) -> None:
    netlab.add_vip("cp")
    proc, doc, _ = labup_in_client(netlab, lab_file, talos_env, "--only", "vip-arp")
    assert proc.returncode == 0
    assert [c["name"] for c in doc["checks"]] == ["vip-arp"]
    assert doc["checks"][0]["data"]["mac"] == netlab.mac_of("cp")


def test_skip_leaves_that_check_out(netlab: NetLab, netlab_certs: CertSet, lab_file: Path,
                                    talos_env: dict[str, str], tmp_path: Path) -> None:
    serve(netlab, netlab_certs, "cp", "traefik-default")  # would fail https-cert
    netlab.add_vip("cp")
    write_talos_state(tmp_path / "talos", netlab, holder="cp")
    proc, doc, _ = labup_in_client(netlab, lab_file, talos_env, "--skip", "https-cert")
    assert proc.returncode == 0, proc.stderr
    assert "https-cert" not in checks_of(doc) and len(doc["checks"]) == 3


def test_unknown_check_exits_2_listing_valid_names(netlab: NetLab, lab_file: Path, talos_env: dict[str, str]) -> None:
    proc, doc, _ = labup_in_client(netlab, lab_file, talos_env, "--only", "vip-arpp")
    assert proc.returncode == 2
    assert "unknown check 'vip-arpp'" in proc.stderr
    assert ("vip-arp, vip-holder, traefik-placement, http-redirect, https-cert, psa-label, helm-release, "
            "acme-backup") in proc.stderr
    assert doc["exit_code"] == 2
    assert netlab.neighbour("cl", VIP) is None  # nothing was sent


# -- the verify phase of apply ------------------------------------------------------------------------


def test_apply_dry_run_plans_the_checks_and_sends_nothing(netlab: NetLab, lab_file: Path,
                                                          talos_env: dict[str, str]) -> None:
    netlab.add_vip("cp")
    proc, doc, _ = labup_in_client(netlab, lab_file, talos_env, "--dry-run", "--only", "verify", command="apply")
    assert proc.returncode == 0, proc.stderr
    steps = [(s["step"], s["status"]) for s in doc["steps"]]
    assert steps == [(n, "would-run") for n in ("vip-arp", "vip-holder", "traefik-placement",
                                                    "http-redirect", "https-cert", "psa-label", "helm-release",
                                                    "acme-backup")]
    assert netlab.neighbour("cl", VIP) is None  # not even an ARP request left the client


def test_apply_ends_with_the_checks_and_keeps_changes_on_failure(netlab: NetLab, netlab_certs: CertSet,
                                                                 lab_file: Path, talos_env: dict[str, str],
                                                                 tmp_path: Path) -> None:
    serve(netlab, netlab_certs, "wk")  # the paradox again, through apply's last phase
    netlab.add_vip("cp")
    write_talos_state(tmp_path / "talos", netlab, holder="cp")
    proc, doc, _ = labup_in_client(netlab, lab_file, talos_env, "--only", "verify", command="apply")
    assert proc.returncode == 1
    steps = {s["step"]: s for s in doc["steps"]}
    assert steps["vip-arp"]["status"] == "ok" and steps["vip-holder"]["status"] == "ok"
    assert steps["http-redirect"]["status"] == "failed"
    assert "labup rollback" in steps["http-redirect"]["hint"]
    # no kubeconfig in this lab: the Kubernetes checks fail saying why, never pass unearned
    assert steps["psa-label"]["status"] == "failed" and "could not read it" in steps["psa-label"]["summary"]
    assert doc["undone"] == []
    assert "labup rollback" in proc.stderr
