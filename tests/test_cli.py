"""The command-line contract (DESIGN.md §1): help, phases in order, usage errors, init, --json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import EXAMPLE, REPO, run_labup

PHASES = ["vip", "helm", "namespace", "cert-manager", "traefik", "verify"]  # every phase, both topologies


def test_help_lists_the_commands() -> None:
    result = run_labup("--help")
    assert result.returncode == 0
    for command in ("init", "apply", "phase", "verify", "render", "rollback"):
        assert f"  {command}" in result.stdout
    for flag in ("--config", "--json", "--verbose", "--quiet", "--no-color", "--version"):
        assert flag in result.stdout


def test_help_snapshot_is_what_typer_renders() -> None:
    """labup.entry answers `--help` from src/labup/help.txt: it must equal typer's own output."""
    env = {**os.environ, "LABUP_NO_FAST_HELP": "1", "COLUMNS": "80", "NO_COLOR": "1", "TERM": "dumb"}
    live = subprocess.run([sys.executable, "-m", "labup", "--help"], capture_output=True, text=True,
                          env=env, check=True).stdout
    assert (REPO / "src" / "labup" / "help.txt").read_text() == live, \
        "help.txt is stale: run `.venv/bin/python tools/snapshot_help.py`"
    assert run_labup("--help").stdout == live
    assert run_labup().stdout == live


def test_version() -> None:
    from labup import __version__

    assert run_labup("--version").stdout.strip() == f"labup {__version__}"
    assert run_labup("--version", env={"LABUP_NO_FAST_HELP": "1"}).stdout.strip() == f"labup {__version__}"


def test_phase_help_lists_the_phases_in_order() -> None:
    out = run_labup("phase", "--help").stdout
    positions = [out.index(f"{i}. {name}:") for i, name in enumerate(PHASES, 1)]
    assert positions == sorted(positions)


def test_a_phase_of_the_other_topology_exits_2_naming_topology() -> None:
    """cert-manager is a phase of topology ha only: on a single lab it is refused before any read."""
    for argv in (["phase", "cert-manager", "--dry-run"], ["apply", "--dry-run", "--only", "cert-manager"]):
        result = run_labup("-c", str(EXAMPLE), *argv)
        assert result.returncode == 2, result.stderr
        assert "topology: phase cert-manager runs only in topology: ha" in result.stderr
        assert "its phases, in order: vip, helm, namespace, traefik, verify" in result.stderr


def test_unknown_phase_exits_2_listing_valid_ones() -> None:
    result = run_labup("-c", str(EXAMPLE), "phase", "dns")
    assert result.returncode == 2
    assert "unknown phase 'dns'" in result.stderr
    assert "valid phases, in order: vip, helm, namespace, cert-manager, traefik, verify" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_only_and_skip_exit_2() -> None:
    assert run_labup("-c", str(EXAMPLE), "apply", "--only", "dns", "--dry-run").returncode == 2
    result = run_labup("-c", str(EXAMPLE), "verify", "--skip", "ping")
    assert result.returncode == 2 and "unknown check 'ping'" in result.stderr
    assert "vip-arp, vip-holder, traefik-placement" in result.stderr


def test_bad_usage_exits_2() -> None:
    assert run_labup("apply", "--frobnicate").returncode == 2
    assert run_labup("render").returncode == 2
    result = run_labup("-c", str(EXAMPLE), "render", "dns")
    assert result.returncode == 2 and "render vip, render traefik or render cert-manager" in result.stderr


def test_init_writes_the_users_lab_and_refuses_to_overwrite(tmp_path: Path) -> None:
    """Issue 18 (7): the facts given make a lab.yaml that validates; none given (no terminal) makes one
    that does not, naming what to replace; the folder is created; `-` prints it."""
    facts = ["--node", "cp-1=192.0.2.10:controlplane", "--node", "wk-1=192.0.2.11:worker", "--vip", "192.0.2.250",
             "--interface", "eno1", "--domain", "lab.example.net", "--email", "ops@labup-tests.dev"]
    made = run_labup("init", str(tmp_path / "new" / "lab"), *facts)
    assert made.returncode == 0, made.stderr
    assert "run `labup -c" in made.stderr and "CHANGE-ME" not in made.stderr
    from labup.config import load

    lab = load(tmp_path / "new" / "lab" / "lab.yaml")
    assert [(n.name, n.address, n.role) for n in lab.nodes] == [("cp-1", "192.0.2.10", "controlplane"),
                                                               ("wk-1", "192.0.2.11", "worker")]
    assert (lab.vip.address, lab.vip.interface, lab.traefik.domains) == ("192.0.2.250", "eno1", ("lab.example.net",))
    assert run_labup("init", "-", *facts).stdout == (tmp_path / "new" / "lab" / "lab.yaml").read_text()

    first = run_labup("init", str(tmp_path))
    assert first.returncode == 0, first.stderr
    written = tmp_path / "lab.yaml"
    assert "# " in written.read_text() and "CHANGE-ME" in written.read_text()  # commented, and not usable yet
    refused = run_labup("-c", str(written), "render", "vip")
    assert refused.returncode == 2  # every placeholder named in one error, the first one as the field
    assert ("nodes[0].name: is still the CHANGE-ME placeholder (and nodes[0].address, vip.address, "
            "traefik.domains[0], traefik.acme.email)") in refused.stderr
    written.write_text(written.read_text() + "# mine\n")
    second = run_labup("init", str(tmp_path))
    assert second.returncode == 2
    assert "already exists" in second.stderr
    assert written.read_text().endswith("# mine\n")


def test_config_from_env(tmp_path: Path) -> None:
    result = run_labup("--json", "apply", "--dry-run", env={"LABUP_CONFIG": str(tmp_path / "x.yaml")})
    assert result.returncode == 2
    doc = json.loads(result.stdout)
    assert doc["exit_code"] == 2 and "x.yaml: no such file" in doc["error"]


def test_json_error_document_on_stdout_only(tmp_path: Path) -> None:
    bad = tmp_path / "lab.yaml"
    bad.write_text("name: [\n")
    result = run_labup("-c", str(bad), "--json", "apply", "--dry-run")
    doc = json.loads(result.stdout)
    assert doc == {"command": "apply", "ok": False, "exit_code": 2, "error": doc["error"], "hint": None}
    assert "invalid YAML" in result.stderr
