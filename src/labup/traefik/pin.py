"""The charts labup's values are written for: `phases/<chart>/chart.yaml` (traefik, and certmanager for
topology: ha), each read once."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from labup import resources, yamlsafe
from labup.errors import ConfigError

PIN_FILE = "phases/traefik/chart.yaml"  # Traefik's: the one most messages name


def pin_file(chart: str = "traefik") -> str:
    return f"phases/{chart}/chart.yaml"
_FIELDS = ("name", "version", "app_version", "repo_url", "schema", "schema_sha256")


@dataclass(frozen=True)
class ChartPin:
    name: str
    version: str
    app_version: str
    repo_url: str
    schema_path: Path
    schema_sha256: str
    repo_name: str = ""  # the name `helm repo add` gives the repo (jetstack for cert-manager)

    @property
    def ref(self) -> str:
        """The chart as `helm show values` names it once its repo is added."""
        return f"{self.repo_name or self.name}/{self.name}"


def folder(chart: str = "traefik") -> Path:
    return resources.template(chart)


@cache
def load_pin(chart: str = "traefik") -> ChartPin:
    """Read chart.yaml; a missing or malformed field is named (the file is meant to be edited)."""
    where = pin_file(chart)
    data = yamlsafe.load_file(folder(chart) / "chart.yaml")
    if not isinstance(data, dict):
        raise ConfigError(where, "expected a mapping")
    for field in _FIELDS:
        if not isinstance(data.get(field), str) or not data[field]:
            raise ConfigError(f"{where}: {field}", "is required (a string)")
    schema_path = folder(chart) / data["schema"]
    if schema_path.parent != folder(chart):  # the schema copy lives beside the pin, nowhere else
        raise ConfigError(f"{where}: schema", f"'{data['schema']}' must be a file name in {folder(chart)}")
    return ChartPin(name=data["name"], version=data["version"], app_version=data["app_version"],
                    repo_url=data["repo_url"], schema_path=schema_path,
                    schema_sha256=data["schema_sha256"].lower(), repo_name=str(data.get("repo_name") or ""))


def check_lab_version(chart_version: str) -> None:
    """Wall 2: values written for one chart version fail on another. labup validates against the
    pinned chart's schema only, so a lab asking for another version is refused, not guessed at."""
    pin = load_pin()
    if chart_version.lstrip("v") != pin.version.lstrip("v"):
        raise ConfigError(
            "traefik.chart_version",
            f"'{chart_version}': labup's Traefik values and schema are written for chart "
            f"{pin.name} {pin.version}",
            hint=f"set traefik.chart_version: {pin.version}, or move labup to another chart "
                 f"version in {PIN_FILE} (with that version's values.schema.json)")
