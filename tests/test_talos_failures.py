"""When talosctl or the node says no (issue 19, Talos): certificates, roles, version skew, discovery.

The talosctl simulator produces the real failures: TLS refusals as grpc-go reports them (every
transport error is `code = Unavailable`; crypto/tls and crypto/x509 texts), `PermissionDenied` for a
role that may not touch the machine config, a client that decodes patches with the kinds it knows
(configpatcher.LoadPatch), and talosctl 1.12.0-1.12.4's truncation of a <= 1.11 node's multi-document
config (siderolabs/talos#12787). Each test below failed before labup handled the case.
"""

from __future__ import annotations

import base64
import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from conftest import example_data, run_labup, shown
from talos_sim import Lab
from talos_sim.fixtures import EXAMPLE_CP, EXAMPLE_VIP, TalosSim


def write_lab(root: Path, sim: TalosSim, **talos: object) -> Path:
    data = example_data()
    data["nodes"] = [{"name": n.nodename, "address": n.address,
                      "role": "controlplane" if n.machinetype in ("controlplane", "init") else "worker"}
                     for n in sim.read_state().nodes]
    data["vip"] = {"address": EXAMPLE_VIP, "interface": "ens18", "wait_timeout_s": 2}
    data["retry"] = {"attempts": 3, "initial_s": 0.01, "max_s": 0.05}
    data["talos"] = {k: str(v) if isinstance(v, Path) else v for k, v in talos.items()}
    path = root / "lab.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("failure, words", [
    ("unknown-authority", "not signed by the CA in the talosconfig"),
    ("not-valid-for", "not one of the names in the node's certificate"),
    ("bad-certificate", "TLS with the Talos API failed"),
])
def test_certificate_refusals_fail_fast_and_say_certificate(talos_sim: Callable[..., TalosSim], tmp_path: Path,
                                                            failure: str, words: str) -> None:
    sim = talos_sim()
    with sim.edit() as lab:
        lab.tls_failure = failure
    lab_file = write_lab(tmp_path, sim)
    start = time.monotonic()
    run = run_labup("-c", str(lab_file), "phase", "vip", "--dry-run")
    elapsed = time.monotonic() - start
    assert run.returncode == 1, run.stderr
    assert elapsed < 10, f"took {elapsed:.1f}s: certificate errors must not be retried as unreachable"
    assert words in shown(run) and "port 50000" not in shown(run)
    assert "talosconfig " in shown(run) and "context" in shown(run)  # names which file and context
    assert "Traceback" not in shown(run)
    # one call per step: no retry of a refusal that no retry can change
    assert len([c for c in sim.calls() if c["verb"] == "version"]) <= 2


def _talosconfig_with_cert(path: Path, not_after: dt.datetime) -> Path:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "os:admin")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(not_after - dt.timedelta(days=365)).not_valid_after(not_after)
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    path.write_text(yaml.safe_dump({"context": "tazlab", "contexts": {"tazlab": {
        "endpoints": [EXAMPLE_CP], "ca": "Y2E=", "crt": base64.b64encode(pem).decode(),
        "key": base64.b64encode(key_pem).decode()}}}))
    return path


def test_an_expired_client_certificate_is_named_with_its_date_never_its_key(
        talos_sim: Callable[..., TalosSim], tmp_path: Path) -> None:
    sim = talos_sim()
    with sim.edit() as lab:
        lab.tls_failure = "bad-certificate"  # TLS 1.3: the server refuses the expired client certificate
    expired = dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.UTC)
    config = _talosconfig_with_cert(tmp_path / "talosconfig", expired)
    run = run_labup("-c", str(write_lab(tmp_path, sim, talosconfig=config)), "phase", "vip", "--dry-run")
    assert run.returncode == 1
    assert f"talosconfig {config}, context tazlab: its client certificate EXPIRED on 2026-01-02 03:04 UTC" \
        in shown(run)
    key = yaml.safe_load(config.read_text())["contexts"]["tazlab"]["key"]
    assert key[:40] not in shown(run) and "PRIVATE KEY" not in shown(run)


def test_a_reader_role_is_told_it_needs_os_admin(talos_sim: Callable[..., TalosSim], tmp_path: Path) -> None:
    sim = talos_sim()
    with sim.edit() as lab:
        lab.role = "os:reader"
    run = run_labup("-c", str(write_lab(tmp_path, sim)), "phase", "vip", "--dry-run")
    assert run.returncode == 1
    assert "code = PermissionDenied desc = not authorized" in shown(run)
    assert "needs os:admin" in shown(run)


def _legacy_multidoc_lab() -> Lab:
    lab = Lab.single_cp_worker("v1.11.5")
    for node in lab.nodes:  # a 1.11 config may carry more documents (a volume, an extension...)
        node.config = node.config.rstrip("\n") + "\n---\napiVersion: v1alpha1\nkind: WatchdogTimerConfig\n" \
            "device: /dev/watchdog0\n"
    return lab


def test_talosctl_1_12_2_with_a_1_11_node_is_refused_before_any_patch(talos_sim: Callable[..., TalosSim],
                                                                       tmp_path: Path) -> None:
    sim = talos_sim(_legacy_multidoc_lab())
    with sim.edit() as lab:
        lab.client_version = "v1.12.2"
    before = sim.config_text(EXAMPLE_CP)
    # what the bug does, in the simulator: the client reads (and would patch) the first document only
    assert "WatchdogTimerConfig" not in sim.run("-n", EXAMPLE_CP, "get", "machineconfig", "v1alpha1", "-o",
                                                "jsonpath={.spec}").stdout
    run = run_labup("-c", str(write_lab(tmp_path, sim)), "phase", "vip")
    assert run.returncode == 1
    assert "talosctl v1.12.2 would destroy" in shown(run) and "1.12.5" in shown(run)
    assert "siderolabs/talos#12787" in shown(run)
    assert sim.calls(verb="patch") == []
    assert sim.config_text(EXAMPLE_CP) == before and "WatchdogTimerConfig" in before


def test_a_client_older_than_the_node_is_refused_naming_the_client(talos_sim: Callable[..., TalosSim],
                                                                  tmp_path: Path) -> None:
    sim = talos_sim()  # nodes on 1.13.0
    with sim.edit() as lab:
        lab.client_version = "v1.11.6"
    run = run_labup("-c", str(write_lab(tmp_path, sim)), "phase", "vip", "--dry-run")
    assert run.returncode == 1
    assert "talosctl v1.11.6 is older than talos-unw-ifc" in shown(run)
    assert sim.calls(verb="patch") == []


def test_an_old_client_fails_client_side_and_the_hint_says_so(talos_sim: Callable[..., TalosSim],
                                                              tmp_path: Path) -> None:
    """Without labup's refusal, a 1.11 talosctl cannot even load the patch: the bare decoder text,
    no `rpc error`, no node asked (configpatcher.LoadPatch at v1.11.6)."""
    from labup.adapters.talos import _hint_for, talos_error_text

    sim = talos_sim()
    with sim.edit() as lab:
        lab.client_version = "v1.11.6"
    patch = tmp_path / "vip.yaml"
    patch.write_text(f"apiVersion: v1alpha1\nkind: Layer2VIPConfig\nname: {EXAMPLE_VIP}\nlink: ens18\n")
    done = sim.run("-n", EXAMPLE_CP, "patch", "machineconfig", "--patch", f"@{patch}", "--mode", "no-reboot")
    text = talos_error_text(done.stderr)
    assert done.returncode == 1 and text == '"Layer2VIPConfig" "v1alpha1": not registered'
    assert "no node was asked" in (_hint_for(text) or "")


def test_talosconfig_discovery_follows_talosctl(talos_sim: Callable[..., TalosSim], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A $TALOSCONFIG naming a missing file falls through; $TALOS_HOME/config is next (talosctl >= 1.12):
    labup finds the same file talosctl would, and passes it explicitly."""
    sim = talos_sim()
    home = tmp_path / "talos-home"
    home.mkdir()
    (home / "config").write_text(Path(sim.env["TALOSCONFIG"]).read_text())
    monkeypatch.setenv("TALOSCONFIG", str(tmp_path / "missing"))
    monkeypatch.setenv("TALOS_HOME", str(home))
    monkeypatch.setenv("HOME", str(tmp_path / "empty-home"))
    run = run_labup("-c", str(write_lab(tmp_path, sim)), "phase", "vip", "--dry-run")
    assert run.returncode == 0, run.stderr
    used = {c.get("talosconfig") for c in sim.calls()}
    assert used == {str(home / "config")}
    # the simulator, asked without --talosconfig, resolves the same file
    from talos_sim.cli import talosconfig_path

    assert talosconfig_path("", "v1.13.9") == str(home / "config")
    assert talosconfig_path("", "v1.11.6") is None  # 1.11 knows no TALOS_HOME, and ~/.talos/config is absent


def test_ipv6_vip_is_named_with_its_own_prefix() -> None:
    """Talos shows a VIP as a host route of its family: `/32` for IPv4, `/128` for IPv6."""
    from labup.vip.forms import address_id

    assert address_id("ens18", "2001:db8::250") == "ens18/2001:db8::250/128"
    assert address_id("ens18", "192.0.2.250") == "ens18/192.0.2.250/32"


def test_verify_vip_holder_names_the_certificate_problem(talos_sim: Callable[..., TalosSim], tmp_path: Path) -> None:
    import json

    sim = talos_sim()
    with sim.edit() as lab:
        lab.tls_failure = "unknown-authority"
    run = run_labup("-c", str(write_lab(tmp_path, sim)), "--json", "verify", "--only", "vip-holder")
    assert run.returncode == 1
    [check] = json.loads(run.stdout)["checks"]
    assert "x509: certificate signed by unknown authority" in check["summary"]
    assert "not signed by the CA in the talosconfig" in check["hint"] and "port 50000" not in check["hint"]


def test_a_vip_outside_the_links_subnet_is_refused_before_any_patch(talos_sim: Callable[..., TalosSim],
                                                                    tmp_path: Path) -> None:
    """Issue 18 (9): the node's own addresses on vip.interface say which prefixes the VIP may be in."""
    sim = talos_sim()
    lab_file = write_lab(tmp_path, sim)
    data = yaml.safe_load(lab_file.read_text())
    data["vip"]["address"] = "198.51.100.250"  # the nodes are in 192.0.2.0/24
    lab_file.write_text(yaml.safe_dump(data))
    for args in (("phase", "vip", "--dry-run"), ("phase", "vip")):
        run = run_labup("-c", str(lab_file), *args)
        assert run.returncode == 2, run.stderr
        assert "vip.address: 198.51.100.250 is outside every prefix of ens18" in shown(run)
        assert "192.0.2.0/24" in shown(run)
    assert sim.calls(verb="patch") == []
