"""`labup status` without a lab: the judgement (the paradox), the journal's runs, the --json shape, the
screen (a 100-column snapshot per scene, tests/fixtures/status/), the reads when nothing can be
reached, --watch ended by Ctrl-C, usage errors. The simulated lab: tests/test_status_e2e.py.

The snapshots are compared exactly. After a deliberate change of the screen, rewrite them with
    LABUP_UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/test_status.py -k snapshot
and review the diff of tests/fixtures/status/ before committing it.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from labup.checks.kube_facts import TraefikPod
from labup.config import Lab, parse
from labup.errors import Interrupted
from labup.options import Options
from labup.status import reads
from labup.status.model import (
    Certificate,
    LabStatus,
    Namespace,
    NodeView,
    Part,
    Release,
    RunView,
)
from labup.status_view import age, to_text

from conftest import run_labup

SNAPSHOTS = Path(__file__).parent / "fixtures" / "status"
NOW = dt.datetime(2026, 5, 4, 12, 0, tzinfo=dt.UTC)
PSA = "pod-security.kubernetes.io/"
LAB_ID = "lab-id"


def pod(node: str | None, ready: bool = True, name: str | None = None, phase: str = "Running") -> TraefikPod:
    return TraefikPod(name or f"traefik-7d4f9c-{node}", node, phase, ready, True)


def node(name: str, address: str, *, holds: bool | None = False, role: str = "controlplane",
         version: str | None = "v1.13.0", ready: bool | None = True, talos_why: str | None = None,
         ready_why: str | None = None) -> NodeView:
    return NodeView(name, address, role, version, talos_why, holds, ready, ready_why)


def scene(nodes: tuple[NodeView, ...], pods: tuple[TraefikPod, ...] | None = (), **parts: Any) -> LabStatus:
    """A reading of a three-node lab at NOW; every part known unless given."""
    defaults: dict[str, Any] = {
        "traefik": Part(pods) if pods is not None else Part(unknown="no kubeconfig at /home/op/.kube/config"),
        "release": Part(Release("traefik", "traefik", 3, "deployed", "traefik-39.0.0", "v3.6.2",
                                NOW - dt.timedelta(hours=2, minutes=5))),
        "certificate": Part(Certificate("lab.example.org", "CN=lab.example.org", "R11", False, True, None, False,
                                        NOW + dt.timedelta(days=81, hours=3))),
        "namespace": Part(Namespace("traefik", True, {f"{PSA}{m}": "privileged" for m in ("enforce", "audit",
                                                                                         "warn")})),
        "runs": Part((RunView("r2", NOW - dt.timedelta(hours=2), "apply", 0),
                      RunView("r1", NOW - dt.timedelta(days=1, hours=3), "phase traefik", 1, True,
                              "traefik/release: helm upgrade timed out waiting for the condition after 300s"),
                      RunView("r0", NOW - dt.timedelta(days=3), "apply", None))),
    }
    return LabStatus("homelab", "10.0.0.250", NOW, 0.42, 5.0, nodes, **{**defaults, **parts},
                     domain="lab.example.org", release_name="traefik", traefik_namespace="traefik")


CP1, CP2, WK = ("cp-1", "10.0.0.10"), ("cp-2", "10.0.0.12"), ("wk-1", "10.0.0.11")
HEALTHY = scene((node(*CP1, holds=True), node(*CP2), node(*WK, role="worker")), (pod("cp-1"),))
FAILOVER = scene(
    (node(*CP1), node(*CP2, holds=True),
     node(*WK, role="worker", holds=None, version=None, ready=False,
          talos_why="talosctl get version on 10.0.0.11: rpc error: code = Unavailable desc = connection refused")),
    (pod("cp-1"),),
    certificate=Part(unknown="10.0.0.250:443 refused the connection"))
NO_TOOLS = scene(
    tuple(node(*n, holds=None, version=None, ready=None, talos_why="talosctl not found on PATH",
               ready_why="no kubeconfig at /home/op/.kube/config") for n in (CP1, CP2)),
    None,
    release=Part(unknown="no kubeconfig at /home/op/.kube/config"),
    namespace=Part(unknown="no kubeconfig at /home/op/.kube/config"),
    certificate=Part(Certificate("lab.example.org", "CN=lab.example.org", "(STAGING) Ersatz Edamame E1", True,
                                 False, "unable to get local issuer certificate", False,
                                 NOW + dt.timedelta(days=9))),
    runs=Part(()))
SCENES = {"healthy": HEALTHY, "failover": FAILOVER, "no-tools": NO_TOOLS}


# -- the screen -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SCENES))
def test_the_screen_at_100_columns_matches_its_snapshot(name: str) -> None:
    text = to_text(SCENES[name], width=100)
    path = SNAPSHOTS / f"{name}.txt"
    if os.environ.get("LABUP_UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.read_text() == text, f"the screen changed: review it, then refresh {path} (see this file's docstring)"
    assert max(len(line) for line in text.splitlines()) <= 100


def test_the_paradox_is_one_flagged_line() -> None:
    lines = to_text(FAILOVER).splitlines()
    assert [line for line in lines if "paradox" in line] == [
        "!! paradox: VIP on cp-2 has no ready Traefik pod (Traefik ready on cp-1): run `labup apply`"]
    assert "paradox" not in to_text(HEALTHY)


def test_a_reason_every_part_shares_is_said_once() -> None:
    text = to_text(NO_TOOLS)
    assert text.count("no kubeconfig at /home/op/.kube/config") == 1
    assert text.count("unknown (as above)") == 3  # Traefik, release, Pod Security
    assert text.count("talosctl not found on PATH") == 1


def test_outside_text_is_cleaned_and_secrets_never_shown() -> None:
    secret = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
    status = scene((node(*CP1, holds=True),), (pod("cp-1"),),
                   release=Part(unknown=f"the API said: Authorization: Bearer {secret}\x1b[2J token={secret}"))
    text = to_text(status)
    assert secret not in text and "\x1b" not in text and "\\x1b[2J" in text
    from labup.status_command import document

    assert secret not in json.dumps(document(status))


def test_ages() -> None:
    assert [age(dt.timedelta(seconds=s)) for s in (-5, 30, 90, 7200, 86_400 * 3 + 5)] == [
        "just now", "just now", "1m ago", "2h ago", "3d ago"]


# -- the judgement --------------------------------------------------------------------------------


@pytest.mark.parametrize(("pods", "holder", "paradox"), [
    ((pod("cp-1"),), "cp-1", False),
    ((pod("cp-1"),), "cp-2", True),
    ((pod("cp-1", ready=False),), "cp-1", True),  # on the holder, but not ready: nothing answers
    # Traefik as a DaemonSet on every control plane: the question is the holder's own pod
    ((pod("cp-1"), pod("cp-2")), "cp-2", False),
    ((pod("cp-1"), pod("cp-2", ready=False)), "cp-2", True),
    ((), "cp-1", None),
    (None, "cp-1", None),
], ids=["with-holder", "elsewhere", "not-ready", "daemonset", "daemonset-holder-not-ready", "no-pod",
        "pods-unknown"])
def test_the_paradox_is_no_ready_traefik_pod_on_the_holder(pods: tuple[TraefikPod, ...] | None, holder: str,
                                                          paradox: bool | None) -> None:
    status = scene((node(*CP1, holds=holder == "cp-1"), node(*CP2, holds=holder == "cp-2")), pods)
    assert status.placement().paradox is paradox
    assert status.as_dict()["paradox"]["found"] is paradox


def test_the_holder_is_unknown_only_while_a_node_that_may_hold_it_is_unread() -> None:
    unread = node(*CP1, holds=None, version=None, talos_why="connection refused")
    assert scene((unread, node(*CP2)), ()).holder == Part(unknown="cp-1: connection refused")
    assert scene((unread, node(*CP2, holds=True)), ()).holder == Part("cp-2")
    assert scene((node(*CP1), node(*CP2)), ()).holder == Part(None)  # known: nobody holds it
    both = scene((node(*CP1, holds=True), node(*CP2, holds=True)), ())
    assert both.holder == Part("cp-1, cp-2") and both.as_dict()["vip"]["holders"] == ["cp-1", "cp-2"]


# -- the journal ----------------------------------------------------------------------------------


def event(run: str, kind: str, ts: str = "2026-05-04T10:00:00+0200", lab: str = LAB_ID,
          **fields: Any) -> dict[str, Any]:
    return {"ts": ts, "run": run, "event": kind, "lab": lab, **fields}


def test_runs_newest_first_with_their_outcome_and_only_this_labs() -> None:
    events = [
        event("a", "run-start", command="apply", ts="2026-05-01T09:00:00+0200"), event("a", "run-end", exit_code=0),
        event("b", "run-start", command="apply"), event("b", "applied", phase="vip", step="cp-1"),
        event("b", "undone", phase="vip", step="cp-1"), event("b", "run-end", exit_code=1, error="boom"),
        event("c", "run-start", command="rollback"), event("c", "run-end", exit_code=3),
        event("d", "run-start", command="apply"),  # killed: no end
        event("e", "run-start", command="apply", lab="another-lab"), event("e", "run-end", exit_code=0, lab="x"),
        event("f", "run-end", exit_code="0"),  # an end without a start: not a run to show
        event("g", "run-start", command="phase vip", ts="not a time"), event("g", "run-end", exit_code=True),
    ]
    runs = reads.runs_of(events, LAB_ID)
    assert [(r.run, r.command, r.outcome) for r in runs] == [
        ("g", "phase vip", "failed (exit -1)"), ("d", "apply", "unfinished"),
        ("c", "rollback", "failed, rollback incomplete"), ("b", "apply", "failed, rolled back"), ("a", "apply", "ok")]
    assert runs[-1].at == dt.datetime(2026, 5, 1, 7, 0, tzinfo=dt.UTC) and runs[0].at is None
    assert runs[3].error == "boom"


def test_times_helm_and_the_journal_write() -> None:
    assert reads.parse_time("2026-05-04T10:00:00.123456789+02:00") == dt.datetime(
        2026, 5, 4, 8, 0, 0, 123456, tzinfo=dt.UTC)
    assert reads.parse_time("2026-05-04T10:00:00") == dt.datetime(2026, 5, 4, 10, tzinfo=dt.UTC)
    assert reads.parse_time("") is None and reads.parse_time("yesterday") is None


# -- the --json document --------------------------------------------------------------------------


def test_the_json_document_has_its_documented_shape() -> None:
    doc = json.loads(json.dumps(NO_TOOLS.as_dict()))
    assert sorted(doc) == ["at", "certificate", "command", "exit_code", "lab", "namespace", "nodes", "ok",
                           "paradox", "release", "runs", "schema_version", "seconds", "timeout_s", "traefik", "vip"]
    assert (doc["command"], doc["ok"], doc["exit_code"], doc["schema_version"]) == ("status", True, 0, 1)
    assert sorted(doc["vip"]) == ["address", "holder", "holders", "unknown"]
    assert sorted(doc["nodes"][0]) == ["address", "holds_vip", "name", "ready", "ready_unknown", "role",
                                       "talos_unknown", "talos_version", "traefik_pods"]
    assert sorted(doc["traefik"]) == ["namespace", "pods", "unknown"]
    assert sorted(doc["release"]) == ["app_version", "chart", "deployed_at", "exists", "name", "namespace",
                                      "revision", "status", "unknown"]
    assert sorted(doc["certificate"]) == ["days_left", "domain", "issuer", "not_after", "staging", "subject",
                                          "traefik_default", "unknown", "verified", "verify_error"]
    assert sorted(doc["namespace"]) == ["audit", "enforce", "exists", "name", "unknown", "warn"]
    assert sorted(doc["runs"]) == ["last", "unknown"]
    assert sorted(doc["paradox"]) == ["found", "summary"]
    # an unknown part: its values null, its reason given; what lab.yaml says stays
    assert doc["release"] | {"unknown": None} == {"name": "traefik", "namespace": "traefik", "exists": None,
                                                  "revision": None, "status": None, "chart": None,
                                                  "app_version": None, "deployed_at": None, "unknown": None}
    assert doc["traefik"] == {"namespace": "traefik", "pods": None, "unknown": "no kubeconfig at /home/op/.kube/config"}
    assert doc["nodes"][0]["traefik_pods"] is None and doc["nodes"][0]["holds_vip"] is None
    assert doc["certificate"]["days_left"] == 9 and doc["certificate"]["staging"] is True
    assert doc["runs"] == {"last": [], "unknown": None}
    healthy = HEALTHY.as_dict()
    assert healthy["nodes"][0]["traefik_pods"] == ["traefik-7d4f9c-cp-1"] and healthy["vip"]["holder"] == "cp-1"
    assert healthy["release"]["deployed_at"] == "2026-05-04T09:55:00+00:00"
    assert healthy["runs"]["last"][1] == {"run": "r1", "at": "2026-05-03T09:00:00+00:00", "command": "phase traefik",
                                          "outcome": "failed, rolled back", "exit_code": 1,
                                          "error": "traefik/release: helm upgrade timed out waiting for the "
                                                   "condition after 300s"}


# -- the reads, with nothing to reach -------------------------------------------------------------


def make_lab(tmp_path: Path) -> Lab:
    data = {"name": "unit", "vip": {"address": "192.0.2.250"},
            "nodes": [{"name": "cp", "address": "192.0.2.10", "role": "controlplane"},
                      {"name": "wk", "address": "192.0.2.11", "role": "worker"}],
            "traefik": {"domains": ["tazlab.example"], "acme": {"email": "admin@tazlab.example"}},
            "verify": {"timeout_s": 1}}
    return parse(data, tmp_path / "lab.yaml")


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, no_outside_tools: None) -> None:
    """No talosctl, no kubeconfig, and no packet at all: a connection attempt fails the test."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"a unit test must not connect anywhere: {args}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def _refused(*args: Any, **kwargs: Any) -> None:
    raise ConnectionRefusedError(111, "Connection refused")


def test_nothing_reachable_is_every_part_unknown_with_its_reason(tmp_path: Path, offline: None,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from labup.adapters import net

    monkeypatch.setattr(net, "tls_certificate", _refused)
    status = reads.gather(make_lab(tmp_path), now=lambda: NOW)
    assert {n.talos_unknown for n in status.nodes} == {"talosctl not found on PATH"}
    assert {n.ready_unknown for n in status.nodes} == {status.traefik.unknown}
    for part in (status.traefik, status.release, status.namespace):
        assert part.unknown is not None and part.unknown.startswith("no kubeconfig at "), part
    assert status.certificate.unknown == "192.0.2.250:443 refused the connection"
    assert status.runs == Part(())  # no .labup/ yet: no run, known
    assert status.holder.unknown == "talosctl not found on PATH" and status.placement().paradox is None
    assert status.at == NOW and status.seconds < 1


def test_a_read_that_overruns_or_crashes_is_unknown_and_the_others_stand(tmp_path: Path, offline: None,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def slow(ctx: Any) -> None:
        time.sleep(5)

    def crash(ctx: Any) -> None:
        raise KeyError("bug")

    monkeypatch.setitem(reads.REGISTRY, "certificate", reads._read("certificate", slow, "no TLS answer in time"))
    monkeypatch.setitem(reads.REGISTRY, "runs", reads._read("runs", crash, ""))
    started = time.monotonic()
    status = reads.gather(make_lab(tmp_path))
    assert time.monotonic() - started < 2.5  # verify.timeout_s 1, plus the engine's grace
    assert status.certificate.unknown == "no answer within 1s (no TLS answer in time)"
    assert status.runs.unknown is not None and status.runs.unknown.startswith("internal error: KeyError")
    assert status.traefik.unknown is not None and "no kubeconfig" in status.traefik.unknown


@pytest.mark.parametrize(("talos_seconds", "holds", "certificate"), [
    (0.0, False, "not asked: no node holds the VIP 192.0.2.250"),  # no wait for an ARP answer that never comes
    (0.0, True, "192.0.2.250:443 refused the connection"),
    (0.8, False, "192.0.2.250:443 refused the connection"),  # a slow Talos read does not starve the handshake
], ids=["nobody-holds-it", "held", "talos-slow"])
def test_the_certificate_is_asked_unless_talos_says_nobody_holds_the_vip(
        tmp_path: Path, offline: None, monkeypatch: pytest.MonkeyPatch, talos_seconds: float, holds: bool,
        certificate: str) -> None:
    from labup.adapters import net

    lab = make_lab(tmp_path)

    def talos(ctx: Any) -> dict[str, Any]:
        time.sleep(talos_seconds)
        return {n.address: ("v1.13.0", holds and n.role == "controlplane", None) for n in lab.nodes}

    monkeypatch.setitem(reads.REGISTRY, "talos", reads._read("talos", talos, ""))
    monkeypatch.setattr(net, "tls_certificate", _refused)
    assert reads.gather(lab).certificate.unknown == certificate


def test_the_journal_is_read_for_this_lab(tmp_path: Path, offline: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from labup.adapters import net
    from labup.engine.journal import Journal, ensure_state_dir

    monkeypatch.setattr(net, "tls_certificate", _refused)
    lab = make_lab(tmp_path)
    journal = Journal(ensure_state_dir(lab.state_dir), lab_id=lab.identity)
    journal.start("apply", ["vip"])
    journal.write("run-end", exit_code=0)
    Journal(lab.state_dir, lab_id="another").start("apply", ["vip"])
    [run] = reads.gather(lab).runs.value or ()
    assert (run.command, run.outcome) == ("apply", "ok")
    (lab.state_dir / "journal.jsonl").unlink()
    (lab.state_dir / "journal.jsonl").symlink_to(tmp_path / "elsewhere")
    assert "symbolic link" in (reads.gather(lab).runs.unknown or "")


# -- the command ----------------------------------------------------------------------------------


def test_watch_shows_frames_until_ctrl_c_then_exits_0(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from labup import status_command

    monkeypatch.setattr(reads, "gather", lambda lab: HEALTHY)
    naps: list[float] = []

    def sleep(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 2:
            raise KeyboardInterrupt  # Ctrl-C during the second wait

    opts = Options(config=tmp_path / "lab.yaml", color=False)
    assert status_command.run_command(opts, make_lab(tmp_path), watch=True, interval=0.5, sleep=sleep) == 0
    out = capsys.readouterr().out
    assert out.count("homelab · VIP 10.0.0.250 on cp-1") == 2 and out.count("(every 0.5s; Ctrl-C ends)") == 2
    assert naps == [0.5, 0.5]

    opts.json = True
    assert status_command.run_command(opts, make_lab(tmp_path), watch=True, interval=1, sleep=_interrupted) == 0
    [line] = capsys.readouterr().out.splitlines()  # one compact document a refresh
    assert json.loads(line)["vip"]["holder"] == "cp-1"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_it_is_coloured_and_a_watch_redraws_in_place(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    from labup import status_command

    monkeypatch.setattr(reads, "gather", lambda lab: FAILOVER)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    screen = _Terminal()
    monkeypatch.setattr(sys, "stdout", screen)
    opts = Options(config=tmp_path / "lab.yaml")
    assert status_command.run_command(opts, make_lab(tmp_path), watch=True, sleep=_interrupted) == 0
    out = screen.getvalue()
    assert out.startswith(status_command.CLEAR) and "\x1b[" in out.replace(status_command.CLEAR, "")
    assert "paradox: VIP on cp-2" in out and "├──" in out


def _interrupted(seconds: float) -> None:
    raise KeyboardInterrupt


def test_sigterm_during_a_watch_is_not_swallowed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from labup import status_command

    monkeypatch.setattr(reads, "gather", lambda lab: HEALTHY)

    def term(seconds: float) -> None:
        raise Interrupted("SIGTERM")

    with pytest.raises(Interrupted):
        status_command.run_command(Options(config=tmp_path / "lab.yaml"), make_lab(tmp_path), watch=True,
                                   sleep=term)


@pytest.mark.parametrize("args", [("status", "--interval", "0", "--watch"), ("status", "--interval", "nan")])
def test_a_bad_interval_is_a_usage_error(tmp_path: Path, args: tuple[str, ...],
                                         write_lab: Callable[..., Path]) -> None:
    result = run_labup("-c", str(tmp_path / "absent.yaml"), *args)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--interval" in result.stderr


def test_a_bad_lab_yaml_is_still_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "lab.yaml"
    bad.write_text("name: x\nnodes: 3\n")
    result = run_labup("-c", str(bad), "--json", "status")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert json.loads(result.stdout)["exit_code"] == 2
