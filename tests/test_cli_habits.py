"""Flags where kubectl, helm and talosctl users put them (issue 18, item 6) and a rollback preview
(item 8). All offline: the example lab is only read, never contacted."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from labup.cli import hoist_global_options

from conftest import EXAMPLE, LABUP, run_labup


def test_global_flags_after_the_subcommand() -> None:
    before = run_labup("-c", str(EXAMPLE), "--json", "render", "traefik")
    after = run_labup("render", "traefik", "-c", str(EXAMPLE), "--json")
    assert before.returncode == after.returncode == 0, after.stderr
    assert json.loads(after.stdout)["text"] == json.loads(before.stdout)["text"]
    assert run_labup("render", "vip", f"--config={EXAMPLE}").returncode == 0


@pytest.mark.parametrize("argv, hoisted", [
    (["apply", "-c", "lab.yaml", "--dry-run"], ["-c", "lab.yaml", "apply", "--dry-run"]),
    (["-c", "a.yaml", "verify", "--only", "vip-arp", "-q"], ["-c", "a.yaml", "-q", "verify", "--only", "vip-arp"]),
    (["phase", "vip", "--", "-c"], ["phase", "vip", "--", "-c"]),
    (["--json"], ["--json"]),
])
def test_hoisting_keeps_everything_else_in_order(argv: list[str], hoisted: list[str]) -> None:
    assert hoist_global_options(argv) == hoisted


def test_comma_lists_and_contradictions(tmp_path: Path) -> None:
    plan = run_labup("-c", str(EXAMPLE), "--json", "apply", "--dry-run", "--only", "vip,helm", timeout=120)
    phases = {s["phase"] for s in json.loads(plan.stdout)["steps"]}
    assert phases == {"vip", "helm"}, plan.stderr
    both = run_labup("-c", str(EXAMPLE), "verify", "--only", "vip-arp", "--skip", "vip-arp")
    assert both.returncode == 2 and "--only and --skip both name check 'vip-arp'" in both.stderr
    loud_and_quiet = run_labup("-v", "-q", "version")
    assert loud_and_quiet.returncode == 2 and "contradict" in loud_and_quiet.stderr


@pytest.mark.parametrize("args, suggestion", [
    (["phase", "Traefik", "--dry-run"], "did you mean 'traefik'?"),
    (["verify", "--only", "vip_arp"], "did you mean 'vip-arp'?"),
    (["rollback", "namespce", "--dry-run"], "did you mean 'namespace'?"),
])
def test_names_get_a_did_you_mean(args: list[str], suggestion: str) -> None:
    result = run_labup("-c", str(EXAMPLE), *args)
    assert result.returncode == 2 and suggestion in result.stderr


def test_version_command_says_what_labup_pins() -> None:
    text = run_labup("version")
    assert text.returncode == 0 and "Traefik chart traefik 41.3.0" in text.stdout and "Talos" in text.stdout
    doc = json.loads(run_labup("version", "--json").stdout)
    assert doc["traefik_chart"] == "traefik 41.3.0" and doc["helm_default"] == "4.1.4"


def test_a_closed_pipe_ends_quietly() -> None:
    proc = subprocess.Popen(f"{LABUP} -c {EXAMPLE} render vip | head -c 1 >/dev/null", shell=True,
                            stderr=subprocess.PIPE, text=True)
    _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_rollback_preview_and_yes(tmp_path: Path) -> None:
    lab = tmp_path / "lab.yaml"
    lab.write_text(EXAMPLE.read_text())
    preview = run_labup("-c", str(lab), "--json", "rollback", "--dry-run")
    assert preview.returncode == 0 and json.loads(preview.stdout)["would_undo"] == []
    assert not (tmp_path / ".labup").exists()  # a preview writes nothing, not even the state folder
    no_tty = run_labup("-c", str(lab), "rollback")
    assert no_tty.returncode == 2 and "needs --yes" in no_tty.stderr
    assert run_labup("-c", str(lab), "rollback", "--yes").returncode == 0


def test_a_reserved_email_is_refused_by_a_real_apply_and_a_warning_otherwise(no_outside_tools: None,
                                                                            tmp_path: Path) -> None:
    """Issue 18 (3): Let's Encrypt refuses example.com/.test/.invalid contacts at registration, after the
    whole deploy; labup says so first. The example (documentation addresses) is such a lab."""
    lab = tmp_path / "lab.yaml"
    lab.write_text(EXAMPLE.read_text())
    real = run_labup("-c", str(lab), "phase", "traefik")
    assert real.returncode == 2, real.stderr
    assert "traefik.acme.email: 'admin@lab.example.net' is at a reserved domain" in real.stderr
    assert not (tmp_path / ".labup" / "journal.jsonl").exists() or "applied" not in \
        (tmp_path / ".labup" / "journal.jsonl").read_text()
    dry = run_labup("-c", str(lab), "phase", "traefik", "--dry-run")
    assert dry.returncode == 0 and "warning: traefik.acme.email" in dry.stderr
    render = run_labup("-c", str(lab), "render", "traefik")
    assert render.returncode == 0 and "warning: traefik.acme.email" in render.stderr


def test_a_plan_counts_checks_apart_and_says_what_it_could_not_read(no_outside_tools: None) -> None:
    """Issue 18 (5): verify's checks are `would-run`, never changes; an offline plan is incomplete (said
    in the JSON); --detailed-exitcode: 5 changes pending, 6 nothing known to change but unread state."""
    plan = run_labup("-c", str(EXAMPLE), "--json", "apply", "--dry-run", "--detailed-exitcode")
    doc = json.loads(plan.stdout)
    assert plan.returncode == 5 and doc["complete"] is False
    unread = run_labup("-c", str(EXAMPLE), "phase", "namespace", "--dry-run", "--detailed-exitcode")
    assert unread.returncode == 6, unread.stderr  # no kubeconfig: nothing known, nothing proven
    verify = [s for s in doc["steps"] if s["phase"] == "verify"]
    assert verify and {s["status"] for s in verify} == {"would-run"}
    assert doc["counts"]["would-run"] == len(verify) and "summary: " in plan.stderr and "would-run" in plan.stderr
    plain = run_labup("-c", str(EXAMPLE), "apply", "--dry-run")
    assert plain.returncode == 0


@pytest.mark.parametrize("flags, named", [
    (["--node", "cp\n    address: 192.0.2.77\n    role: controlplane\n  - name: x=192.0.2.10"], "--node"),
    (["--node", "cp-1=192.0.2.10:controlplane", "--domain", "a.example.net\nx: 1"], "--domain"),
    (["--node", "cp-1=192.0.2.10:controlplane", "--email", "a@b.net\nvip: {}"], "--email"),
    (["--node", "cp-1=192.0.2.10", "--vip", "192.0.2.250'"], "--vip"),
    (["--node", "cp-1=192.0.2.10", "--challenge", "dns"], "--challenge"),
])
def test_init_checks_every_fact_before_writing(flags: list[str], named: str, tmp_path: Path) -> None:
    run = run_labup("init", str(tmp_path / "lab"), *flags)
    assert run.returncode == 2 and f"labup: error: {named}: " in run.stderr, run.stderr
    assert not (tmp_path / "lab" / "lab.yaml").exists()


def test_an_empty_only_never_means_everything() -> None:
    for value in ("", ","):
        run = run_labup("-c", str(EXAMPLE), "apply", "--dry-run", "--only", value)
        assert run.returncode == 2 and "an empty phase name" in run.stderr


def test_the_plan_goes_to_stdout_after_a_header_naming_what_it_talks_to(no_outside_tools: None,
                                                                        tmp_path: Path) -> None:
    """Issue 18 (5): `labup apply --dry-run > plan.txt` keeps the plan; the first line says which lab
    file, Talos endpoints, kube context and API server the run is about. The API server here is a
    closed port on loopback: nothing else can be reached."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "homelab",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "contexts": [{"name": "homelab", "context": {"cluster": "c", "user": "u"}}],
        "users": [{"name": "u", "user": {"token": "not-a-real-token"}}]}))
    data = yaml.safe_load(EXAMPLE.read_text())
    data["kubernetes"] = {"kubeconfig": str(kubeconfig), "timeout_s": 2}
    data["retry"] = {"attempts": 1, "initial_s": 0.01, "max_s": 0.01, "total_s": 1}
    lab = tmp_path / "lab.yaml"
    lab.write_text(yaml.safe_dump(data))
    plan = run_labup("-c", str(lab), "apply", "--dry-run", "--only", "vip,namespace")
    assert plan.returncode == 0, plan.stderr
    header = plan.stdout.splitlines()[0]
    assert header.startswith(f"lab {lab}") and "Talos endpoints 192.0.2.253" in header
    assert f"context homelab at https://127.0.0.1:1 (kubeconfig {kubeconfig})" in header
    assert "== vip" in plan.stdout and "summary: " in plan.stdout and "== vip" not in plan.stderr
    assert "not-a-real-token" not in plan.stdout + plan.stderr


def test_a_plan_is_one_line_per_step_and_diffs_come_on_request(no_outside_tools: None) -> None:
    short = run_labup("-c", str(EXAMPLE), "apply", "--dry-run")
    full = run_labup("-c", str(EXAMPLE), "apply", "--dry-run", "--diff")
    assert short.returncode == full.returncode == 0
    assert "kind: Layer2VIPConfig" not in short.stdout and "(--diff shows what each step" in short.stdout
    assert "kind: Layer2VIPConfig" in full.stdout and "hostNetwork: true" in full.stdout
    assert len(short.stdout.splitlines()) * 3 < len(full.stdout.splitlines())
    assert "kind: Layer2VIPConfig" in run_labup("-c", str(EXAMPLE), "-v", "apply", "--dry-run").stdout


def test_each_hint_is_said_once_and_never_inside_another(no_outside_tools: None) -> None:
    plan = run_labup("-c", str(EXAMPLE), "apply", "--dry-run", timeout=120)
    assert plan.returncode == 0, plan.stderr
    out = plan.stdout
    # four steps cannot read Talos for the same reason: the reason on each line, the way out once
    assert out.count("state could not be read: talosctl not found on PATH") == 4
    assert out.count("hint: install it: https://www.talos.dev/") == 1
    assert out.count("hint: as above") == 3
    assert "(hint:" not in out + plan.stderr
    doc = json.loads(run_labup("-c", str(EXAMPLE), "--json", "apply", "--dry-run", timeout=120).stdout)
    unknown = [s for s in doc["steps"] if s["summary"].endswith("talosctl not found on PATH")]
    assert len(unknown) == 4 and all(s["hint"].startswith("install it:") for s in unknown)  # --json: every one


def test_a_vip_far_from_the_control_planes_is_a_warning_offline(tmp_path: Path, no_outside_tools: None) -> None:
    from labup.validators import vip_far_from

    data = yaml.safe_load(EXAMPLE.read_text())
    data["vip"]["address"] = "192.0.3.250"  # a /24 away from the control plane 192.0.2.253
    far = tmp_path / "lab.yaml"
    far.write_text(yaml.safe_dump(data))
    warning = "vip.address 192.0.3.250 shares no /24 with the control-plane addresses (192.0.2.253)"
    plan = run_labup("-c", str(far), "apply", "--dry-run", timeout=120)
    assert plan.returncode == 0 and warning in plan.stderr
    render = run_labup("-c", str(far), "render", "vip")
    assert render.returncode == 0 and warning in render.stderr and warning not in render.stdout
    near = run_labup("-c", str(EXAMPLE), "apply", "--dry-run", timeout=120)
    assert "shares no /24" not in near.stderr
    assert vip_far_from("2001:db8:1::10", ["2001:db8:1::1"]) is None
    assert "shares no /64" in (vip_far_from("2001:db8:2::10", ["2001:db8:1::1"]) or "")
    assert vip_far_from("192.0.2.250", ["cp.lab.internal"]) is None  # a name: unknown offline, no guess
