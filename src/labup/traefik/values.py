"""Traefik's final Helm values for a lab: template filled from lab.yaml, the user's file merged last,
then the guards and the chart's schema. `build` is what `labup render traefik` prints and what the
traefik phase installs."""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from labup import validators, yamlsafe
from labup.errors import ConfigError, PermanentError
from labup.traefik import guards, template
from labup.traefik.keys import TEMPLATE_SOURCE, USER_SOURCE, ValuesError
from labup.traefik.pin import check_lab_version, load_pin
from labup.traefik.tree import merge, overlay, require_string_keys, without_nulls

if TYPE_CHECKING:
    from labup.config import Lab

LETSENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
LETSENCRYPT_PRODUCTION = "https://acme-v02.api.letsencrypt.org/directory"
HA_TEMPLATE = "values-ha.yaml.tmpl"
TLS_SECRET = "labup-tls"  # topology ha: cert-manager's Certificate, and the Secret it keeps the certificate in


@dataclass(frozen=True)
class RenderedValues:
    values: dict[str, Any]  # exactly what goes to helm (nulls kept: Helm applies them)
    node: str  # the node Traefik is pinned to
    notes: tuple[str, ...]  # why this node, which files: printed as YAML comments above the values

    def to_yaml(self) -> str:
        header = "".join(f"# {line}\n" for line in self.notes)
        body = yaml.safe_dump(self.values, sort_keys=False, default_flow_style=False, allow_unicode=True,
                              width=120)
        return header + body


def build(lab: Lab, node: str | None = None) -> RenderedValues:
    """The final values. `node` is the Kubernetes name of the node that holds the VIP (found at run
    time); without it (render, no cluster) the first control-plane node of lab.yaml stands in.

    Built once per (lab, node) in a process: pre-flight, the plan and the install all ask, and the
    schema check of the whole chart is the costly part. Each caller gets its own copy."""
    built = _build(lab, None if lab.ha else node)  # ha: the same values whichever node holds the VIP
    return RenderedValues(values=copy.deepcopy(built.values), node=built.node, notes=built.notes)


@functools.lru_cache(maxsize=8)
def _build(lab: Lab, node: str | None) -> RenderedValues:
    check_lab_version(lab.traefik.chart_version)
    pin = load_pin()
    notes = [f"Helm values for chart {pin.name} {pin.version} (Traefik {pin.app_version}), rendered by labup "
             f"for lab '{lab.name}'."]
    if lab.ha:
        node = lab.control_planes[0].name  # only said in messages: the DaemonSet runs on every one
        notes += ["topology: ha: a DaemonSet on every control-plane node; cert-manager issues the certificate "
                  f"into Secret {TLS_SECRET}."]
    elif node is None:
        node = lab.control_planes[0].name
        notes += [f"nodeSelector: {node} is the first control-plane node in lab.yaml: no cluster was asked.",
                  "`labup apply` pins Traefik to the node that holds the VIP at that time."]
    elif problem := validators.dns_subdomain(node):
        # the name comes from the cluster (the VIP holder): checked before it lands in the values
        raise PermanentError(f"node name from the cluster: {problem}")
    else:
        notes.append(f"nodeSelector: {node} holds the VIP {lab.vip.address}.")

    params = _params(lab, node)
    base = template.fill(template.load_template(), params)
    if lab.ha:
        base = overlay(base, template.fill(template.load_template(name=HA_TEMPLATE), params))
    try:
        user = load_user_values(lab.traefik.values)
        values = merge(base, user)
        check(values, base, lab.topology)
    except ValuesError as exc:
        if exc.source != USER_SOURCE or lab.traefik.values is None:
            raise
        # the field names the key; the file it is in may be anywhere: say which
        raise ValuesError(exc.key, f"{exc.reason} (in {_one_line(str(lab.traefik.values))})", exc.hint,
                          exc.source) from None
    if lab.traefik.values is not None:
        notes.append(f"{USER_SOURCE}: {_one_line(str(lab.traefik.values))} merged last.")
    return RenderedValues(values=values, node=node, notes=tuple(notes))


def check(values: Mapping[str, Any], base: Mapping[str, Any], topology: str = "single") -> None:
    """Guards, then the schema, on the values as the chart will see them. A problem is blamed on the
    template (which users may edit too) when the template alone has it at the same stage, else on
    the user's file: the merge brought it in, even when the key it names is the template's (a
    user's `port: 8000` makes the template's `hostPort: 80` wrong)."""
    def guards_of_topology(v: Mapping[str, Any]) -> None:
        guards.check_all(v, topology)

    for stage in (guards_of_topology, _schema):
        try:
            stage(without_nulls(values))
        except ValuesError:
            try:
                stage(without_nulls(base))
            except ValuesError as own:
                raise own.from_source(TEMPLATE_SOURCE) from None
            raise


def _schema(values: Mapping[str, Any]) -> None:
    from labup import warmup

    warmup.ready()  # an apply may be importing jsonschema in the background
    from labup.traefik import schema  # jsonschema costs ~0.1 s to import: only once the guards pass

    schema.validate(values)


def load_user_values(path: Path | None) -> dict[str, Any]:
    """The user's extra values file (lab.yaml `traefik.values`), loaded with labup's safe YAML."""
    if path is None:
        return {}
    data = yamlsafe.load_file(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a {type(data).__name__}"
        raise ConfigError(USER_SOURCE, f"{path}: expected a mapping of Helm values, got {kind}")
    require_string_keys(data)
    return data


def _params(lab: Lab, node: str) -> dict[str, Any]:
    """The template's placeholders (documented at the top of values.yaml.tmpl)."""
    acme = lab.traefik.acme
    return {
        "node": node,
        "vip": lab.vip.address,
        "resolver": acme.resolver,
        "email": acme.email,
        "storage_dir": acme.storage_dir,
        "http_challenge": {"entryPoint": "web"} if acme.challenge == "http" else None,
        "tls_challenge": True if acme.challenge == "tls" else None,
        "ca_server": LETSENCRYPT_STAGING if acme.staging else None,
        "domains": [{"main": d} for d in lab.traefik.domains],
        "default_cert_domain": default_cert_domain(lab.traefik.domains),
        # topology ha (values-ha.yaml.tmpl)
        "tls_secret": TLS_SECRET,
        "ingress_class": lab.traefik.release,
    }


def default_cert_domain(domains: tuple[str, ...]) -> dict[str, Any]:
    """One certificate naming every domain: the default TLS store's, requested with no router."""
    first, *rest = domains
    return {"main": first, "sans": list(rest)} if rest else {"main": first}


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")
