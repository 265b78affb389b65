"""Installable as a tool (issue 16, part 4): the wheel `pipx install` / `uv tool install` would install
is built from this checkout, installed with its dependencies (from the index pip uses here) into a fresh
venv, and run from there: outside the repository, with the repository on no sys.path entry.

`labup init` writes a lab (its schema beside it), `labup render traefik` renders the Helm values from the
packaged templates, and `labup apply --dry-run` plans every phase. The dry-run's lab uses TEST-NET-3
(203.0.113.0/24), talosctl is a fake that answers only `version --client` and refuses every node, the
kubeconfig points at a closed port on loopback, and where a network namespace can be made the run is in
one with only a loopback: no packet can leave this machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from labup.phases import PHASE_NAMES, phases_for

from conftest import REPO

FAKE_TALOSCTL = """#!/bin/sh
# a talosctl that knows its own version and reaches no node (as one would with the nodes down)
if [ "$1" = version ] && [ "$2" = --client ]; then printf 'Client:\\n\\tTag:         v1.13.0\\n'; exit 0; fi
echo 'rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing:'\
' dial tcp: connect: connection refused (the test refuses)"' >&2
exit 1
"""


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--disable-pip-version-check",
                    "-w", str(out), str(REPO)], check=True, timeout=300, cwd=out)
    (built,) = out.glob("labup-*.whl")
    return built


@pytest.fixture(scope="session")
def tool(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel and its dependencies, as `pipx install labup-*.whl` makes: its bin/."""
    venv = tmp_path_factory.mktemp("tool") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-compile",
                    "--disable-pip-version-check", str(wheel)], check=True, timeout=600, cwd=venv)
    return venv / "bin"


def test_the_wheel_holds_templates_schema_help_and_example(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = {f"labup/_templates/{p.relative_to(REPO / 'phases')}" for p in (REPO / "phases").rglob("*")
                 if p.is_file()}
    assert templates and templates <= names, templates - names
    with zipfile.ZipFile(wheel) as archive:
        for inside, source in {"labup/lab.schema.json": "src/labup/lab.schema.json",
                               "labup/help.txt": "src/labup/help.txt",
                               "labup/_templates/lab.yaml": "examples/lab.yaml"}.items():
            assert archive.read(inside) == (REPO / source).read_bytes(), inside
    assert "labup/labschema.py" in names and not any(n.startswith(("tests/", "tools/")) for n in names)
    entry = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "labup = labup.entry:main" in entry


def _env(work: Path, tool: Path) -> dict[str, str]:
    fake = work / "fake-bin"
    fake.mkdir(exist_ok=True)
    (fake / "talosctl").write_text(FAKE_TALOSCTL)
    (fake / "talosctl").chmod(0o755)
    kubeconfig = work / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "lab",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],  # a closed port
        "contexts": [{"name": "lab", "context": {"cluster": "c", "user": "u"}}],
        "users": [{"name": "u", "user": {"token": "not-a-real-token"}}]}))
    # a talosconfig as talosctl writes one; its certificates are never used (the fake talosctl reads nothing)
    (work / "talosconfig").write_text(yaml.safe_dump({"context": "lab", "contexts": {"lab": {
        "endpoints": ["203.0.113.10"], "ca": "", "crt": "", "key": ""}}}))
    (work / "home").mkdir(exist_ok=True)
    # only the tool's venv, the fake talosctl and the system: no helm, no repository, no PYTHONPATH
    return {"PATH": f"{tool}:{fake}:/usr/bin:/bin", "HOME": str(work / "home"), "NO_COLOR": "1",
            "LANG": "C.UTF-8", "KUBECONFIG": str(kubeconfig), "TALOSCONFIG": str(work / "talosconfig")}


def _run(args: list[str], work: Path, env: dict[str, str], *, isolated: bool = False
         ) -> subprocess.CompletedProcess[str]:
    if isolated and shutil.which("unshare"):
        # a network namespace with only a loopback (as root, or as a user where user namespaces exist)
        probe = subprocess.run(["unshare", "-rn", "true"], capture_output=True, check=False)
        if probe.returncode == 0:
            args = ["unshare", "-rn", "--", *args]
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=work, timeout=300, check=False)


def test_the_installed_tool_inits_renders_and_plans(tool: Path, tmp_path: Path) -> None:
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = _env(work, tool)
    where = _run([str(tool / "python"), "-c", "import json, sys, labup; print(json.dumps([labup.__file__, sys.path]))"],
                 work, env)
    module, path = json.loads(where.stdout)
    assert Path(module).is_relative_to(tool.parent), module
    assert not any(entry and Path(entry).resolve().is_relative_to(REPO) for entry in path), path

    facts = ["--node", "cp-1=203.0.113.10:controlplane", "--node", "wk-1=203.0.113.11:worker", "--vip",
             "203.0.113.250", "--interface", "eno1", "--domain", "lab.example.net", "--email", "ops@labup-tests.dev"]
    init = _run(["labup", "init", "lab", *facts], work, env)
    assert init.returncode == 0, init.stderr
    lab = work / "lab" / "lab.yaml"
    assert lab.read_text().startswith("# yaml-language-server: $schema=lab.schema.json\n")
    assert (work / "lab" / "lab.schema.json").read_bytes() == (REPO / "src/labup/lab.schema.json").read_bytes()

    render = _run(["labup", "-c", str(lab), "render", "traefik"], work, env)
    assert render.returncode == 0, render.stderr
    values = yaml.safe_load(render.stdout)
    assert values["hostNetwork"] is True and "lab.example.net" in render.stdout

    # one attempt, short timeouts: the refusals are the point, not the retries
    data = yaml.safe_load(lab.read_text())
    data["retry"] = {"attempts": 1, "initial_s": 0.1, "max_s": 0.1, "total_s": 5}
    data["kubernetes"] = {"timeout_s": 2}
    lab.write_text(yaml.safe_dump(data))
    plan = _run(["labup", "-c", str(lab), "--json", "apply", "--dry-run"], work, env, isolated=True)
    assert plan.returncode == 0, plan.stderr
    doc = json.loads(plan.stdout)
    assert doc["dry_run"] is True and doc["ok"] is True
    assert list(dict.fromkeys(s["phase"] for s in doc["steps"])) == list(phases_for("single"))  # the lab init wrote
    statuses = {s["status"] for s in doc["steps"]}
    assert statuses <= {"ok", "would-change", "unknown", "would-run"} and "unknown" in statuses
    # the nodes were asked (read only) through the talosctl on PATH, and could not answer
    assert "(the test refuses)" in next(s["summary"] for s in doc["steps"] if s["step"] == "cp-1")
    diffs = "".join(s.get("diff") or "" for s in doc["steps"])
    assert "203.0.113.250" in diffs and "hostNetwork: true" in diffs  # the packaged templates, rendered
    assert "nothing was changed" in plan.stderr and "Traceback" not in plan.stderr
    assert "not-a-real-token" not in plan.stdout + plan.stderr


def test_the_installed_tool_answers_help_schema_and_completion(tool: Path, tmp_path: Path) -> None:
    env = _env(tmp_path, tool)
    assert _run(["labup", "--help"], tmp_path, env).stdout == (REPO / "src/labup/help.txt").read_text()
    schema = _run(["labup", "schema"], tmp_path, env)
    assert schema.returncode == 0 and schema.stdout == (REPO / "src/labup/lab.schema.json").read_text()
    complete = _run(["labup"], tmp_path, {**env, "_LABUP_COMPLETE": "complete_bash", "COMP_WORDS": "labup phase ",
                                          "COMP_CWORD": "2"})
    assert complete.stdout.split() == list(PHASE_NAMES), complete.stderr
    assert os.access(tool / "labup", os.X_OK)
