"""verify without namespaces: the check framework (concurrency, deadline, dependencies), the command's
JSON and exit codes, the verify phase, and each check's judging code on hand-made facts.

No packet leaves this machine: checks run here are fakes, or the net adapter against loopback
servers; the real checks run on the namespace lab (test_verify_net.py)."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import os
import socket
import ssl
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labup import verify_command as check_runner
from labup.adapters import net
from labup.adapters.talos import TalosAdapter, parse_stream
from labup.checks import CHECK_NAMES
from labup.checks.certinfo import parse_der
from labup.checks.engine import run_checks
from labup.checks.http import judge_redirect, paradox
from labup.checks.kube import TraefikPod, judge_placement, judge_psa, judge_release
from labup.checks.model import FAIL, PASS, SKIP, WARN, Check, CheckContext, CheckResult
from labup.checks.talos_facts import NodeLinks, TalosUnavailable, VipFacts, read_vip_facts
from labup.checks.tls import judge_cert
from labup.checks.vip import ARP_FACT, judge_holder
from labup.config import Lab, parse
from labup.engine.shared import RunShared
from labup.options import Options

from conftest import REPO
from netlab.certs import CertSet, make_cert_set

VIP = "192.0.2.250"
DOMAIN = "tazlab.example"
CP_MAC, WK_MAC = "02:6c:61:62:00:0a", "02:6c:61:62:00:0b"


def make_lab(tmp_path: Path, **verify: Any) -> Lab:
    data = {
        "name": "unit",
        "nodes": [{"name": "cp", "address": "192.0.2.10", "role": "controlplane"},
                  {"name": "wk", "address": "192.0.2.11", "role": "worker"}],
        "vip": {"address": VIP},
        "traefik": {"domains": [DOMAIN], "acme": {"email": "admin@tazlab.example"}},
        "verify": {"timeout_s": 1, **verify},
    }
    return parse(data, tmp_path / "lab.yaml")


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    return make_lab(tmp_path)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertSet:
    return make_cert_set(tmp_path_factory.mktemp("certs"))


def fake(name: str, status: str = PASS, sleep: float = 0.0, **data: Any) -> Check:
    def run(ctx: CheckContext) -> CheckResult:
        time.sleep(sleep)
        return CheckResult(name, status, f"{name} {status}", hint=None if status == PASS else "do this", data=data)

    return Check(name, run)


# -- the framework --------------------------------------------------------------------------------


def test_checks_run_concurrently(lab: Lab) -> None:
    registry = {n: fake(n, sleep=0.4) for n in ("a", "b", "c")}
    start = time.monotonic()
    results = run_checks(lab, ["a", "b", "c"], registry=registry, timeout_s=3)
    assert time.monotonic() - start < 1.0  # three 0.4 s checks, not 1.2 s in a row
    assert [(r.name, r.status) for r in results] == [("a", PASS), ("b", PASS), ("c", PASS)]
    assert all(0.35 < r.seconds < 1.0 for r in results)


def test_an_overrunning_check_fails_and_never_hangs_the_run(lab: Lab) -> None:
    stuck = Check("stuck", lambda ctx: time.sleep(30) or CheckResult("stuck", PASS, "never"),
                  timeout_hint="the stuck thing is stuck")
    start = time.monotonic()
    results = run_checks(lab, ["quick", "stuck"], registry={"quick": fake("quick"), "stuck": stuck},
                         timeout_s=0.5)
    elapsed = time.monotonic() - start
    assert elapsed < 0.5 + 1.0
    quick, late = results
    assert quick.status == PASS
    assert late.status == FAIL and late.summary == "no answer within 0.5s"
    assert late.hint == "the stuck thing is stuck"


def test_a_crashing_check_is_a_fail_and_the_others_still_report(lab: Lab) -> None:
    def boom(ctx: CheckContext) -> CheckResult:
        raise KeyError("nope")

    results = run_checks(lab, ["boom", "ok"], registry={"boom": Check("boom", boom), "ok": fake("ok")}, timeout_s=1)
    assert results[0].status == FAIL and "internal error: KeyError" in results[0].summary
    assert results[1].status == PASS


def test_a_check_can_wait_for_another_ones_result(lab: Lab) -> None:
    seen: dict[str, Any] = {}

    def later(ctx: CheckContext) -> CheckResult:
        first = ctx.result_of("first")
        seen["mac"] = first.data["mac"] if first else None
        seen["absent"] = ctx.result_of("not-selected")
        return CheckResult("later", PASS, "ok")

    registry = {"first": fake("first", sleep=0.3, mac=CP_MAC), "later": Check("later", later)}
    run_checks(lab, ["later", "first"], registry=registry, timeout_s=2)
    assert seen == {"mac": CP_MAC, "absent": None}


def test_a_shared_fact_is_computed_once(lab: Lab) -> None:
    calls: list[int] = []

    def probe() -> str:
        calls.append(1)
        time.sleep(0.2)
        return "value"

    def check(name: str) -> Check:
        return Check(name, lambda ctx: CheckResult(name, PASS, ctx.fact("probe", probe)))

    results = run_checks(lab, ["a", "b", "c"], registry={n: check(n) for n in "abc"}, timeout_s=2)
    assert [r.summary for r in results] == ["value"] * 3
    assert len(calls) == 1


def test_waiting_for_a_fact_past_the_deadline_is_a_timeout_fail(lab: Lab) -> None:
    def slow(ctx: CheckContext) -> CheckResult:
        ctx.fact("slow", lambda: time.sleep(5))
        return CheckResult("slow", PASS, "never")

    def waiter(ctx: CheckContext) -> CheckResult:
        time.sleep(0.05)  # let `slow` start computing the fact first
        ctx.fact("slow", lambda: None)
        return CheckResult("waiter", PASS, "never")

    start = time.monotonic()
    results = run_checks(lab, ["slow", "waiter"], registry={"slow": Check("slow", slow),
                                                            "waiter": Check("waiter", waiter)}, timeout_s=0.4)
    assert time.monotonic() - start < 1.4
    assert [r.status for r in results] == [FAIL, FAIL]
    assert results[1].summary == "no answer within 0.4s (waited for slow)"


def test_results_have_a_known_status() -> None:
    with pytest.raises(ValueError, match="unknown status"):
        CheckResult("x", "ok", "not a check status")


def test_registry_matches_the_contract() -> None:
    from labup.checks.registry import REGISTRY

    assert tuple(REGISTRY) == CHECK_NAMES


# -- the command: JSON, human output, exit codes ----------------------------------------------------


def run_command(monkeypatch: pytest.MonkeyPatch, lab: Lab, statuses: dict[str, str],
                json_out: bool = True) -> int:
    def fake_run(lab: Lab, names: list[str], **kw: Any) -> list[CheckResult]:
        return [CheckResult(n, statuses[n], f"{n} is {statuses[n]}", hint=None if statuses[n] == PASS else "fix it",
                            data={"n": n}, seconds=0.01) for n in names]

    monkeypatch.setattr(check_runner, "run_checks", fake_run)
    monkeypatch.delenv("NO_COLOR", raising=False)
    return check_runner.run_command(Options(config=lab.source, json=json_out), lab, list(statuses))


def test_json_document_and_exit_0_when_nothing_fails(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str], lab: Lab) -> None:
    code = run_command(monkeypatch, lab, {"vip-arp": PASS, "https-cert": WARN, "psa-label": SKIP})
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert code == 0
    assert doc["command"] == "verify" and doc["ok"] is True and doc["exit_code"] == 0
    assert doc["counts"] == {"pass": 1, "warn": 1, "fail": 0, "skip": 1}
    assert doc["checks"][1] == {"name": "https-cert", "status": "warn", "summary": "https-cert is warn",
                                "hint": "fix it", "data": {"n": "https-cert"}, "seconds": 0.01}
    # human output: stderr only, plain (not a terminal), one line per check, hints under problems
    assert "  pass  vip-arp: vip-arp is pass" in err
    assert "  warn  https-cert: https-cert is warn\n    hint: fix it" in err
    assert "summary: 1 pass, 1 warn, 1 skip" in err
    assert "not proven (skipped): psa-label" in err


def test_exit_1_when_a_check_fails(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                   lab: Lab) -> None:
    code = run_command(monkeypatch, lab, {"vip-arp": FAIL, "http-redirect": PASS})
    out, err = capsys.readouterr()
    assert code == 1
    assert json.loads(out)["ok"] is False and json.loads(out)["exit_code"] == 1
    assert "labup: error: 1 check(s) failed: vip-arp" in err


def test_without_json_the_result_is_on_stdout(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                              lab: Lab) -> None:
    """The checks are the command's result: on stdout (`labup verify > report.txt`); with --json,
    stdout is the JSON document alone and the human view moves to stderr."""
    run_command(monkeypatch, lab, {"vip-arp": PASS}, json_out=False)
    out, err = capsys.readouterr()
    assert "pass  vip-arp" in out and "summary: 1 pass" in out and "vip-arp" not in err


def test_unknown_check_exits_2_before_loading_anything(tmp_path: Path) -> None:
    from conftest import run_labup

    result = run_labup("-c", str(tmp_path / "missing.yaml"), "--json", "verify", "--only", "vip-arp", "--only", "dns")
    assert result.returncode == 2
    assert "unknown check 'dns'" in result.stderr
    assert ("valid checks, in order: vip-arp, vip-holder, traefik-placement, http-redirect, https-cert, "
            "psa-label, helm-release") in result.stderr
    assert json.loads(result.stdout)["exit_code"] == 2


def test_kubernetes_checks_read_the_api(lab: Lab, kube_emulator: Any, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The three Kubernetes/Helm checks over the real client and real helm, against the emulator."""
    from dataclasses import replace

    from labup.config import Kubernetes

    kubeconfig = kube_emulator.write_kubeconfig(tmp_path / "kubeconfig")
    lab = replace(lab, kubernetes=Kubernetes(kubeconfig=kubeconfig))
    monkeypatch.setenv("PATH", f"{REPO / '.tools' / 'helm' / '4.1.4'}:{os.environ['PATH']}")
    names = ["traefik-placement", "psa-label", "helm-release"]

    before = {r.name: r for r in run_checks(lab, names)}
    assert before["psa-label"].status == FAIL and "does not exist" in before["psa-label"].summary
    assert before["traefik-placement"].status == FAIL and "no Traefik pod" in before["traefik-placement"].summary
    assert before["helm-release"].status == FAIL and "no Helm release traefik" in before["helm-release"].summary

    kube_emulator.create("v1", "Namespace", {"metadata": {"name": "traefik", "labels": {
        "pod-security.kubernetes.io/enforce": "privileged"}}})
    kube_emulator.create("v1", "Pod", {
        "metadata": {"name": "traefik-abc", "namespace": "traefik", "labels": {
            "app.kubernetes.io/name": "traefik", "app.kubernetes.io/instance": "traefik-traefik"}},
        "spec": {"nodeName": "wk", "hostNetwork": True, "containers": [{"name": "traefik", "image": "x"}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}})
    after = {r.name: r for r in run_checks(lab, ["psa-label", "traefik-placement"])}
    assert after["psa-label"].status == PASS
    # vip-holder did not run here: placement is known, the holder is not
    assert after["traefik-placement"].status == WARN and "runs on wk" in after["traefik-placement"].summary


def test_kubernetes_checks_say_why_they_cannot_read(lab: Lab, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.setenv("PATH", str(tmp_path))
    results = {r.name: r for r in run_checks(lab, ["psa-label", "helm-release"])}
    assert results["psa-label"].status == FAIL and "could not read it" in results["psa-label"].summary
    # helm-release reads Helm's release records through the API: no helm needed, the kubeconfig is
    assert results["helm-release"].status == FAIL and "no kubeconfig" in results["helm-release"].summary
    monkeypatch.setenv("HELM_DRIVER", "configmap")  # helm's records elsewhere: only helm itself reads them
    [release] = run_checks(lab, ["helm-release"])
    assert release.status == FAIL and "no helm" in release.summary


# -- the verify phase -----------------------------------------------------------------------------


def run_phase(monkeypatch: pytest.MonkeyPatch, lab: Lab, *, dry_run: bool,
              statuses: dict[str, str] | None = None) -> tuple[Any, list[int]]:
    from labup.engine.context import Context
    from labup.engine.runner import Runner
    from labup.phases.verify import PHASE
    from labup.ui import Reporter

    calls: list[int] = []

    def fake_run(lab: Lab, names: list[str], **kw: Any) -> list[CheckResult]:
        calls.append(1)
        return [CheckResult(n, (statuses or {}).get(n, PASS), f"{n} said so", hint="because") for n in names]

    monkeypatch.setattr("labup.checks.engine.run_checks", fake_run)
    ctx = Context(lab=lab, dry_run=dry_run, reporter=Reporter(quiet=True))
    return Runner(ctx, [PHASE], "apply", journal=None).run(), calls


def test_verify_phase_dry_run_plans_every_check_and_runs_none(monkeypatch: pytest.MonkeyPatch, lab: Lab) -> None:
    report, calls = run_phase(monkeypatch, lab, dry_run=True)
    assert calls == []
    assert [(r.step, r.status) for r in report.results] == [(n, "would-run") for n in CHECK_NAMES]
    assert report.exit_code == 0


def test_verify_phase_runs_the_checks_once_and_a_fail_fails_without_rollback(monkeypatch: pytest.MonkeyPatch,
                                                                             lab: Lab) -> None:
    statuses = {"http-redirect": FAIL, "https-cert": WARN, "psa-label": SKIP}
    report, calls = run_phase(monkeypatch, lab, dry_run=False, statuses=statuses)
    assert calls == [1]
    by_step = {r.step: r for r in report.results}
    assert by_step["vip-arp"].status == "ok" and by_step["vip-arp"].summary == "vip-arp said so"
    assert by_step["https-cert"].status == "ok" and by_step["https-cert"].summary.startswith("warn: ")
    assert by_step["psa-label"].status == "ok" and by_step["psa-label"].summary.startswith("skip: ")
    assert by_step["http-redirect"].status == "failed"
    assert "labup rollback" in (by_step["http-redirect"].hint or "")
    assert report.exit_code == 1 and report.undone == []


def test_verify_phase_builds_its_steps_without_io(monkeypatch: pytest.MonkeyPatch, lab: Lab) -> None:
    from labup.engine.context import Context
    from labup.phases.verify import PHASE
    from labup.ui import Reporter

    monkeypatch.setattr("labup.checks.engine.run_checks", lambda *a, **k: pytest.fail("ran checks"))
    assert PHASE.steps is not None
    steps = PHASE.steps(Context(lab=lab, dry_run=False, reporter=Reporter(quiet=True)))
    assert [s.name for s in steps] == list(CHECK_NAMES)


# -- talos facts --------------------------------------------------------------------------------------


def talos_json(*objects: dict[str, Any]) -> str:
    return "".join(json.dumps(o, indent=4) + "\n" for o in objects)


def link(node: str, name: str, mac: str, kind: str = "ether") -> dict[str, Any]:
    return {"node": node, "metadata": {"namespace": "network", "type": "LinkStatuses.net.talos.dev", "id": name},
            "spec": {"type": kind, "hardwareAddr": mac, "kind": "", "operationalState": "up"}}


def address(node: str, link_name: str, cidr: str) -> dict[str, Any]:
    return {"node": node, "metadata": {"namespace": "network", "type": "AddressStatuses.net.talos.dev",
                                       "id": f"{link_name}/{cidr}"},
            "spec": {"address": cidr, "linkName": link_name, "family": "inet4"}}


def test_talosctl_json_is_a_stream_of_objects() -> None:
    text = talos_json(link("a", "lo", "00:00:00:00:00:00", "loopback"), link("a", "ens18", CP_MAC))
    assert [o["metadata"]["id"] for o in parse_stream(text)] == ["lo", "ens18"]
    assert list(parse_stream("  \n")) == []
    with pytest.raises(ValueError):
        list(parse_stream('{"node": "a"} {broken'))


def test_talosctl_endpoints_default_to_the_control_planes_never_the_vip(lab: Lab) -> None:
    args = TalosAdapter(lab).global_args("192.0.2.11")
    assert args == ["-e", "192.0.2.10", "-n", "192.0.2.11"]
    assert VIP not in args


@pytest.fixture
def fake_talosctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """talosctl on PATH that prints files from a folder: ADDR.links.json / ADDR.addresses.json."""
    folder = tmp_path / "talos"
    folder.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "talosctl"
    from test_verify_net import FAKE_TALOSCTL  # the same fake: several nodes per call, as talosctl 1.13

    script.write_text(FAKE_TALOSCTL.format(python=sys.executable))
    monkeypatch.setenv("FAKE_TALOS_DIR", str(folder))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    talosconfig = tmp_path / "talosconfig"
    talosconfig.write_text("context: lab\n")
    monkeypatch.setenv("TALOSCONFIG", str(talosconfig))
    return folder


def test_read_vip_facts_through_talosctl(fake_talosctl: Path, lab: Lab) -> None:
    cp = "192.0.2.10"  # wk has no files: it answers like an unreachable node
    (fake_talosctl / f"{cp}.links.json").write_text(talos_json(link(cp, "lo", "00:00:00:00:00:00", "loopback"),
                                                               link(cp, "ens18", CP_MAC.upper())))
    (fake_talosctl / f"{cp}.addresses.json").write_text(talos_json(address(cp, "ens18", f"{cp}/24"),
                                                                   address(cp, "ens18", f"{VIP}/32")))
    facts = read_vip_facts(lab, timeout=10, shared=RunShared())
    by_name = {n.name: n for n in facts.nodes}
    assert by_name["cp"].macs == {"ens18": CP_MAC} and by_name["cp"].vip_link == "ens18"
    assert [n.name for n in facts.holders] == ["cp"]
    assert by_name["wk"].error is not None and "Unavailable" in by_name["wk"].error  # no files: unreachable
    assert "192.0.2.11:50000" in by_name["wk"].error and "192.0.2.10:" not in by_name["wk"].error  # its own
    owner = facts.mac_owner(CP_MAC)
    assert owner is not None and owner[0].name == "cp" and owner[1] == "ens18"


def test_no_talosctl_is_said_not_guessed(lab: Lab, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(TalosUnavailable, match="talosctl is not on PATH"):
        read_vip_facts(lab, timeout=1, shared=RunShared())


# -- vip-holder's judgement -------------------------------------------------------------------------


def facts_with(holder: str | None, *extra: NodeLinks) -> VipFacts:
    nodes = (NodeLinks("cp", "192.0.2.10", "controlplane", {"ens18": CP_MAC}, "ens18" if holder == "cp" else None),
             NodeLinks("wk", "192.0.2.11", "worker", {"ens18": WK_MAC}, "ens18" if holder == "wk" else None), *extra)
    return VipFacts(VIP, nodes)


def ctx_for(lab: Lab, selected: list[str] | None = None) -> CheckContext:
    return CheckContext(lab, selected or [], 1.0)


@pytest.mark.parametrize(("holder", "mac", "status", "words"), [
    ("cp", CP_MAC, PASS, "cp holds the VIP on ens18"),
    ("cp", None, WARN, "does not answer ARP from here"),
    ("cp", WK_MAC, FAIL, "answers with wk's MAC"),
    ("cp", "02:00:00:00:00:99", FAIL, "which is no Talos node's"),
    (None, None, FAIL, "no node holds the VIP"),
    (None, "02:00:00:00:00:99", FAIL, "which is no Talos node's, answers ARP"),
    ("wk", WK_MAC, FAIL, "a worker in lab.yaml"),
])
def test_judge_holder(lab: Lab, holder: str | None, mac: str | None, status: str, words: str) -> None:
    result = judge_holder(ctx_for(lab), facts_with(holder), net.Neighbour(VIP, mac))
    assert result.status == status, result.summary
    assert words in result.summary
    assert result.data["holder"] == holder


def test_judge_holder_when_talos_cannot_be_read(lab: Lab) -> None:
    nodes = tuple(NodeLinks(n, a, r, error="rpc error: code = Unavailable") for n, a, r in
                  (("cp", "192.0.2.10", "controlplane"), ("wk", "192.0.2.11", "worker")))
    result = judge_holder(ctx_for(lab), VipFacts(VIP, nodes), net.Neighbour(VIP, CP_MAC))
    assert result.status == FAIL and result.summary.startswith("cannot ask Talos")
    assert "talos.endpoints" in (result.hint or "")


def test_judge_holder_split_brain(lab: Lab) -> None:
    second = NodeLinks("cp2", "192.0.2.12", "controlplane", {"ens18": "02:00:00:00:00:0c"}, "ens18")
    result = judge_holder(ctx_for(lab), facts_with("cp", second), net.Neighbour(VIP, CP_MAC))
    assert result.status == FAIL and "more than one node: cp, cp2" in result.summary


# -- http-redirect's judgement ------------------------------------------------------------------------


def answer(status: int, location: str | None = None, server: str | None = None, body: str = "") -> net.HttpAnswer:
    return net.HttpAnswer(status, "Reason", location, server, body)


@pytest.mark.parametrize(("got", "status"), [
    (answer(308, f"https://{DOMAIN}/"), PASS),
    (answer(301, f"https://{DOMAIN.upper()}:443/"), PASS),
    (answer(308, f"https://{VIP}/"), FAIL),
    (answer(308, f"http://{DOMAIN}/"), FAIL),
    (answer(302, f"https://{DOMAIN}/"), FAIL),
    (answer(200, server="nginx"), FAIL),
    (answer(404, body="404 page not found"), FAIL),
])
def test_judge_redirect(got: net.HttpAnswer, status: str) -> None:
    result = judge_redirect(got, DOMAIN, VIP, {})
    assert result.status == status, result.summary
    if status == FAIL:
        assert str(got.status) in result.summary
        assert "labup phase traefik" in (result.hint or "")


def test_paradox_names_the_holder_from_vip_holder(lab: Lab) -> None:
    ctx = ctx_for(lab, ["vip-holder"])
    ctx.publish(CheckResult("vip-holder", PASS, "", data={"holder": "cp", "arp_owner": "cp", "arp_mac": CP_MAC}))
    result = paradox(ctx, 80, "http-redirect", {})
    assert result.status == FAIL
    assert result.summary == (f"connection refused on {VIP}:80: the VIP answers ARP (held by cp, MAC {CP_MAC}) "
                              "but nothing listens on port 80 on cp")
    assert "kubernetes.io/hostname: cp" in (result.hint or "") and "labup phase traefik" in (result.hint or "")


def test_paradox_without_any_knowledge_still_explains(lab: Lab) -> None:
    ctx = ctx_for(lab)
    ctx.fact(ARP_FACT, lambda: net.Neighbour(VIP))  # as if ARP had been tried: no MAC
    result = paradox(ctx, 443, "https-cert", {})
    assert "nothing listens on port 443" in result.summary
    assert "<the VIP's node>" in (result.hint or "")


# -- https-cert's judgement -----------------------------------------------------------------------------


def der_of(issued: Any) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return issued.cert.public_bytes(Encoding.DER)  # type: ignore[no-any-return]


@pytest.mark.parametrize(("mode", "verified", "status", "words"), [
    ("good", True, PASS, "valid certificate from labup test CA"),
    ("good", False, FAIL, "does not verify"),
    ("traefik-default", False, FAIL, "TRAEFIK DEFAULT CERT"),
    ("staging", False, WARN, "staging"),
    ("expiring", True, WARN, "expires in 4 day(s)"),
])
def test_judge_cert(lab: Lab, certs: CertSet, mode: str, verified: bool, status: str, words: str) -> None:
    der = der_of(certs.mode(mode))
    tls = net.TlsAnswer(der, verified, None if verified else "unable to get local issuer certificate", 20)
    got_status, summary, hint, data = judge_cert(lab, DOMAIN, tls, parse_der(der))
    assert got_status == status, summary
    assert words in summary
    if mode == "traefik-default":
        assert "kubectl -n traefik logs deploy/traefik" in (hint or "") and "port 80" in (hint or "")
    if mode == "staging":
        assert "traefik.acme.staging is false" in (hint or "")
    assert data["verified"] is verified


def test_judge_cert_wrong_name_and_expired(lab: Lab, certs: CertSet) -> None:
    der = der_of(certs.good)
    info = parse_der(der)
    status, summary, _, _ = judge_cert(lab, "other.example", net.TlsAnswer(der, False, "Hostname mismatch", 62), info)
    assert status == FAIL and "do not cover other.example" in summary
    status, summary, _, _ = judge_cert(lab, DOMAIN, net.TlsAnswer(der, False, "certificate has expired", 10), info,
                                       days_left=-3.5)
    assert status == FAIL and "expired 4 day(s) ago" in summary


def test_certinfo_name_matching(certs: CertSet) -> None:
    info = parse_der(der_of(certs.good))
    assert info.covers(DOMAIN) and info.covers(DOMAIN.upper() + ".")
    assert not info.covers("www." + DOMAIN)
    wildcard = info.__class__(**{**info.__dict__, "names": ("*." + DOMAIN,)})
    assert wildcard.covers("www." + DOMAIN) and not wildcard.covers("a.b." + DOMAIN) and not wildcard.covers(DOMAIN)
    assert parse_der(der_of(certs.traefik_default)).is_traefik_default
    assert parse_der(der_of(certs.staging)).is_staging
    assert 4 < parse_der(der_of(certs.expiring)).days_left(dt.datetime.now(dt.UTC)) <= 5


# -- the net adapter on loopback --------------------------------------------------------------------------


@pytest.fixture
def https_server(certs: CertSet) -> Iterator[int]:
    """A TLS server on 127.0.0.1 presenting the good certificate; yields its port."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs.good.cert_path, certs.good.key_path)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            try:
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.settimeout(1)
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass  # the client hangs up after the handshake, or rejects our certificate

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(2)
    listener.close()


def test_tls_certificate_verifies_with_ca_file(https_server: int, certs: CertSet) -> None:
    got = net.tls_certificate("127.0.0.1", DOMAIN, 3, port=https_server, ca_file=certs.ca.cert_path)
    assert got.verified and got.verify_error is None
    assert parse_der(got.der).subject_cn == DOMAIN


def test_tls_certificate_reads_the_cert_even_when_it_does_not_verify(https_server: int, certs: CertSet) -> None:
    got = net.tls_certificate("127.0.0.1", DOMAIN, 3, port=https_server)  # the test CA is not trusted
    assert not got.verified and got.verify_error and "issuer" in got.verify_error
    assert parse_der(got.der).subject_cn == DOMAIN
    got = net.tls_certificate("127.0.0.1", "other.example", 3, port=https_server, ca_file=certs.ca.cert_path)
    assert not got.verified and "mismatch" in (got.verify_error or "").lower()


def test_http_get_reports_a_redirect_without_following_it() -> None:
    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(308)
            self.send_header("Location", f"https://{self.headers['Host']}/")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.handle_request, daemon=True).start()
    try:
        got = net.http_get("127.0.0.1", DOMAIN, 3, port=server.server_address[1])
    finally:
        server.server_close()
    assert got.status == 308 and got.location == f"https://{DOMAIN}/"


def test_http_get_refused_raises_connection_refused() -> None:
    with socket.socket() as sock:  # a port that was just free: nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConnectionRefusedError):
        net.http_get("127.0.0.1", DOMAIN, 1, port=port)


ROUTE_TABLE = (
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
    "eth0\t00000000\t016433C6\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"  # default via 198.51.100.1
    "eth0\t006433C6\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n"  # 198.51.100.0/24 on-link
)


def test_a_routed_vip_is_reported_without_sending_anything(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "route").write_text(ROUTE_TABLE)
    monkeypatch.setattr(net, "_proc_net", lambda name: tmp_path / name)
    monkeypatch.setattr(net, "_poke", lambda *a: pytest.fail("sent a datagram"))
    got = net.resolve_neighbour("192.0.2.250", timeout=1)
    assert got.gateway == "198.51.100.1" and got.device == "eth0" and got.mac is None


# -- the Kubernetes checks' judging code ----------------------------------------------------------------------


def test_judge_placement(lab: Lab) -> None:
    pod = TraefikPod("traefik-1", "wk", "Running", True, True)
    assert judge_placement(lab, [pod], "wk").status == PASS
    paradox_result = judge_placement(lab, [pod], "cp")
    assert paradox_result.status == FAIL and "connection paradox" in paradox_result.summary
    assert judge_placement(lab, [], "cp").status == FAIL
    assert judge_placement(lab, [TraefikPod("t", None, "Pending", False, True)], "cp").status == FAIL
    assert judge_placement(lab, [pod], None).status == WARN


def test_judge_psa_and_release(lab: Lab) -> None:
    assert judge_psa(lab, {"pod-security.kubernetes.io/enforce": "privileged"}).status == PASS
    assert judge_psa(lab, {}).status == FAIL
    deployed = {"info": {"status": "deployed"}, "chart": {"metadata": {"version": "41.3.0"}}, "version": 3}
    assert judge_release(lab, deployed).status == PASS
    assert judge_release(lab, None).status == FAIL
    stuck = judge_release(lab, deployed | {"info": {"status": "pending-upgrade"}})
    assert stuck.status == FAIL and "helm -n traefik rollback traefik" in (stuck.hint or "")
    old = judge_release(lab, deployed | {"chart": {"metadata": {"version": "38.0.0"}}})
    assert old.status == WARN
