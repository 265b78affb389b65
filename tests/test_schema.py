"""lab.yaml's JSON Schema (issue 16, part 2): shipped, printed by `labup schema`, and never in disagreement
with labup's own validator (config.py).

Agreement, for every lab.yaml fixture D that is YAML at all (the example, fixtures/invalid_labs.yaml, the
hostile corpus, `labup init`'s output, the minimal lab, and ~2000 documents made here by changing one
field or one section of a complete lab):
  1. the validator accepts D  =>  the schema accepts D;
  2. the schema rejects D     =>  the validator rejects D, naming a field on the same branch as one the
                                  schema names (equal, or one inside the other), unless D breaks several
                                  rules and the validator names one of labschema.VALIDATOR_ONLY first;
  3. the validator rejects D and the schema accepts D  =>  the validator's reason is one of
                                  labschema.VALIDATOR_ONLY (the documented, complete list of exceptions),
and every VALIDATOR_ONLY reason is seen at least once (none is listed without need).
Patterns are matched as editors match them (ECMA-262: `$` is the very end), formats ipv4/ipv6 asserted.

Drift: the schema's keys are config.py's dataclass fields (walked here independently of labschema), its
defaults are what config.py gives a lab that omits them, its bounds are config.py's at their very edges,
and the shipped file is what labschema builds today.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import re
import shutil
import subprocess
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator, ValidationError, validators

from labup import config, labschema
from labup.errors import ConfigError
from labup.resources import lab_schema
from labup.yamlsafe import load_file, load_text
from test_config import CASES as INVALID_CASES
from test_config import MINIMAL_LAB, edited

from conftest import EXAMPLE, REPO, run_labup

SCHEMA = json.loads(lab_schema().read_text())
HOSTILE = sorted((REPO / "tests" / "fixtures" / "hostile").glob("lab-*.yaml"))


def _ecma(pattern: str) -> str:
    """An ECMA-262 pattern for Python's re: `$` (unescaped) is the end of the string, as in editors;
    Python's `$` also matches before a trailing newline."""
    return re.sub(r"(?<!\\)\$", r"\\Z", pattern)


def _pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not re.search(_ecma(pattern), instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


EditorValidator = validators.extend(Draft202012Validator, {"pattern": _pattern})
VALIDATOR = EditorValidator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)


def dotted(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _clamped(data: Any) -> Any:
    """`data` with integers too long to print (0x<5000 hex digits>) made merely huge: jsonschema prints the
    value into its error message, and Python refuses to print an int of more than 4300 digits."""
    if isinstance(data, dict):
        return {k: _clamped(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_clamped(v) for v in data]
    if isinstance(data, int) and not isinstance(data, bool) and data.bit_length() > 10_000:
        return 10**100 if data > 0 else -(10**100)
    return data


def schema_paths(data: Any) -> list[str]:
    """The field paths the schema's errors name (a missing or unknown key: the key's own path)."""
    paths = []
    for error in VALIDATOR.iter_errors(_clamped(data)):
        base = list(error.absolute_path)
        if error.validator == "required":
            missing = re.match(r"'(.+)' is a required property", error.message)
            paths.append(dotted([*base, missing.group(1)]) if missing else dotted(base))
        elif error.validator == "additionalProperties":
            known = error.schema.get("properties", {})
            paths += [dotted([*base, str(k)]) for k in error.instance if k not in known]
        else:
            paths.append(dotted(base))
    return paths


def same_branch(a: str, b: str) -> bool:
    def inside(x: str, y: str) -> bool:  # x is y or a field within y
        return x == y or y == "" or x.startswith((y + ".", y + "["))

    return inside(a, b) or inside(b, a)


def validator_only(message: str) -> str | None:
    return next((rule for rule, pattern in labschema.VALIDATOR_ONLY.items() if re.search(pattern, message, re.S)), None)


def validate(data: Any, where: Path) -> ConfigError | None:
    try:
        config.parse(data, where / "lab.yaml")
    except ConfigError as exc:
        return exc
    return None


def agree(data: Any, where: Path, label: str, seen: set[str]) -> None:
    """The three rules of the module docstring, for one document."""
    error = validate(data, where)
    schema = schema_paths(data)
    if error is None:
        assert not schema, f"{label}: labup accepts it, the schema says {schema}"
        return
    reason = validator_only(error.message)
    if reason:
        seen.add(reason)
    if not schema:
        assert reason, f"{label}: the schema accepts it, labup refuses it for a reason not in VALIDATOR_ONLY: " \
                       f"{error.message}"
        return
    assert reason or any(same_branch(error.path, p) for p in schema), \
        f"{label}: labup names {error.path!r} ({error.message}), the schema {schema}"


# ---- the fixtures -------------------------------------------------------------------------------------

def file_fixtures() -> list[tuple[str, Any]]:
    """(label, data) of every lab file the suite has that is YAML at all."""
    out: list[tuple[str, Any]] = [("examples/lab.yaml", load_file(EXAMPLE)), ("minimal", MINIMAL_LAB)]
    for case in HOSTILE:  # some are not YAML labup reads (control characters, alias bombs...): no document
        with contextlib.suppress(ConfigError):
            out.append((f"hostile/{case.name}", load_file(case)))
    for case in INVALID_CASES:
        with contextlib.suppress(ConfigError):
            out.append((f"invalid_labs/{case['id']}", load_text(edited(case), "lab.yaml")))
    from labup import initlab

    example = EXAMPLE.read_text()
    facts = initlab.from_flags(["cp-1=192.0.2.10:controlplane", "wk-1=192.0.2.11:worker"], "192.0.2.250", "eno1",
                               ["lab.example.net"], "ops@labup-tests.dev", None)
    out.append(("init with facts", yaml.safe_load(initlab.render(example, facts))))
    out.append(("init without facts", yaml.safe_load(initlab.render(example, initlab.Facts()))))
    return out


def full_lab(tmp: Path) -> dict[str, Any]:
    """A valid lab with every key lab.yaml has set (files it names exist)."""
    (tmp / "values.yaml").write_text("{}\n")
    (tmp / "ca.pem").write_text("not read by validation\n")
    data = copy.deepcopy(load_file(EXAMPLE))
    data["talos"] = {"talosconfig": "talosconfig", "endpoints": ["192.0.2.253:50000"], "context": "home",
                     "timeout_s": 30}
    data["kubernetes"] = {"kubeconfig": "kubeconfig", "context": "admin@home", "timeout_s": 15}
    data["traefik"]["values"] = str(tmp / "values.yaml")
    data["traefik"]["acme"]["resolver"] = "letsencrypt"
    data["verify"]["ca_file"] = str(tmp / "ca.pem")
    return data


def leaves() -> list[str]:
    """Every scalar key path of FIELDS (a list item counts as its first element: `nodes[]` -> nodes.0)."""
    return [p for p in labschema.FIELDS if "properties" not in _subschema(p) and "items" not in _subschema(p)]


def _subschema(path: str) -> dict[str, Any]:
    node = SCHEMA
    for part in path.split("."):
        name, is_item = part.removesuffix("[]"), part.endswith("[]")
        node = node["properties"][name]
        if is_item:
            node = node["items"]
    return node


def _set(data: dict[str, Any], path: str, value: Any, *, drop: bool = False) -> None:
    parts = path.replace("[]", ".0").split(".")
    parent: Any = data
    for part in parts[:-1]:
        parent = parent[int(part)] if isinstance(parent, list) else parent.setdefault(part, {})
    last: Any = int(parts[-1]) if isinstance(parent, list) else parts[-1]
    if drop:
        del parent[last]
    else:
        parent[last] = value


STRINGS = ["", " ", "a", "A", "lab", "lab\n", "-lab", "lab-", "a.b", "a..b", ".a", "a_b", "a/b", "a b", "ünï",
           "CHANGE-ME", "change-me", "x" * 64, "x" * 254, "lab.example.net", "lab.example.net.", "lab.example.NET",
           "lab.123", "192.0.2.1", "192.0.2.1/24", "192.0.2.300", "0192.0.2.1", "127.0.0.1", "0.0.0.0", "224.0.0.1",
           "::1", "::", "2001:db8::1", "2001:DB8::1", "fe80::1%eth0", "::ffff:192.0.2.1", "[2001:db8::1]",
           "[2001:db8::1]:50000", "[2001:db8::1]:", "[talos.lan]:50000", "host:50000", "host:0", "host:65536",
           "host:080", "host:", "Host.lan", "a,b", "/var/mnt/x", "/var/mnt/x/", "/var/", "/var", "/var/./x",
           "/var/../etc", "/var/x//y", "/var/.x", "/var/...", "/var/a;b", "/opt/x", "var/x", "oci://r/c",
           "./chart", "~/chart", "a/b/c", "repo/chart", "4.1.4", "v4.1.4", "4.1", "4.1.4-rc.1+b.2", "04.1.4",
           "٤.1.4", "4.1.4\n", "https://get.helm.sh", "http://mirror.lan:8080/helm", "https://x.net/a b", "ftp://x",
           "https://x.net/?q=1", "a@b.net", "a.@b.net", ".a@b.net", "a..b@c.net", "a@b.123", "a@b", "a@B.net",
           "x" * 65 + "@b.net", "a@b@c.net", "ops@lab.example.net\n", "ens18", "eth/0", "a" * 16, "bond0.100",
           "br@x", ".", "..", "kube-system", "default", "traefik", "http", "tls", "dns", "controlplane", "worker",
           "master", "letsencrypt", "\x00", "a\x00b", "\u3000"]
NUMBERS = [0, -1, 0.5, 1, 2.0, 3, 50, 51, 300, 301, 600, 601, 1000, 1001, 3600, 3601, 86_400, 86_401, 1e300,
           math.nan, math.inf, -math.inf, True, False, "5", None, [], {}]


def mutations(tmp: Path) -> Iterator[tuple[str, Any]]:
    """One change each to the complete lab: every value of STRINGS/NUMBERS in every leaf, every key
    dropped, every section emptied or replaced, an unknown key in every mapping, the cross-field rules."""
    base = full_lab(tmp)
    yield "full lab", base
    for path in leaves():
        for value in STRINGS + NUMBERS:
            data = copy.deepcopy(base)
            _set(data, path, value)
            yield f"{path}={value!r}", data
    for path in labschema.FIELDS:
        data = copy.deepcopy(base)
        _set(data, path, None, drop=True)
        yield f"drop {path}", data
        if "[]" not in path.rsplit(".", 1)[-1]:
            for value in (None, [], {}, "x", 1, [{}], [None]):
                data = copy.deepcopy(base)
                _set(data, path, value)
                yield f"{path}={value!r}", data
        sub = _subschema(path)
        if "properties" in sub or "properties" in sub.get("items", {}):
            data = copy.deepcopy(base)
            _set(data, path + ("[].bogus" if "items" in sub else ".bogus"), 1)
            yield f"{path} + unknown key", data
    data = copy.deepcopy(base)
    data["bogus"] = 1
    yield "top-level unknown key", data
    cross = {
        "duplicate name": ("nodes[1].name", base["nodes"][0]["name"]),
        "duplicate address": ("nodes[1].address", base["nodes"][0]["address"]),
        "vip is a node": ("vip.address", base["nodes"][1]["address"]),
        "endpoint is the vip": ("talos.endpoints[0]", base["vip"]["address"]),
        "no control plane": ("nodes[0].role", "worker"),
        "duplicate domain": ("traefik.domains", ["a.example.net", "a.example.net"]),
        "missing values file": ("traefik.values", str(tmp / "nowhere.yaml")),
        "ca_file is a folder": ("verify.ca_file", str(tmp)),
    }
    for label, (path, value) in cross.items():
        data = copy.deepcopy(base)
        parts = path.replace("[", ".").replace("]", "")
        _set(data, parts, value)
        yield label, data
    data = copy.deepcopy(base)
    data["nodes"] = [{"name": "a", "address": "2001:db8::1", "role": "controlplane"},
                     {"name": "b", "address": "2001:DB8:0::1", "role": "worker"}]
    data["vip"]["address"] = "2001:db8::250"
    yield "duplicate address, spelt differently", data


# ---- agreement ----------------------------------------------------------------------------------------

def test_every_fixture_agrees(tmp_path: Path) -> None:
    seen: set[str] = set()
    fixtures = file_fixtures()
    assert len(fixtures) >= 100, len(fixtures)  # those of the hostile corpus and invalid_labs.yaml that are YAML
    generated = list(mutations(tmp_path))
    assert len(generated) >= 2000, len(generated)
    for label, data in fixtures + generated:
        agree(data, tmp_path, label, seen)
    assert seen == set(labschema.VALIDATOR_ONLY), f"never needed: {set(labschema.VALIDATOR_ONLY) - seen}"


def test_the_example_and_the_full_lab_are_valid_for_both(tmp_path: Path) -> None:
    for data in (load_file(EXAMPLE), full_lab(tmp_path), MINIMAL_LAB):
        assert validate(data, tmp_path) is None
        assert schema_paths(data) == []


# ---- drift --------------------------------------------------------------------------------------------

def config_keys(cls: type = config.Lab, prefix: str = "") -> set[str]:
    """lab.yaml's keys as config.py's dataclasses have them (independently of labschema)."""
    out = set()
    hints = typing.get_type_hints(cls, vars(config))
    for f in dataclasses.fields(cls):
        if f.name == "source":
            continue
        path = f"{prefix}.{f.name}" if prefix else f.name
        out.add(path)
        hint = hints[f.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        inner = hint if not args or typing.get_origin(hint) is tuple else args[0]
        if dataclasses.is_dataclass(inner):
            out |= config_keys(inner, path)  # type: ignore[arg-type]
        elif typing.get_origin(inner) is tuple:
            item = typing.get_args(inner)[0]
            out |= config_keys(item, path + "[]") if dataclasses.is_dataclass(item) else {path + "[]"}
    return out


def test_the_schema_has_exactly_configs_keys() -> None:
    """When config.py gains a key (a `topology:`, a `certmanager:` section), this fails until the schema
    has it too: describe it in labup/labschema.py FIELDS, then run tools/snapshot_schema.py."""
    in_config, in_schema = config_keys(), labschema.key_paths(SCHEMA)
    assert in_config - in_schema == set(), f"in config.py, not in lab.schema.json: {sorted(in_config - in_schema)}"
    assert in_schema - in_config == set(), f"in lab.schema.json, not in config.py: {sorted(in_schema - in_config)}"


def test_the_shipped_schema_is_what_labschema_builds() -> None:
    assert json.loads(lab_schema().read_text()) == labschema.build(), \
        "src/labup/lab.schema.json is stale: run `.venv/bin/python tools/snapshot_schema.py`"
    Draft202012Validator.check_schema(SCHEMA)


def _every_property(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    for name, sub in schema.get("properties", {}).items():
        where = f"{path}.{name}" if path else name
        yield where, sub
        yield from _every_property(sub, where)
        if isinstance(sub.get("items"), dict):
            yield from _every_property(sub["items"], where + "[]")


def test_every_object_is_closed_and_every_key_described() -> None:
    objects = [SCHEMA] + [s for _, s in _every_property(SCHEMA) if "properties" in s] + \
              [s["items"] for _, s in _every_property(SCHEMA) if "properties" in s.get("items", {})]
    assert len(objects) >= 10 and all(o.get("additionalProperties") is False for o in objects)
    for path, sub in _every_property(SCHEMA):
        assert sub.get("description"), path
        required = labschema.FIELDS[path].get("required")
        assert required or "default" in sub or "properties" in sub, f"{path}: neither required nor defaulted"


def _attribute(lab: config.Lab, path: str) -> Any:
    value: Any = lab
    for part in path.split("."):
        value = getattr(value, part)
    return value


def test_defaults_are_what_config_gives(tmp_path: Path) -> None:
    lab = config.parse(copy.deepcopy(MINIMAL_LAB), tmp_path / "lab.yaml")
    checked = 0
    for path, sub in _every_property(SCHEMA):
        if "default" not in sub:
            continue
        default, actual = sub["default"], _attribute(lab, path)
        if isinstance(actual, Path):
            default = Path(default).expanduser()
        elif isinstance(actual, tuple):
            actual = list(actual)
        assert actual == default, f"{path}: the schema says {default!r}, config.py gives {actual!r}"
        checked += 1
    assert checked == sum("default" in e for e in labschema.FIELDS.values()) >= 30


def test_required_keys_are_what_config_requires(tmp_path: Path) -> None:
    required = [p for p, e in labschema.FIELDS.items() if e.get("required")]
    assert validate(MINIMAL_LAB, tmp_path) is None  # nothing else is required
    for path in required:
        data = copy.deepcopy(MINIMAL_LAB)
        _set(data, path, None, drop=True)
        error = validate(data, tmp_path)
        assert error is not None, f"{path}: the schema requires it, config.py does not"
        assert same_branch(error.path, path.replace("[]", "[0]")), (path, error.message)


@pytest.mark.parametrize("path", [p for p, e in labschema.FIELDS.items() if "bounds" in e])
def test_bounds_are_configs_at_their_edges(path: str, tmp_path: Path) -> None:
    """config.py takes low < value <= high: so must the schema, at the very edges."""
    sub = _subschema(path)
    low, high = sub["exclusiveMinimum"], sub["maximum"]
    integer = "integer" in sub["type"]
    edges = {high: True, low: False}
    edges.update({high + 1: False, low + 1: True} if integer else
                 {math.nextafter(high, math.inf): False, math.nextafter(low, math.inf): True})
    for value, ok in edges.items():
        data = copy.deepcopy(MINIMAL_LAB)
        _set(data, path, value)
        assert (validate(data, tmp_path) is None) is ok, (path, value)
        assert (not schema_paths(data)) is ok, (path, value)


# ---- the command and init -----------------------------------------------------------------------------

def test_labup_schema_prints_the_shipped_schema() -> None:
    run = run_labup("schema")
    assert run.returncode == 0, run.stderr
    assert run.stdout == lab_schema().read_text() and json.loads(run.stdout)["$schema"] == labschema.DRAFT
    assert run.stderr == ""


def test_init_points_editors_at_the_schema(tmp_path: Path) -> None:
    facts = ["--node", "cp-1=192.0.2.10:controlplane", "--vip", "192.0.2.250", "--domain", "lab.example.net",
             "--email", "ops@labup-tests.dev"]
    made = run_labup("init", str(tmp_path / "lab"), *facts)
    assert made.returncode == 0, made.stderr
    text = (tmp_path / "lab" / "lab.yaml").read_text()
    assert text.splitlines()[0] == "# yaml-language-server: $schema=lab.schema.json"
    # beside lab.yaml, so the modeline works offline, wherever the folder is moved or copied
    assert (tmp_path / "lab" / "lab.schema.json").read_text() == lab_schema().read_text()
    assert validate(yaml.safe_load(text), tmp_path) is None and schema_paths(yaml.safe_load(text)) == []
    printed = run_labup("init", "-", *facts)
    assert printed.stdout == text  # `-`: the same text; the schema is `labup schema > lab.schema.json`
    # a second init into the same folder: lab.yaml is never overwritten, nor a schema the user changed
    (tmp_path / "lab" / "lab.schema.json").write_text("{}\n")
    again = run_labup("init", str(tmp_path / "lab"), *facts)
    assert again.returncode == 2 and (tmp_path / "lab" / "lab.schema.json").read_text() == "{}\n"


def _patterns(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from [value] if key == "pattern" else _patterns(value)
    elif isinstance(node, list):
        for value in node:
            yield from _patterns(value)


def test_patterns_are_ecma_262_as_editors_compile_them() -> None:
    """Editors compile `pattern` as ECMA-262 with the u flag: an escape outside its short list (`\\"`, `\\_`)
    is a syntax error there, and Python's \\d, \\w match more than ECMA's. Node, when here, compiles each."""
    allowed = set("^$\\.*+?()[]{}|/-") | set("tnxsS0")
    patterns = list(_patterns(SCHEMA))
    assert len(patterns) >= 20
    for pattern in patterns:
        escapes = set(re.findall(r"\\(.)", pattern.replace("\\\\", "")))
        assert escapes <= allowed, (pattern, escapes - allowed)
    node = shutil.which("node")
    if node:
        script = "for (const p of JSON.parse(require('fs').readFileSync(0, 'utf8'))) new RegExp(p, 'u')"
        run = subprocess.run([node, "-e", script], input=json.dumps(patterns), capture_output=True, text=True,
                             timeout=30, check=False)
        assert run.returncode == 0, run.stderr
