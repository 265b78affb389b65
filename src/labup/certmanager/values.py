"""cert-manager's Helm values: phases/certmanager/values.yaml.tmpl, checked against the pinned chart's
own values.schema.json (offline, like Traefik's), for the version lab.yaml names."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from labup.errors import ConfigError
from labup.traefik import template
from labup.traefik.keys import ValuesError
from labup.traefik.pin import load_pin, pin_file

if TYPE_CHECKING:
    from labup.config import Lab

CHART = "certmanager"  # phases/certmanager/
SOURCE = "phases/certmanager/values.yaml.tmpl"


def check_version(chart_version: str) -> None:
    pin = load_pin(CHART)
    if chart_version.lstrip("v") != pin.version.lstrip("v"):
        raise ConfigError("cert_manager.chart_version",
                          f"'{chart_version}': labup's cert-manager values are validated for chart "
                          f"{pin.name} {pin.version}",
                          hint=f"set cert_manager.chart_version: {pin.version}, or move labup to another version "
                               f"in {pin_file(CHART)} (with that version's values.schema.json)")


def build(lab: Lab) -> dict[str, Any]:
    """The values the cert-manager phase installs (each caller gets its own copy)."""
    return template.fill(_build(lab.cert_manager.chart_version), {})


@functools.lru_cache(maxsize=2)
def _build(chart_version: str) -> dict[str, Any]:
    check_version(chart_version)
    values = template.load_template(CHART)
    from labup import warmup

    warmup.ready()  # an apply may be importing jsonschema in the background
    from labup.traefik import schema

    try:
        schema.validate(values, CHART)
    except ValuesError as exc:
        raise exc.from_source(SOURCE) from None
    return values


def render(lab: Lab) -> str:
    """`labup render cert-manager`: the values, as YAML, with where they are checked."""
    import yaml

    pin = load_pin(CHART)
    head = (f"# Helm values for chart {pin.name} {pin.version}, rendered by labup for lab '{lab.name}' "
            f"(topology: {lab.topology}).\n")
    if not lab.ha:
        head += "# topology: single installs no cert-manager: these values are used only with topology: ha.\n"
    from labup.certmanager.objects import desired

    objects = "".join("---\n" + yaml.safe_dump(obj, sort_keys=False, default_flow_style=False)
                      for obj in desired(lab))
    return (head + yaml.safe_dump(build(lab), sort_keys=False, default_flow_style=False)
            + f"# Then, in namespace {lab.traefik.namespace} (created by labup, not by Helm):\n" + objects)
