"""lab.yaml validation through the real command: every invalid case exits 2, names its field, prints
no traceback and runs nothing. Cases live in fixtures/invalid_labs.yaml."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from labup.config import load

from conftest import EXAMPLE, example_data, run_labup

CASES = yaml.safe_load((Path(__file__).parent / "fixtures" / "invalid_labs.yaml").read_text())


def _walk(data: Any, dotted: str) -> tuple[Any, str | int]:
    parts: list[str | int] = [int(p) if p.isdigit() else p for p in dotted.split(".")]
    for part in parts[:-1]:
        data = data[part]
    return data, parts[-1]


def edited(case: dict[str, Any]) -> str:
    if "text" in case:
        return case["text"]
    data = copy.deepcopy(example_data())
    for dotted, value in case.get("set", {}).items():
        parent, key = _walk(data, dotted)
        parent[key] = value
    for dotted in case.get("drop", []):
        parent, key = _walk(data, dotted)
        del parent[key]
    return yaml.safe_dump(data)


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_invalid_lab_exits_2_naming_the_field(case: dict[str, Any], tmp_path: Path) -> None:
    lab = tmp_path / "lab.yaml"
    lab.write_text(edited(case))
    started = time.monotonic()
    result = run_labup("-c", str(lab), "apply", "--dry-run", timeout=30)
    assert result.returncode == 2, result.stderr
    assert case["expect"] in result.stderr
    if "hint" in case:
        assert case["hint"] in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "nothing was touched" in result.stderr
    assert not (tmp_path / ".labup").exists()
    assert time.monotonic() - started < 10  # alias bombs are refused quickly


def test_example_is_valid_and_has_the_story_lab() -> None:
    lab = load(EXAMPLE)
    assert [(n.name, n.address, n.role) for n in lab.nodes] == [
        ("talos-unw-ifc", "192.0.2.253", "controlplane"), ("talos-worker-1", "192.0.2.127", "worker")]
    assert (lab.vip.address, lab.vip.interface) == ("192.0.2.250", "ens18")
    assert lab.traefik.domains == ("lab.example.net",)
    assert lab.traefik.acme.storage_dir == "/var/mnt/traefik"


# only what is required (test_schema.py feeds it to the JSON Schema too)
MINIMAL_LAB = {"nodes": [{"name": "cp1", "address": "192.0.2.10", "role": "controlplane"}],
               "vip": {"address": "192.0.2.250"},
               "traefik": {"domains": ["example.net"], "acme": {"email": "me@example.net"}}}


def test_minimal_lab_gets_defaults(tmp_path: Path) -> None:
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(MINIMAL_LAB))
    lab = load(path)
    assert lab.vip.interface == "ens18"
    assert lab.helm.version == "4.1.4"
    assert lab.traefik.chart_version == "41.3.0" and lab.traefik.namespace == "traefik"
    assert lab.verify.timeout_s == 5
    assert lab.state_dir == tmp_path / ".labup"


def test_oversized_file_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "lab.yaml"
    path.write_text("# " + "x" * (2 * 1024 * 1024))
    result = run_labup("-c", str(path), "render", "vip")
    assert result.returncode == 2
    assert "larger than 1024 KiB" in result.stderr


def test_missing_config_names_the_file(tmp_path: Path) -> None:
    result = run_labup("-c", str(tmp_path / "nope.yaml"), "apply", "--dry-run")
    assert result.returncode == 2
    assert "nope.yaml: no such file" in result.stderr and "labup init" in result.stderr



def test_a_placeholder_is_a_whole_value_in_any_case() -> None:
    from labup.config import placeholders

    data = {"nodes": [{"name": "change-me", "address": "CHANGE-ME"}], "traefik": {
        "domains": ["exchange-media.example.net", " Change-Me "], "acme": {"email": "ops@change-me.example.net"}}}
    assert placeholders(data) == ["nodes[0].name", "nodes[0].address", "traefik.domains[1]"]
