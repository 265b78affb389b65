"""`labup status` on the simulated lab (tests/e2e): the real command, in the client namespace, after a
real apply: where the VIP and Traefik are, the paradox after a failover, the parts it cannot read
(no talosctl, no kubeconfig) shown unknown with exit 0, and --watch ended by Ctrl-C.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from typing import Any

import pytest

from e2e import TWO_CP_NODES, LabupRun, SimLab
from e2e.simlab import SYSTEM_PATH

pytestmark = pytest.mark.root


def ok(run: LabupRun) -> LabupRun:
    assert run.returncode == 0, run.stderr[-4000:]
    assert "Traceback" not in run.stderr
    return run


def nodes(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n["name"]: n for n in doc["nodes"]}


def node_line(text: str, name: str) -> str:
    [line] = [line for line in text.splitlines() if f"── {name} " in line]
    return line


def test_status_names_the_holder_and_traefik_then_flags_the_paradox_after_a_failover(
        simlab: Callable[..., SimLab]) -> None:
    lab = simlab(nodes=TWO_CP_NODES)
    ok(lab.labup("apply"))

    before = lab.counts()
    run = ok(lab.labup("status"))
    spent = lab.counts() - before  # reads only, each once: addresses and version for all nodes at once
    assert (spent.writes, spent.talos_calls, spent.helm_calls) == (0, 2, 0) and spent.api_requests <= 4, spent
    assert run.elapsed < 5, run.elapsed  # bounded: verify.timeout_s (3 s here) + grace; ~0.6 s in practice
    doc = run.doc
    assert doc["schema_version"] == 1 and doc["exit_code"] == 0
    assert doc["vip"] == {"address": lab.vip, "holder": "cp-1", "holders": ["cp-1"], "unknown": None}
    seen = nodes(doc)
    assert [p["node"] for p in doc["traefik"]["pods"]] == ["cp-1"] and doc["traefik"]["pods"][0]["ready"]
    assert len(seen["cp-1"]["traefik_pods"]) == 1 and seen["cp-2"]["traefik_pods"] == []
    assert {n["talos_version"] for n in seen.values()} == {"v1.13.0"}
    assert all(n["ready"] for n in seen.values()) and seen["cp-1"]["holds_vip"] and not seen["cp-2"]["holds_vip"]
    assert doc["paradox"]["found"] is False
    cert = doc["certificate"]
    assert cert["unknown"] is None and cert["verified"] and not cert["staging"] and cert["days_left"] > 0
    release = doc["release"]
    assert release["revision"] == 1 and release["status"] == "deployed" and release["deployed_at"]
    assert doc["namespace"]["enforce"] == "privileged"
    assert [(r["command"], r["outcome"]) for r in doc["runs"]["last"]] == [("apply", "ok")]

    text = ok(lab.labup("status", json_out=False)).stdout
    assert "[VIP]" in node_line(text, "cp-1") and "[Traefik ready]" in node_line(text, "cp-1")
    assert "[VIP]" not in node_line(text, "cp-2") and "Traefik" not in node_line(text, "cp-2")
    assert "ok: a ready Traefik pod runs on cp-1, the VIP's node" in text and "paradox" not in text

    cp2 = lab.node("cp-2")
    lab.sim.set_holder(cp2.address)  # Talos fails the VIP over; Traefik stays pinned to cp-1
    assert lab.vip_mirror.wait_for(cp2.netns)
    moved = ok(lab.labup("status"))
    assert moved.doc["vip"]["holder"] == "cp-2" and moved.doc["paradox"]["found"] is True
    assert "refused the connection" in moved.doc["certificate"]["unknown"]  # nothing listens on cp-2
    text = ok(lab.labup("status", json_out=False)).stdout
    flagged = [line for line in text.splitlines() if "paradox" in line]
    assert flagged == ["!! paradox: VIP on cp-2 has no ready Traefik pod (Traefik ready on cp-1): run `labup apply`"]
    assert "[VIP]" in node_line(text, "cp-2") and "[Traefik ready]" in node_line(text, "cp-1")


def test_status_without_talosctl_or_kubeconfig_exits_0_with_what_it_could_read(
        simlab: Callable[..., SimLab]) -> None:
    lab = simlab()
    ok(lab.labup("apply"))
    no_talosctl = {"PATH": os.pathsep.join([str(lab.helm_bin), SYSTEM_PATH])}

    doc = ok(lab.labup("status", env=no_talosctl)).doc
    assert {n["talos_unknown"] for n in doc["nodes"]} == {"talosctl not found on PATH"}
    assert doc["vip"]["holder"] is None and "talosctl not found on PATH" in doc["vip"]["unknown"]
    assert doc["paradox"]["found"] is None
    assert all(n["ready"] for n in doc["nodes"]) and doc["traefik"]["pods"]  # Kubernetes still read
    assert doc["certificate"]["verified"] and doc["release"]["revision"] == 1
    text = ok(lab.labup("status", json_out=False, env=no_talosctl)).stdout
    assert text.count("Talos: unknown (talosctl not found on PATH)") == 1  # said once, for every node

    data = lab.lab_data()
    del data["kubernetes"]["kubeconfig"]  # and $KUBECONFIG unset, no ~/.kube/config in the lab's HOME
    lab.write_lab(data)
    doc = ok(lab.labup("status", env={"KUBECONFIG": ""})).doc
    assert doc["vip"]["holder"] == "cp-1"  # Talos still read
    for part in ("traefik", "release", "namespace"):
        assert doc[part]["unknown"].startswith("no kubeconfig at "), doc[part]
    assert {n["ready_unknown"] for n in doc["nodes"]} == {doc["traefik"]["unknown"]}
    assert doc["certificate"]["verified"] and doc["paradox"]["found"] is None

    both = ok(lab.labup("status", json_out=False, env={**no_talosctl, "KUBECONFIG": ""}))
    assert "Talos: unknown (talosctl not found on PATH)" in both.stdout
    assert "Kubernetes: unknown (no kubeconfig at" in both.stdout
    assert "Traefik  namespace traefik: unknown (as above)" in both.stdout  # one reason, said once
    assert "?? cannot tell where Traefik should be" in both.stdout
    assert "tazlab.example: labup test CA (production, trusted), " in both.stdout and " days left, to " in both.stdout


def _frames(proc: subprocess.Popen[str], marker: Callable[[str], bool], count: int, timeout: float) -> list[str]:
    """Lines of stdout until `count` of them pass `marker` (or the timeout)."""
    lines: list[str] = []
    done = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if sum(map(marker, lines)) >= count:
                done.set()
                return

    threading.Thread(target=read, daemon=True).start()
    done.wait(timeout)
    return lines


@pytest.mark.parametrize("json_out", [False, True], ids=["text", "json"])
def test_status_watch_refreshes_until_ctrl_c_which_ends_it_quietly(simlab: Callable[..., SimLab],
                                                                   json_out: bool) -> None:
    lab = simlab()  # nothing applied: no node holds the VIP
    proc = lab.start_labup("status", "--watch", "--interval", "0.5", json_out=json_out, start_new_session=True)
    try:
        if json_out:
            lines = _frames(proc, lambda line: line.startswith("{"), 2, 30)
            docs = [json.loads(line) for line in lines[:2]]  # one compact document a line
            assert [d["command"] for d in docs] == ["status", "status"]
            assert docs[0]["vip"]["holder"] is None and docs[0]["vip"]["unknown"] is None
            assert docs[0]["certificate"]["unknown"] == "not asked: no node holds the VIP 192.0.2.250"
        else:
            lines = _frames(proc, lambda line: line.startswith("(every 0.5s; Ctrl-C ends)"), 2, 30)
            assert sum(line.startswith("tazlab · VIP 192.0.2.250 held by no node") for line in lines) == 2
        os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C: the whole process group
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err + out and "interrupted" not in err
