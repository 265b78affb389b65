"""Certificates survive the node (issue 14), on the simulated lab: acme.json is a real file on each
node's disk in Traefik's format (read back with the simulator's `talosctl read`), the ACME stand-in
counts every certificate order, init containers and labup restore's copy pod run their scripts with a
real sh against the node's disk."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from e2e import TWO_CP_NODES, LabupRun, SimLab

pytestmark = pytest.mark.root

ACME = "/var/mnt/traefik/acme.json"


def ok(run: LabupRun) -> LabupRun:
    assert run.returncode == 0, run.stderr[-4000:]
    return run


def traefik_node(lab: SimLab) -> str:
    [node] = [p.node for p in lab.running_traefik()]
    return node


def no_key_in(*texts: str) -> None:
    for text in texts:
        assert "PRIVATE KEY" not in text and '"key":' not in text and "PrivateKey" not in text


def test_backup_wipe_restore_gives_back_the_same_file_and_no_new_order(simlab: Callable[..., SimLab]) -> None:
    lab = simlab()
    ok(lab.labup("apply"))
    node = traefik_node(lab)
    on_node = lab.node_file(node, ACME)
    orders = len(lab.acme.orders)
    assert orders == 1

    backup = ok(lab.labup("backup"))
    doc = backup.doc
    saved = Path(doc["file"])
    assert saved.read_bytes() == on_node.read_bytes()  # what the node holds, byte for byte
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600 and stat.S_IMODE(saved.parent.stat().st_mode) == 0o700
    [cert] = doc["certificates"]
    assert cert["domains"] == [lab.domain] and cert["staging"] is False and cert["days_left"] > 80
    no_key_in(backup.stdout, backup.stderr)
    human = ok(lab.labup("backup", json_out=False))
    assert lab.domain in human.stdout and "production" in human.stdout and "days left" in human.stdout
    assert ok(lab.labup("verify")).checks()["acme-backup"]["status"] == "pass"

    on_node.write_bytes(b"")  # the node's file lost
    before_pod = {p.name for p in lab.running_traefik()}
    plan = ok(lab.labup("restore", str(saved), "--dry-run"))
    assert on_node.read_bytes() == b"" and plan.doc["replaces"] == []
    restored = ok(lab.labup("restore", str(saved), "--yes"))
    assert on_node.read_bytes() == saved.read_bytes()
    assert stat.S_IMODE(on_node.stat().st_mode) == 0o600
    assert {p.name for p in lab.running_traefik()}.isdisjoint(before_pod)  # Traefik was restarted
    assert len(lab.acme.orders) == orders  # it loaded the restored certificate: nothing re-requested
    assert not lab.emu.find("v1", "Secret", "labup-acme-restore", "traefik")  # nothing left behind
    assert not [p for p in lab.emu.list("v1", "Pod", "traefik") if p["metadata"]["name"].startswith("labup-acme")]
    assert [problems for _, _, problems in lab.one_shots.ran] == [[]]
    no_key_in(restored.stdout, restored.stderr, (lab.lab_file.parent / ".labup" / "journal.jsonl").read_text()
              if (lab.lab_file.parent / ".labup" / "journal.jsonl").exists() else "")
    assert ok(lab.labup("verify")).checks()["https-cert"]["status"] == "pass"


def test_a_bad_restore_changes_nothing_anywhere(simlab: Callable[..., SimLab], tmp_path: Path) -> None:
    lab = simlab()
    ok(lab.labup("apply"))
    node = traefik_node(lab)
    before = lab.node_file(node, ACME).read_bytes()
    bad = tmp_path / "truncated.json"
    bad.write_bytes(before[: len(before) // 2])
    counts = lab.counts()
    refused = lab.labup("restore", str(bad), "--yes")
    assert refused.returncode == 2 and "not JSON" in refused.stderr
    assert lab.node_file(node, ACME).read_bytes() == before
    spent = lab.counts() - counts
    assert spent.writes == 0 and spent.talos_calls == 0 and spent.api_requests == 0  # judged before asking

    lab.node_file(node, ACME).write_bytes(b"{}")  # a store without a certificate (yet): nothing to keep
    empty = lab.labup("backup")
    assert empty.returncode == 1 and "holds no certificate yet" in empty.stderr and empty.doc["file"] is None
    assert not (lab.lab_file.parent / ".labup" / "backups").exists() or \
        not list((lab.lab_file.parent / ".labup" / "backups").iterdir())


def test_the_vip_moves_and_the_certificates_follow_traefik(simlab: Callable[..., SimLab]) -> None:
    """backup.in_cluster: the backup is also the Secret that seeds an empty acme.json, so when the VIP
    fails over and apply moves Traefik to the other control plane, nothing is ordered again."""
    lab = simlab(nodes=TWO_CP_NODES)
    lab.write_lab(backup={"in_cluster": True})
    cp2 = lab.node("cp-2")
    ok(lab.labup("apply"))
    assert traefik_node(lab) == "cp-1"
    saved = Path(ok(lab.labup("backup")).doc["file"])
    secret = lab.emu.find("v1", "Secret", "labup-acme-backup", "traefik")
    assert secret is not None and secret["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "labup"
    orders = len(lab.acme.orders)
    assert not lab.node_file("cp-2", ACME).exists()

    lab.sim.set_holder(cp2.address)
    assert lab.vip_mirror.wait_for(cp2.netns)
    again = ok(lab.labup("apply"))
    assert traefik_node(lab) == "cp-2"
    assert lab.node_file("cp-2", ACME).read_bytes() == saved.read_bytes()  # seeded before Traefik started
    assert len(lab.acme.orders) == orders  # the certificate went with Traefik: no new order
    assert again.checks()["https-cert"]["status"] == "pass"
    no_key_in(again.stdout, again.stderr)
    assert os.stat(lab.node_file("cp-2", ACME)).st_mode & 0o077 == 0
    assert json.loads(saved.read_text())  # the backup itself is still a valid store


def test_a_restore_that_fails_puts_the_replaced_file_back(simlab: Callable[..., SimLab], tmp_path: Path) -> None:
    lab = simlab()
    ok(lab.labup("apply"))
    node = traefik_node(lab)
    live = lab.node_file(node, ACME).read_bytes()
    other = tmp_path / "same-store-other-bytes.json"
    other.write_text(json.dumps(json.loads(live)))  # a valid store, not byte-identical to the node's
    lab.emu.inject_fault("POST", r"^/api/v1/namespaces/traefik/pods$", 403, count=1, message="denied")
    failed = lab.labup("restore", str(other), "--yes")
    assert failed.returncode == 1, failed.stderr
    assert "the replaced file is back in place" in failed.stderr
    assert lab.node_file(node, ACME).read_bytes() == live
    kept = sorted((lab.lab_file.parent / ".labup" / "backups").iterdir())
    assert kept and kept[-1].read_bytes() == live  # the replaced file was backed up first
    assert not lab.emu.find("v1", "Secret", "labup-acme-restore", "traefik")
