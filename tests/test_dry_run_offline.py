"""`labup -c examples/lab.yaml apply --dry-run` on a machine with no talosctl and no kubeconfig:
the full plan, exit 0, unknown state shown as unknown, and not one packet towards the lab
(every connect/sendto the process tree makes is traced with strace)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import EXAMPLE, LABUP

PHASES = ["vip", "helm", "namespace", "traefik", "verify"]
STRACE = shutil.which("strace")


@pytest.fixture
def traced(tmp_path: Path, no_outside_tools: None):
    if not STRACE:
        pytest.skip("strace is not installed (make install adds it)")

    def run(*args: str) -> tuple[subprocess.CompletedProcess[str], str]:
        trace = tmp_path / "trace.txt"
        result = subprocess.run([STRACE, "-f", "-qq", "-e", "trace=connect,sendto,sendmsg",
                                 "-o", str(trace), LABUP, *args], capture_output=True, text=True,
                                timeout=120, check=False)
        return result, trace.read_text()

    return run


def _inet_destinations(trace: str) -> list[str]:
    return re.findall(r'sin6?_addr=inet_(?:addr|pton)\([^"]*"([^"]+)"', trace)


def test_example_dry_run_plans_every_phase_offline(traced) -> None:
    result, trace = traced("-c", str(EXAMPLE), "--json", "apply", "--dry-run")
    assert "192.0.2." not in trace
    assert all(addr.startswith(("127.", "::1")) for addr in _inet_destinations(trace)), trace
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["dry_run"] is True and doc["ok"] is True
    assert [p for p in dict.fromkeys(s["phase"] for s in doc["steps"])] == PHASES
    statuses = {s["status"] for s in doc["steps"]}
    assert statuses <= {"ok", "would-change", "unknown", "would-run"}
    assert "unknown" in statuses  # talosctl and kubeconfig are missing: said, not guessed
    assert "nothing was changed" in result.stderr
    # state it cannot read is unknown, yet the plan still says what would be sent
    diffs = {f"{s['phase']}/{s['step']}": s.get("diff") or "" for s in doc["steps"]}
    assert "kind: Layer2VIPConfig" in diffs["vip/talos-unw-ifc"] and "name: 192.0.2.250" in diffs["vip/talos-unw-ifc"]
    assert "is a worker: no VIP patch" in diffs["vip/talos-worker-1"]
    assert "+ pod-security.kubernetes.io/enforce: privileged" in diffs["namespace/pod-security"]
    assert "hostNetwork: true" in diffs["traefik/release"]
    assert not (EXAMPLE.parent / ".labup").exists()


def test_render_sends_nothing(traced) -> None:
    for what in ("vip", "traefik"):
        result, trace = traced("-c", str(EXAMPLE), "render", what)
        assert "192.0.2." not in trace
        assert not _inet_destinations(trace), trace
        assert result.returncode == 0, result.stderr
