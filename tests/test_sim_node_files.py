"""The nodes' disks in the simulated lab (groundwork for certificate backup/restore, issue 14):
`talosctl read` on the simulator answers as Talos' machined and talosctl do (v1.11-v1.14 source), and
Traefik's acme.json is a real file on the Traefik node's disk, in Traefik v3's format, that a pod start
reads as Traefik does (tests/e2e/acme.py, tests/e2e/acmestore.py)."""

from __future__ import annotations

import base64
import json
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from e2e import CLIENT, LabupRun, SimLab, acmestore
from e2e.acmestore import certificate_entry
from netlab.probe import tls_get
from talos_sim import Lab
from talos_sim.fixtures import EXAMPLE_CP, EXAMPLE_WORKER, TalosSim, start_sim

ACME = "/var/mnt/traefik/acme.json"
NOT_FOUND = "error reading: rpc error: code = NotFound desc = stat {}: no such file or directory\n"


@pytest.fixture
def sim(tmp_path: Path) -> TalosSim:
    return start_sim(tmp_path / "sim")


# -- talosctl read --------------------------------------------------------------------------------


def test_read_streams_the_file_byte_exact(sim: TalosSim) -> None:
    data = b'{"letsencrypt": {}}\x00\xff\n\r no newline added:'
    sim.write_node_file(EXAMPLE_CP, ACME, data)
    run = sim.run_bytes("-n", EXAMPLE_CP, "read", ACME)
    assert (run.returncode, run.stdout, run.stderr) == (0, data, b"")
    assert sim.node_file(EXAMPLE_CP, ACME) == sim.files_dir / EXAMPLE_CP / "var/mnt/traefik/acme.json"
    assert stat.S_IMODE(sim.node_file(EXAMPLE_CP, ACME).stat().st_mode) == 0o600
    assert sim.read_node_file(EXAMPLE_CP, ACME) == data
    # `cat` is its alias; every call is logged as a read of the node
    assert sim.run_bytes("-n", EXAMPLE_CP, "cat", ACME).stdout == data
    assert [(c["verb"], c["nodes"], c["rc"]) for c in sim.calls("read")] == [("read", [EXAMPLE_CP], 0)] * 2
    # the worker's disk is its own
    assert sim.run("-n", EXAMPLE_WORKER, "read", ACME).stderr == NOT_FOUND.format(ACME)


def test_read_of_a_missing_file_is_not_found(sim: TalosSim) -> None:
    run = sim.run("-n", EXAMPLE_CP, "read", "/var/mnt/traefik/nothing.json")
    assert (run.returncode, run.stdout) == (1, "")
    assert run.stderr == NOT_FOUND.format("/var/mnt/traefik/nothing.json")


def test_read_of_a_directory_is_refused(sim: TalosSim) -> None:
    sim.write_node_file(EXAMPLE_CP, ACME, b"{}")
    run = sim.run("-n", EXAMPLE_CP, "read", "/var/mnt/traefik")
    # machined returns a plain error (errors.New): gRPC reports it with code Unknown
    assert (run.returncode, run.stdout) == (1, "")
    assert run.stderr == "error reading: rpc error: code = Unknown desc = path must be a regular file\n"


def test_read_needs_exactly_one_node(sim: TalosSim, tmp_path: Path) -> None:
    run = sim.run("-n", f"{EXAMPLE_CP},{EXAMPLE_WORKER}", "read", ACME)
    assert run.returncode == 1
    # talosctl <= 1.13 (helpers.FailIfMultiNodes); "command" in it: cobra's usage follows
    assert run.stderr.startswith('command "read" is not supported with multiple nodes\n\nUsage:\n')
    newer = Lab.single_cp_worker()
    newer.client_version = "v1.14.0"
    run = start_sim(tmp_path / "v114", newer).run("-n", EXAMPLE_CP, "-n", EXAMPLE_WORKER, "read", ACME)
    assert run.returncode == 1  # 1.14: global.ClientFactory.BuildClientEnforceSingleNode
    assert run.stderr.startswith('command "read" requires exactly one node (got 2)\n\nUsage:\n')


def test_read_needs_the_admin_role(sim: TalosSim) -> None:
    sim.write_node_file(EXAMPLE_CP, ACME, b"{}")
    for role in ("os:reader", "os:operator"):
        with sim.edit() as lab:
            lab.role = role
        run = sim.run("-n", EXAMPLE_CP, "read", ACME)
        assert (run.returncode, run.stdout) == (1, "")
        assert run.stderr == "error reading: rpc error: code = PermissionDenied desc = not authorized\n"


def test_read_never_leaves_the_nodes_disk(sim: TalosSim) -> None:
    secret = sim.files_dir / "outside.txt"
    secret.write_text("not a node's file")
    sim.write_node_file(EXAMPLE_WORKER, "/etc/hostname", b"talos-worker-1")
    for path in ("../outside.txt", "/../../outside.txt", f"/var/../../{EXAMPLE_WORKER}/etc/hostname"):
        run = sim.run("-n", EXAMPLE_CP, "read", path)
        assert (run.returncode, run.stdout, run.stderr) == (1, "", NOT_FOUND.format(path))
    # `..` that stays inside the node is just a path; a symlink out of the node is refused as well
    sim.write_node_file(EXAMPLE_CP, "/etc/hostname", b"talos-unw-ifc")
    assert sim.run("-n", EXAMPLE_CP, "read", "/var/../etc/hostname").stdout == "talos-unw-ifc"
    os.symlink(secret, sim.node_file(EXAMPLE_CP, "/etc/link"))
    assert sim.run("-n", EXAMPLE_CP, "read", "/etc/link").stderr == NOT_FOUND.format("/etc/link")
    with pytest.raises(ValueError, match="outside"):
        sim.node_file(EXAMPLE_CP, "../outside.txt")


def test_read_of_an_unreachable_node_fails_like_every_call(sim: TalosSim) -> None:
    sim.write_node_file(EXAMPLE_CP, ACME, b"{}")
    sim.set_reachable(EXAMPLE_CP, False)
    run = sim.run("-n", EXAMPLE_CP, "read", ACME)
    assert run.returncode == 1
    assert run.stderr == (
        'error reading: rpc error: code = Unavailable desc = connection error: desc = "transport: Error while '
        f'dialing: dial tcp {EXAMPLE_CP}:50000: connect: no route to host"\n')
    # no endpoint answers: the stream cannot even be opened
    run = sim.run("-e", EXAMPLE_CP, "-n", EXAMPLE_CP, "read", ACME)
    assert run.returncode == 1 and run.stderr.startswith("error reading file: rpc error: code = Unavailable")


# -- Traefik's store, read as Traefik reads it (no lab needed) ------------------------------------


def test_the_store_is_judged_as_traefik_judges_it(tmp_path: Path) -> None:
    disk = tmp_path / "var/mnt/traefik/acme.json"
    assert acmestore.check_and_load("/data/acme.json", disk) == {}  # CheckFile creates it, 0600
    assert disk.read_bytes() == b"" and stat.S_IMODE(disk.stat().st_mode) == 0o600
    refused = {
        b"\n": "unexpected end of JSON input",
        b"[]": "json: cannot unmarshal array into Go value of type map[string]*acme.StoredData",
        b'{"le": {"Certificates": [{"certificate": "%%%"}]}}': "illegal base64 data at input byte 0",
    }
    for raw, error in refused.items():
        disk.write_bytes(raw)
        with pytest.raises(acmestore.StoreError) as caught:
            acmestore.check_and_load("/data/acme.json", disk)
        assert str(caught.value) == error
    disk.chmod(0o640)
    with pytest.raises(acmestore.StoreError, match=r"^permissions 640 for /data/acme.json are too open, "
                                                   r"please use 600$"):
        acmestore.check_and_load("/data/acme.json", disk)
    # keys matched case-insensitively; a certificate with no key is dropped and the file rewritten
    disk.chmod(0o600)
    disk.write_bytes(b'{"le": {"account": null, "certificates": [{"domain": {"main": "a.example"}, '
                     b'"certificate": "eA=="}]}}')
    assert acmestore.check_and_load("/data/acme.json", disk) == {"le": {"Account": None, "Certificates": None}}
    assert disk.read_bytes() == b'{\n  "le": {\n    "Account": null,\n    "Certificates": null\n  }\n}'


# -- acme.json on the simulated lab's nodes -------------------------------------------------------


def ok(run: LabupRun) -> LabupRun:
    assert run.returncode == 0, run.stderr[-4000:]
    return run


def talosctl_read(lab: SimLab, address: str, path: str) -> tuple[int, bytes, str]:
    """The simulator's talosctl, run in the client namespace with labup's environment and flags."""
    argv = [str(lab.sim.talosctl), "--talosconfig", str(lab.sim.talosconfig), "-e", address, "-n", address,
            "read", path]
    proc = lab.net.run(CLIENT.name, argv, env=lab.env, text=False)
    return proc.returncode, proc.stdout, proc.stderr.decode()


def restart_traefik(lab: SimLab) -> str:
    """Delete Traefik's pod: its Deployment makes a new one, on the same node (pinned there)."""
    [pod] = lab.running_traefik()
    lab.emu.store.delete(lab.emu.registry.by_kind("v1", "Pod"), pod.namespace, pod.name)  # type: ignore[arg-type]
    lab.emu.controllers.resync()
    started = lab.wait_until(lambda: [p for p in lab.running_traefik() if p.uid != pod.uid], 10)
    assert [p.node for p in started] == [pod.node], started
    assert lab.pod_mirror.wait_serving([lab.node(pod.node).netns])
    return started[0].name


def served_cert(lab: SimLab, node: str) -> x509.Certificate:
    address = lab.node(node).address
    return lab.in_client(lambda: tls_get(address, lab.domain)).cert


def served_subject(lab: SimLab, node: str) -> str:
    return served_cert(lab, node).subject.rfc4514_string()


def traefik_log(lab: SimLab, pod: str) -> str:
    return lab.emu.read_log(lab.traefik_namespace, pod, None, None).decode()


def settle(lab: SimLab) -> None:
    """Longer than an order takes: an order that was going to happen has happened."""
    time.sleep(lab.acme.delay_s + 0.5)


def assert_traefik_store(doc: dict[str, Any], lab: SimLab) -> None:
    """pkg/provider/acme's shape, keys exactly; the certificate is the one the stand-in serves."""
    assert list(doc) == ["letsencrypt"]
    stored = doc["letsencrypt"]
    assert list(stored) == ["Account", "Certificates"]
    account = stored["Account"]
    assert list(account) == ["Email", "Registration", "PrivateKey"]
    assert account["Email"] == "admin@labup-tests.dev"
    assert account["Registration"]["body"] == {"status": "valid", "contact": ["mailto:admin@labup-tests.dev"]}
    assert account["Registration"]["uri"].startswith("https://acme-v02.api.letsencrypt.org/acme/acct/")
    key = serialization.load_der_private_key(base64.b64decode(account["PrivateKey"]), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)  # DER PKCS#1, as x509.MarshalPKCS1PrivateKey
    [entry] = stored["Certificates"]
    assert list(entry) == ["domain", "certificate", "key", "Store"]
    assert entry["domain"] == {"main": lab.domain} and entry["Store"] == "default"
    chain = x509.load_pem_x509_certificates(base64.b64decode(entry["certificate"]))
    leaf = chain[0]
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [lab.domain]
    assert leaf == lab.certs.good.cert and chain[1:] == [lab.certs.ca.cert]  # leaf first, then its issuer
    private = serialization.load_pem_private_key(base64.b64decode(entry["key"]), password=None)
    assert private.public_key() == leaf.public_key()


@pytest.mark.root
def test_acme_json_is_a_real_file_on_traefiks_node(simlab: Callable[..., SimLab]) -> None:
    lab = simlab()
    ok(lab.labup("apply"))
    assert lab.wait_until(lambda: lab.acme.issued, 5)
    [pod] = lab.running_traefik()
    assert pod.node == "cp-1"
    cp = lab.node("cp-1")
    before = len(lab.sim.calls("read"))

    code, raw, err = talosctl_read(lab, cp.address, ACME)
    assert (code, err) == (0, "")
    assert raw == lab.node_file("cp-1", ACME).read_bytes()  # byte-exact
    assert raw == (lab.files_dir / cp.address / ACME.lstrip("/")).read_bytes()
    assert_traefik_store(json.loads(raw), lab)
    assert lab.acme_json("cp-1") == json.loads(raw)
    assert stat.S_IMODE(lab.node_file("cp-1", ACME).stat().st_mode) == 0o600
    assert raw.startswith(b'{\n  "letsencrypt": {\n    "Account": {') and not raw.endswith(b"\n")  # MarshalIndent
    assert len(lab.sim.calls("read")) == before + 1
    # only Traefik's node has it
    code, _, err = talosctl_read(lab, lab.node("wk-1").address, ACME)
    assert (code, err) == (1, NOT_FOUND.format(ACME))
    assert [(node, domain) for node, domain, _ in lab.acme.orders] == [("cp-1", lab.domain)]

    # a restart on the same node: Traefik loads the file and serves its certificate, no new order
    restart_traefik(lab)
    assert served_subject(lab, "cp-1") == f"CN={lab.domain}"
    settle(lab)
    assert len(lab.acme.orders) == 1
    assert lab.node_file("cp-1", ACME).read_bytes() == raw  # read, not rewritten

    # the file wiped (empty, 0600): a new account and a new order, written back in place
    lab.sim.write_node_file(cp.address, ACME, b"", 0o600)
    lab.acme.delay_s = 2.0  # time to see what Traefik serves until the order completes
    restart_traefik(lab)
    assert served_subject(lab, "cp-1") == "CN=TRAEFIK DEFAULT CERT"
    lab.acme.delay_s = 0.5
    assert lab.wait_until(lambda: len(lab.acme.orders) == 2, 5)
    assert lab.wait_until(lambda: lab.acme_json("cp-1"), 5)
    assert_traefik_store(lab.acme_json("cp-1"), lab)
    new_account = lab.acme_json("cp-1")["letsencrypt"]["Account"]["Registration"]["uri"]
    assert new_account != json.loads(raw)["letsencrypt"]["Account"]["Registration"]["uri"]
    assert lab.wait_until(lambda: served_subject(lab, "cp-1") == f"CN={lab.domain}", 5)

    # `{}` is no data either
    lab.sim.write_node_file(cp.address, ACME, b"{}", 0o600)
    restart_traefik(lab)
    assert lab.wait_until(lambda: len(lab.acme.orders) == 3, 5)
    # the order is counted when it starts: wait until its certificate is on the disk (and served)
    assert lab.wait_until(lambda: ((lab.acme_json("cp-1") or {}).get("letsencrypt") or {}).get("Certificates"), 5)
    assert lab.wait_until(lambda: served_subject(lab, "cp-1") == f"CN={lab.domain}", 5)

    # labup's init container seeds an empty file from the backup Secret (its real script, run by sh):
    # Traefik starts with the restored certificate and orders nothing
    backup = lab.node_file("cp-1", ACME).read_bytes()
    lab.emu.create("v1", "Secret", {"metadata": {"name": "labup-acme-backup", "namespace": lab.traefik_namespace},
                                    "data": {"acme.json": base64.b64encode(backup).decode()}})
    lab.sim.write_node_file(cp.address, ACME, b"", 0o600)
    restart_traefik(lab)
    assert lab.node_file("cp-1", ACME).read_bytes() == backup
    assert stat.S_IMODE(lab.node_file("cp-1", ACME).stat().st_mode) == 0o600
    assert served_subject(lab, "cp-1") == f"CN={lab.domain}"
    settle(lab)
    assert len(lab.acme.orders) == 3


@pytest.mark.root
def test_traefik_refuses_a_store_it_cannot_trust(simlab: Callable[..., SimLab]) -> None:
    lab = simlab()
    ok(lab.labup("apply"))
    assert lab.wait_until(lambda: lab.acme.issued, 5)
    cp = lab.node("cp-1")

    # a certificate about to expire: served at once, renewed as Traefik starts (one order), file rewritten
    store = lab.acme_json("cp-1")
    store["letsencrypt"]["Certificates"] = [certificate_entry(lab.domain, lab.certs.expiring, [lab.certs.ca])]
    lab.sim.write_node_file(cp.address, ACME, json.dumps(store), 0o600)
    lab.acme.delay_s = 2.0
    restart_traefik(lab)
    assert served_cert(lab, "cp-1") == lab.certs.expiring.cert
    assert lab.wait_until(lambda: len(lab.acme.orders) == 2, 5)
    lab.acme.delay_s = 0.5
    [renewed] = lab.acme_json("cp-1")["letsencrypt"]["Certificates"]
    assert x509.load_pem_x509_certificates(base64.b64decode(renewed["certificate"]))[0] == lab.certs.good.cert
    assert lab.acme_json("cp-1")["letsencrypt"]["Account"] == store["letsencrypt"]["Account"]  # kept
    good = lab.node_file("cp-1", ACME).read_bytes()

    # a file that is not JSON: the resolver is skipped, Traefik keeps its default certificate, no order
    lab.sim.write_node_file(cp.address, ACME, b"{not json", 0o600)
    pod = restart_traefik(lab)
    settle(lab)
    assert ('ERR The ACME resolve is skipped from the resolvers list error="unable to get ACME account: '
            "invalid character 'n' looking for beginning of object key string\" resolver=letsencrypt"
            in traefik_log(lab, pod))
    assert served_subject(lab, "cp-1") == "CN=TRAEFIK DEFAULT CERT" and len(lab.acme.orders) == 2
    assert lab.node_file("cp-1", ACME).read_bytes() == b"{not json"  # left as it was

    # 0644: labup's init container (`touch ... && chmod 600 ...`) puts it back to 0600 before Traefik reads it
    lab.sim.write_node_file(cp.address, ACME, good, 0o644)
    pod = restart_traefik(lab)
    assert stat.S_IMODE(lab.node_file("cp-1", ACME).stat().st_mode) == 0o600
    assert served_subject(lab, "cp-1") == f"CN={lab.domain}"
    assert "too open" not in traefik_log(lab, pod)

    # without that init container, Traefik itself refuses a 0644 file (CheckFile) and never orders
    deployment = lab.emu.get("apps/v1", "Deployment", "traefik", lab.traefik_namespace)
    del deployment["spec"]["template"]["spec"]["initContainers"]
    lab.sim.write_node_file(cp.address, ACME, good, 0o644)
    [old] = lab.running_traefik()
    lab.emu.update("apps/v1", "Deployment", deployment)
    lab.emu.controllers.resync()
    assert lab.wait_until(lambda: [p for p in lab.running_traefik() if p.uid != old.uid], 10)
    [pod_now] = lab.running_traefik()
    assert lab.pod_mirror.wait_serving([cp.netns])
    settle(lab)
    assert ('ERR The ACME resolve is skipped from the resolvers list error="unable to get ACME account: '
            'permissions 644 for /data/acme.json are too open, please use 600" resolver=letsencrypt'
            in traefik_log(lab, pod_now.name))
    assert served_subject(lab, "cp-1") == "CN=TRAEFIK DEFAULT CERT"
    assert len(lab.acme.orders) == 2
    assert stat.S_IMODE(lab.node_file("cp-1", ACME).stat().st_mode) == 0o644
