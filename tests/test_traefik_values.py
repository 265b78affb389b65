"""Traefik's Helm values, offline: `labup render traefik` on the example lab, the user's extra values
file merged last, labup's guards and the pinned chart's schema (FACTS.md §1 walls 2, 3, 5, 6, 7; §3).

Refused values files live in fixtures/values/ with their expected messages (`# expect:` lines): each
becomes a case here, run through the real command.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from labup.config import load
from labup.errors import ConfigError, PermanentError
from labup.traefik import guards, schema, template
from labup.traefik.keys import TEMPLATE_SOURCE, ValuesError
from labup.traefik.tree import merge, without_nulls
from labup.traefik.values import LETSENCRYPT_STAGING, build

from conftest import REPO, example_data, run_labup

# sha256 of traefik-helm-chart v41.3.0 traefik/values.schema.json as published upstream, recorded when
# the pin was made: the shipped copy (and the stand-in chart's) must be byte for byte that file
UPSTREAM_SCHEMA_SHA256 = "45362283794fc3f31ada70c3943c5e5f387dac2c3bb733339c168b8ac1d94174"
SHIPPED = REPO / "phases" / "traefik"
FIXTURES = Path(__file__).parent / "fixtures" / "values"
REFUSED = sorted(FIXTURES.glob("*.yaml"))

Run = Callable[..., subprocess.CompletedProcess[str]]


def lab_with(tmp_path: Path, values_text: str | None = None, **acme: Any) -> Path:
    """The example lab in tmp_path, with traefik.acme changes and an extra values file."""
    data = example_data()
    data["traefik"]["acme"].update(acme)
    if values_text is not None:
        (tmp_path / "extra-values.yaml").write_text(values_text)
        data["traefik"]["values"] = "extra-values.yaml"  # relative: resolved beside lab.yaml
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def render_ok(lab: Path) -> tuple[str, dict[str, Any]]:
    result = run_labup("-c", str(lab), "render", "traefik")
    assert result.returncode == 0, result.stderr
    return result.stdout, yaml.safe_load(result.stdout)


def at(values: Any, dotted_path: str) -> Any:
    node = values
    for part in dotted_path.split("/"):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def assert_refused(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert "nothing was touched" in result.stderr
    for text in expected:
        assert text in result.stderr, f"{text!r} not in:\n{result.stderr}"


# -- the example lab -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    return render_ok(lab_with(tmp_path_factory.mktemp("example")))


def test_example_validates_against_the_upstream_chart_schema(example: tuple[str, dict[str, Any]]) -> None:
    upstream = json.loads((SHIPPED / "values.schema.json").read_text())
    assert hashlib.sha256((SHIPPED / "values.schema.json").read_bytes()).hexdigest() == UPSTREAM_SCHEMA_SHA256
    cls = jsonschema.validators.validator_for(upstream)
    assert cls is jsonschema.Draft202012Validator  # the schema's own `$schema`
    cls(upstream).validate(example[1])


def test_default_store_generates_one_certificate_for_every_domain(tmp_path: Path) -> None:
    """Traefik requests ACME only for router names, or the default TLS store's defaultGeneratedCert:
    with no application route yet, that is what gets the lab its certificate (issue 10)."""
    data = example_data()
    data["traefik"]["domains"] = ["lab.example.net", "whoami.lab.example.net", "grafana.lab.example.net"]
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(data))
    _, values = render_ok(path)
    generated = values["tlsStore"]["default"]["defaultGeneratedCert"]
    assert generated["resolver"] == values["ports"]["websecure"]["http"]["tls"]["certResolver"] == "letsencrypt"
    assert generated["resolver"] in values["certificatesResolvers"]
    named = [generated["domain"]["main"], *generated["domain"].get("sans", [])]
    assert named == data["traefik"]["domains"]


def test_rendered_values_template_and_lint_with_the_real_schema(tmp_path: Path) -> None:
    """helm itself (4.1.4) validates the values against the chart's schema and renders the TLSStore."""
    from helmdist import real_helm

    helm = real_helm("4.1.4")
    text, _ = render_ok(lab_with(tmp_path))
    values = tmp_path / "values.yaml"
    values.write_text(text)
    chart = REPO / "tests" / "charts" / "traefik-standin"
    for args in (["lint", "--strict", str(chart), "-f", str(values)],
                 ["template", "traefik", str(chart), "-n", "traefik", "-f", str(values)]):
        done = subprocess.run([str(helm), *args], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "HELM_CACHE_HOME": str(tmp_path / "cache"),
                                   "HELM_CONFIG_HOME": str(tmp_path / "config")})
        assert done.returncode == 0, done.stderr
    stores = [d for d in yaml.safe_load_all(done.stdout) if d and d.get("kind") == "TLSStore"]
    assert [(s["metadata"]["name"], s["metadata"]["namespace"]) for s in stores] == [("default", "traefik")]
    assert stores[0]["spec"]["defaultGeneratedCert"]["domain"] == {"main": "lab.example.net"}


# the init container: seeds an empty acme.json from labup backup's Secret, then makes it 0600
SEED_SCRIPT = ("if [ ! -s /data/acme.json ] && [ -s /seed/acme.json ]; then cp /seed/acme.json /data/acme.json; fi; "
               "touch /data/acme.json && chmod 600 /data/acme.json")

# Every key the issue asks for (FACTS.md §3), as `path: value` in the rendered values.
EXPECTED: dict[str, Any] = {
    "hostNetwork": True,
    "deployment/kind": "Deployment",
    "deployment/replicas": 1,
    "deployment/dnsPolicy": "ClusterFirstWithHostNet",
    "updateStrategy/type": "RollingUpdate",
    "updateStrategy/rollingUpdate/maxUnavailable": 1,
    "updateStrategy/rollingUpdate/maxSurge": 0,
    "ports/web/port": 80,
    "ports/web/hostPort": 80,
    "ports/web/containerPort": 80,
    "ports/websecure/port": 443,
    "ports/websecure/hostPort": 443,
    "ports/websecure/containerPort": 443,
    "ports/web/http/redirections/entryPoint": {"to": "websecure", "scheme": "https", "permanent": True},
    "ports/websecure/http/tls/enabled": True,
    "ports/websecure/http/tls/certResolver": "letsencrypt",
    "ports/websecure/http/tls/domains": [{"main": "lab.example.net"}],
    "certificatesResolvers/letsencrypt/acme/email": "admin@lab.example.net",
    "certificatesResolvers/letsencrypt/acme/storage": "/data/acme.json",
    "certificatesResolvers/letsencrypt/acme/httpChallenge": {"entryPoint": "web"},
    "deployment/additionalVolumes": [
        {"name": "acme", "hostPath": {"path": "/var/mnt/traefik", "type": "DirectoryOrCreate"}},
        {"name": "acme-seed", "secret": {"secretName": "labup-acme-backup", "optional": True}}],
    "additionalVolumeMounts": [{"name": "acme", "mountPath": "/data"}],
    "persistence/name": "chart-data",
    "persistence/path": "/chart-data",
    "deployment/initContainers/0/command": ["sh", "-c", SEED_SCRIPT],
    "deployment/initContainers/0/volumeMounts": [{"name": "acme", "mountPath": "/data"},
                                                 {"name": "acme-seed", "mountPath": "/seed", "readOnly": True}],
    "podSecurityContext/runAsUser": 0,
    "podSecurityContext/runAsNonRoot": False,
    "securityContext/capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
    "securityContext/allowPrivilegeEscalation": False,
    "securityContext/readOnlyRootFilesystem": True,
    "service/enabled": False,
    "providers/kubernetesIngress/ingressEndpoint/ip": "192.0.2.250",
    "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists",
                     "effect": "NoSchedule"}],
    "nodeSelector": {"kubernetes.io/hostname": "talos-unw-ifc"},
}


@pytest.mark.parametrize("path", EXPECTED)
def test_example_carries_key(example: tuple[str, dict[str, Any]], path: str) -> None:
    assert at(example[1], path) == EXPECTED[path]


def test_example_acme_defaults(example: tuple[str, dict[str, Any]]) -> None:
    acme = example[1]["certificatesResolvers"]["letsencrypt"]["acme"]
    assert "tlsChallenge" not in acme and "caServer" not in acme  # production, HTTP-01
    init = example[1]["deployment"]["initContainers"][0]
    image, _, tag = init["image"].partition(":")
    assert image == "busybox" and tag and tag != "latest"  # pinned
    # the chart's own volume moved aside: no clash with the hostPath volume's name or path
    assert example[1]["persistence"]["name"] != "acme" and example[1]["persistence"]["path"] != "/data"


def test_example_says_which_node_and_why(example: tuple[str, dict[str, Any]]) -> None:
    text = example[0]
    header = text[:text.index("\n" + "hostNetwork:")]
    assert all(line.startswith("#") for line in header.splitlines())
    assert "chart traefik 41.3.0" in header
    assert "talos-unw-ifc is the first control-plane node in lab.yaml" in header
    assert "holds the VIP" in header


def test_shipped_schema_is_the_pinned_charts() -> None:
    digest = hashlib.sha256((SHIPPED / "values.schema.json").read_bytes()).hexdigest()
    assert digest == UPSTREAM_SCHEMA_SHA256
    pin = yaml.safe_load((SHIPPED / "chart.yaml").read_text())
    assert (pin["name"], pin["version"], pin["schema"]) == ("traefik", "41.3.0", "values.schema.json")
    shipped = json.loads((SHIPPED / "values.schema.json").read_text())
    # labup skips this (slow) metaschema check at run time: the pinned sha256 stands for it
    jsonschema.validators.validator_for(shipped).check_schema(shipped)


# -- lab.yaml choices --------------------------------------------------------------------------------


def test_tls_challenge_renders_true(tmp_path: Path) -> None:
    text, values = render_ok(lab_with(tmp_path, challenge="tls"))
    acme = values["certificatesResolvers"]["letsencrypt"]["acme"]
    assert acme["tlsChallenge"] is True
    assert "httpChallenge" not in acme
    assert "tlsChallenge: true" in text


def test_staging_renders_staging_ca(tmp_path: Path) -> None:
    _, values = render_ok(lab_with(tmp_path, staging=True, resolver="le-staging"))
    acme = values["certificatesResolvers"]["le-staging"]["acme"]
    assert acme["caServer"] == LETSENCRYPT_STAGING == "https://acme-staging-v02.api.letsencrypt.org/directory"
    assert values["ports"]["websecure"]["http"]["tls"]["certResolver"] == "le-staging"


def test_chart_version_other_than_the_pin_is_refused(tmp_path: Path) -> None:
    data = example_data()
    data["traefik"]["chart_version"] = "33.2.1"
    lab = tmp_path / "lab.yaml"
    lab.write_text(yaml.safe_dump(data))
    assert_refused(run_labup("-c", str(lab), "render", "traefik"),
                   "traefik.chart_version: '33.2.1': labup's Traefik values and schema are written for "
                   "chart traefik 41.3.0")


# -- the user's extra values file ----------------------------------------------------------------------


def test_user_values_merge_last(tmp_path: Path) -> None:
    text, values = render_ok(lab_with(tmp_path, (
        "log:\n  level: DEBUG\n"
        "tolerations: []\n"                                   # lists replace, never append
        "ports:\n  web:\n    forwardedHeaders:\n      trustedIPs: [10.0.0.0/8]\n"
        "deployment:\n  podLabels: {team: lab}\n  dnsConfig: null\n")))  # null reaches Helm as null
    assert values["log"]["level"] == "DEBUG"
    assert values["tolerations"] == []
    assert values["ports"]["web"]["forwardedHeaders"]["trustedIPs"] == ["10.0.0.0/8"]
    assert values["ports"]["web"]["port"] == 80 and values["deployment"]["replicas"] == 1  # maps merge
    assert values["deployment"]["podLabels"] == {"team": "lab"}
    assert values["deployment"]["dnsConfig"] is None  # Helm deletes the chart's default with it
    assert values["deployment"]["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert "extra-values.yaml merged last" in text


def test_user_values_cannot_raise_replicas(tmp_path: Path) -> None:
    assert_refused(run_labup("-c", str(lab_with(tmp_path, "log:\n  level: DEBUG\ndeployment:\n  replicas: 2\n")),
                             "render", "traefik"),
                   "traefik.values: deployment.replicas: 2 replicas")


def test_user_values_may_scale_without_builtin_acme(tmp_path: Path) -> None:
    """Wall 6 is about ACME state: with certificates from elsewhere, more replicas are the user's call."""
    _, values = render_ok(lab_with(tmp_path, (
        "certificatesResolvers: null\n"
        "ports:\n  websecure:\n    http:\n      tls:\n        certResolver: null\n"
        "deployment:\n  replicas: 2\n"
        "updateStrategy:\n  rollingUpdate:\n    maxUnavailable: 50%\n")))
    assert values["deployment"]["replicas"] == 2 and values["certificatesResolvers"] is None


@pytest.fixture(scope="module")
def refused_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every fixture through the real command, run side by side: each case is still its own
    process and its own test, but the module stays fast."""
    labs = {f.stem: lab_with(tmp_path_factory.mktemp(f.stem), f.read_text()) for f in REFUSED}
    with ThreadPoolExecutor(max_workers=2 * (os.cpu_count() or 2)) as pool:
        futures = {name: pool.submit(run_labup, "-c", str(lab), "render", "traefik") for name, lab in labs.items()}
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("fixture", REFUSED, ids=[p.stem for p in REFUSED])
def test_refused_values_file(refused_runs: dict[str, subprocess.CompletedProcess[str]], fixture: Path) -> None:
    expected = [line.removeprefix("# expect:").strip() for line in fixture.read_text().splitlines()
                if line.startswith("# expect:")]
    assert expected, f"{fixture.name} has no '# expect:' line"
    assert_refused(refused_runs[fixture.stem], *expected)


def test_redirect_to_fails_before_any_outside_call(tmp_path: Path) -> None:
    """No helm, talosctl or kubectl can run (tripwires on PATH record any call), no kubeconfig."""
    tripped = tmp_path / "tripped"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("helm", "talosctl", "kubectl"):
        wire = bin_dir / tool
        wire.write_text(f"#!/bin/sh\necho {tool} >> '{tripped}'\nexit 99\n")
        wire.chmod(wire.stat().st_mode | stat.S_IXUSR)
    env = {"PATH": str(bin_dir), "KUBECONFIG": str(tmp_path / "no-kubeconfig"),
           "TALOSCONFIG": str(tmp_path / "no-talosconfig"), "HOME": str(tmp_path / "home")}
    lab = lab_with(tmp_path, (FIXTURES / "old-chart-33-redirect-to.yaml").read_text())
    result = run_labup("-c", str(lab), "render", "traefik", env=env)
    assert_refused(result, "traefik.values: ports.web.redirectTo:", "additional properties 'redirectTo' not allowed")
    assert not tripped.exists(), tripped.read_text()
    assert not (tmp_path / "home").exists()  # not even a config folder was created


def test_render_sends_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process: any socket connect or process spawn fails the test, for a good and a bad file."""
    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"outside call during render: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", forbidden)
    monkeypatch.setattr(subprocess.Popen, "__init__", forbidden)
    monkeypatch.setattr(os, "execv", forbidden)
    assert "hostNetwork: true" in build(load(lab_with(tmp_path))).to_yaml()
    bad = lab_with(tmp_path, "ports:\n  web:\n    redirectTo: {port: websecure}\n")
    with pytest.raises(ValuesError, match=r"ports\.web\.redirectTo"):
        build(load(bad))


# -- the pieces, directly ------------------------------------------------------------------------------


def test_merge_maps_merge_lists_replace_nulls_kept() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": {"e": 1}}
    merged = merge(base, {"a": {"c": [3]}, "d": None})
    assert merged == {"a": {"b": 1, "c": [3]}, "d": None}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": {"e": 1}}  # untouched
    assert without_nulls(merged) == {"a": {"b": 1, "c": [3]}}


@pytest.mark.parametrize(("raw", "replicas", "refused"), [
    (0, 1, True), ("0%", 3, True), ("25%", 1, True), ("25%", 4, False), (1, 1, False), ("100%", 1, False),
])
def test_max_unavailable_resolves_like_kubernetes(raw: Any, replicas: int, refused: bool) -> None:
    values = {"hostNetwork": True, "deployment": {"replicas": replicas},
              "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": raw}}}
    if refused:
        with pytest.raises(ValuesError, match="maxUnavailable"):
            guards.rolling_update_can_roll(values)
    else:
        guards.rolling_update_can_roll(values)


def test_guards_leave_other_setups_alone() -> None:
    guards.rolling_update_can_roll({"hostNetwork": True, "updateStrategy": {"type": "Recreate"}})
    guards.rolling_update_can_roll({"hostNetwork": False, "updateStrategy": {"rollingUpdate": {"maxUnavailable": 0}}})
    guards.host_ports_match({"hostNetwork": False, "ports": {"web": {"port": 8000, "hostPort": 80}}})
    guards.single_acme_instance({"deployment": {"replicas": 3}})  # no ACME
    guards.acme_challenges({"certificatesResolvers": {"le": {"acme": {"tlsChallenge": True}}}})


def test_schema_check_is_helm_worded() -> None:
    with pytest.raises(ValuesError) as caught:
        schema.validate({"ports": {"web": {"redirectTo": {}}}})
    assert caught.value.key == ("ports", "web", "redirectTo")
    assert caught.value.reason == "additional properties 'redirectTo' not allowed"


def test_template_problems_are_blamed_on_the_template(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = template.load_template()
    edited = merge(real, {"deployment": {"replicas": 2}})
    monkeypatch.setattr(template, "load_template", lambda: edited)
    with pytest.raises(ValuesError) as caught:
        build(load(lab_with(tmp_path)))
    assert caught.value.source == TEMPLATE_SOURCE
    assert str(caught.value).startswith(f"{TEMPLATE_SOURCE}: deployment.replicas: 2 replicas")


@pytest.mark.parametrize(("tree", "message"), [
    ({"a": "${nope}"}, "a: unknown placeholder '${nope}'"),
    ({"a": ["x-${vip}"]}, "a[0]: 'x-${vip}': a placeholder must be the whole value"),
])
def test_template_placeholders_are_strict(tree: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{TEMPLATE_SOURCE}: ") as caught:
        template.fill(tree, {"vip": "192.0.2.1"})
    assert message in str(caught.value)


def test_template_placeholders_are_values_not_text() -> None:
    """A hostile-looking value stays one string: substitution happens after parsing."""
    filled = template.fill({"k": "${v}", "${name}": {"x": "${none}"}, "keep": None},
                           {"v": "a\nb: c", "name": "le", "none": None})
    assert filled == {"k": "a\nb: c", "le": {}, "keep": None}


def test_node_found_at_run_time_is_pinned(tmp_path: Path) -> None:
    rendered = build(load(lab_with(tmp_path)), node="talos-cp-2")
    assert rendered.values["nodeSelector"] == {"kubernetes.io/hostname": "talos-cp-2"}
    assert "# nodeSelector: talos-cp-2 holds the VIP 192.0.2.250." in rendered.to_yaml()
    with pytest.raises(PermanentError):
        build(load(lab_with(tmp_path)), node="bad node\nx: 1")


@pytest.mark.parametrize("seed, before, after", [
    (None, None, b""),  # no backup Secret, a new node: an empty file, 0600
    (b'{"le": 1}', None, b'{"le": 1}'),  # the VIP moved: the new node starts with the backup
    (b'{"le": 1}', b"", b'{"le": 1}'),  # an empty file is seeded too
    (b'{"le": 1}', b'{"le": 2}', b'{"le": 2}'),  # a file with data is never replaced
])
def test_the_init_script_seeds_only_an_empty_store(tmp_path: Path, seed: bytes | None, before: bytes | None,
                                                    after: bytes) -> None:
    """The values' init container script, run by a real POSIX sh with its two folders moved under tmp."""
    from labup.certbackup.node import SEED_SECRET

    values = build(load(REPO / "examples" / "lab.yaml")).values
    assert values["deployment"]["additionalVolumes"][1]["secret"]["secretName"] == SEED_SECRET
    script = values["deployment"]["initContainers"][0]["command"][2]
    data, seeds = tmp_path / "data", tmp_path / "seed"
    data.mkdir()
    seeds.mkdir()
    if seed is not None:
        (seeds / "acme.json").write_bytes(seed)
    if before is not None:
        (data / "acme.json").write_bytes(before)
    moved = script.replace("/data/", f"{data}/").replace("/seed/", f"{seeds}/")
    subprocess.run(["sh", "-c", moved], check=True, timeout=10)
    assert (data / "acme.json").read_bytes() == after
    assert stat.S_IMODE((data / "acme.json").stat().st_mode) == 0o600
