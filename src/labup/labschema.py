"""The JSON Schema of lab.yaml (draft 2020-12), for editors: built from config.py's dataclasses.

Keys and their nesting come from the dataclasses (`Lab` and the sections its fields name), never from a
list of their own: a field added to config.py with no entry in FIELDS makes `build()` fail, and with it
tests/test_schema.py, until the field is described here and src/labup/lab.schema.json is regenerated
(`.venv/bin/python tools/snapshot_schema.py`). FIELDS says what the dataclasses cannot: a description, the
default lab.yaml gets (tested against what config.py really gives), bounds (tested against config.py's
own, at their edges), patterns equivalent to validators.py's checks, and which keys are required.

What only labup's validator checks (JSON Schema cannot say it, or not for every editor): VALIDATOR_ONLY
below. tests/test_schema.py feeds every lab.yaml fixture to both and proves: the validator accepts =>
the schema accepts; the schema rejects => the validator rejects, naming a field on the same branch; the
validator rejects what the schema accepts => for one of VALIDATOR_ONLY's reasons.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

from labup import config

DRAFT = "https://json-schema.org/draft/2020-12/schema"

# What labup's validator checks and this schema does not, each with the message that says so (a regex on
# "path: message", `.` matching newlines too: a value may hold one). Keep it short: anything a pattern,
# enum or bound can say belongs in the schema.
VALIDATOR_ONLY: dict[str, str] = {
    # across fields: JSON Schema compares a value with constants, never with another field's value
    "two nodes with one name": r"^nodes\[\d+\]\.name: .* is also the name of nodes\[\d+\]$",
    "two nodes with one address (compared as addresses: 2001:db8::1 = 2001:DB8:0::1)":
        r"^nodes\[\d+\]\.address: .* is also the address of nodes\[\d+\]",
    "vip.address is a node's address": r"^vip\.address: .* is the address of node ",
    "a talos endpoint is the VIP": r"^talos\.endpoints\[\d+\]: .* is the VIP$",
    "topology ha with fewer than three control planes": r"^topology: 'ha' needs at least \d+ control-plane nodes",
    "topology ha with the tls challenge": r"^traefik\.acme\.challenge: 'tls' cannot be used with topology: ha",
    "topology ha with cert-manager in Traefik's namespace": r"^cert_manager\.namespace: .* is Traefik's namespace",
    # `labup init` writes CHANGE-ME where it had no fact; most fields' patterns refuse it anyway
    "a value still the CHANGE-ME placeholder": r"is still the CHANGE-ME placeholder",
    # the file system: an editor's schema cannot look
    "traefik.values and verify.ca_file must be readable files":
        r"^(traefik\.values|verify\.ca_file): (file .* (does not exist|cannot be read)|.* is a directory|"
        r".* is not (readable|a regular file))",
    # address semantics a format cannot carry
    "loopback, multicast and unspecified addresses (nodes, VIP, talos endpoints); a talos endpoint's "
    "[IPv6] that is no address":
        r"(is a loopback, multicast or unspecified address|^talos\.endpoints\[\d+\]: .* is not an address or "
        r"host name$|^talos\.endpoints\[\d+\]: .* is not an IP address or a host name$)",
    # YAML numbers JSON Schema's types let through: 2.0 is an "integer" there, .nan compares with nothing
    "an integer written with a fraction (2.0), or .nan":
        r"(: expected an integer, got a number$|: must be greater than .* got nan$)",
}

_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_PORT = r"0*([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
# refused in host paths and chart references (validators' shell metacharacters); `"` unescaped: editors
# compile patterns as ECMA-262 with the u flag, where `\"` is an error
_SHELL = r" \t\n;&|`\$'" + '"' + r"\\"
_DOMAIN = rf"({_LABEL}\.)+(?![0-9]+$){_LABEL}"  # two labels or more; the last not all digits (an address)
_EMAIL_CHAR = r"[A-Za-z0-9!#\$%&'*+/=?^_`{|}~-]"

DNS_LABEL = {"pattern": rf"^{_LABEL}$", "maxLength": 63}
DNS_SUBDOMAIN = {"pattern": rf"^{_LABEL}(\.{_LABEL})*$", "maxLength": 253}
DOMAIN = {"pattern": rf"^{_DOMAIN}$", "maxLength": 253}
IP_ADDRESS = {"anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]}
SEMVER = {"pattern": r"^v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?"
                     r"(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$"}
URL = {"pattern": r"^https?://[A-Za-z0-9.:\[\]-]+(/[A-Za-z0-9._~/%+-]*)?$"}
PATH = {"pattern": r"^[^\x00]*[^\x00\s][^\x00]*$"}  # not blank, no NUL
EMAIL = {"pattern": rf"^(?=[^@]{{1,64}}@){_EMAIL_CHAR}+(\.{_EMAIL_CHAR}+)*\.?@(?=.{{1,253}}$){_DOMAIN}$"}
INTERFACE = {"pattern": r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$", "maxLength": 15}
# normalized, under /var, no `.`/`..` segment, no shell metacharacter; trailing slashes are dropped
STORAGE_DIR = {"pattern": rf"^/var(/(?!\.\.?(/|$))[^/\x00{_SHELL}]+)+/*$"}
CHART = {"pattern": rf"^(?!-)(oci://[^{_SHELL}]*|[./~][^{_SHELL}]*|[^/{_SHELL}]*/[^/{_SHELL}]*)$"}
# host, host:port, [IPv6]:port or a bare IPv6 address; one endpoint per entry (talosctl splits on commas)
ENDPOINT = {"anyOf": [
    {"pattern": rf"^{_LABEL}(\.{_LABEL})*(:{_PORT})?$"},
    {"pattern": rf"^\[([0-9A-Fa-f:.]+|{_LABEL}(\.{_LABEL})*)\](:{_PORT})?$"},
    {"format": "ipv6", "pattern": ":"},
]}

# every lab.yaml key, by path (`nodes[]` is each node): what an editor shows, and what JSON Schema can
# check. `required` keys have no default; every other key has one (null: labup's own choice, described).
FIELDS: dict[str, dict[str, Any]] = {
    "name": {"description": "A label for this lab: names its state folder, lock and release notes.",
             "default": "lab", **DNS_LABEL},
    "nodes": {"description": "Every Talos node labup may touch; at least one control plane.", "required": True,
              "minItems": 1, "contains": {"type": "object", "required": ["role"],
                                          "properties": {"role": {"const": "controlplane"}}}},
    "nodes[].name": {"description": "The Kubernetes node name (the kubernetes.io/hostname label).",
                     "required": True, **DNS_SUBDOMAIN},
    "nodes[].address": {"description": "The Talos API address (`talosctl -n`): a bare IPv4 or IPv6 address, "
                                       "unique among the nodes.", "required": True, **IP_ADDRESS},
    "nodes[].role": {"description": "controlplane or worker; checked against Talos' own machine type. "
                                    "Workers never get the VIP.", "required": True, "enum": list(config.ROLES)},
    "topology": {"description": "single: one Traefik on the VIP's node, certificates by its built-in ACME in "
                                "acme.json there; ha: Traefik on every control-plane node (three or more), "
                                "certificates by cert-manager in a Secret.", "default": "single",
                 "enum": list(config.TOPOLOGIES)},
    "cert_manager": {"description": "topology ha only: cert-manager, installed by the cert-manager phase."},
    "cert_manager.namespace": {"description": "cert-manager's own namespace (helm creates it; never labelled "
                                              "privileged, never a system namespace).", "default": "cert-manager",
                               **DNS_LABEL, "not": {"enum": list(config.SYSTEM_NAMESPACES)}},
    "cert_manager.release": {"description": "The Helm release name.", "default": "cert-manager", **DNS_SUBDOMAIN,
                             "maxLength": 53},
    "cert_manager.chart": {"description": "repo/chart, oci://..., or a local chart path.",
                           "default": "jetstack/cert-manager", **CHART},
    "cert_manager.repo_url": {"description": "The chart repository.", "default": "https://charts.jetstack.io",
                              **URL},
    "cert_manager.chart_version": {"description": "The chart labup's values are validated for "
                                                  "(phases/certmanager/).", "default": "v1.21.1", **SEMVER},
    "cert_manager.wait_timeout_s": {"description": "Seconds for `helm upgrade --install --wait`.", "default": 300,
                                    "bounds": (0, 3600)},
    "vip": {"description": "The Layer-2 virtual IP Talos announces on the control-plane nodes.",
            "required": True},
    "vip.address": {"description": "A free, bare address in the nodes' subnet (not a node's own).",
                    "required": True, **IP_ADDRESS},
    "vip.interface": {"description": "The link on the control-plane nodes (`talosctl get links`).",
                      "default": "ens18", **INTERFACE},
    "vip.wait_timeout_s": {"description": "Seconds to wait for a node to announce the VIP.", "default": 120,
                           "bounds": (0, 3600)},
    "talos": {"description": "How labup reaches Talos (talosctl)."},
    "talos.talosconfig": {"description": "The talosconfig; null: as talosctl finds it ($TALOSCONFIG, "
                                         "$TALOS_HOME/config, ~/.talos/config).", "default": None, **PATH},
    "talos.endpoints": {"description": "talosctl endpoints (host, host:port or [IPv6]:port); []: the "
                                       "control-plane addresses. Never the VIP.", "default": []},
    "talos.endpoints[]": {"description": "One endpoint: host, host:port, [IPv6]:port (no commas or spaces).",
                          **ENDPOINT},
    "talos.context": {"description": "A context of the talosconfig; null: its current one.", "default": None},
    "talos.timeout_s": {"description": "Seconds for each talosctl call.", "default": 30, "bounds": (0, 600)},
    "kubernetes": {"description": "How labup reaches the Kubernetes API."},
    "kubernetes.kubeconfig": {"description": "The kubeconfig; null: $KUBECONFIG, then ~/.kube/config.",
                              "default": None, **PATH},
    "kubernetes.context": {"description": "A context of the kubeconfig; null: its current one.", "default": None},
    "kubernetes.timeout_s": {"description": "Seconds for each API request.", "default": 15, "bounds": (0, 600)},
    "helm": {"description": "The helm labup installs when helm is missing or older."},
    "helm.version": {"description": "The helm version installed when helm is missing or older.",
                     "default": "4.1.4", **SEMVER},
    "helm.install_dir": {"description": "Where labup installs helm when it must.", "default": "~/.local/bin",
                         **PATH},
    "helm.download_url": {"description": "Where helm is downloaded from (a mirror for air-gapped labs).",
                          "default": "https://get.helm.sh", **URL},
    "traefik": {"description": "Traefik on the host network, pinned to the node holding the VIP, with "
                               "Let's Encrypt certificates.", "required": True},
    "traefik.domains": {"description": "The names Traefik gets certificates for (lower case, each once).",
                        "required": True, "minItems": 1, "uniqueItems": True},
    "traefik.domains[]": {"description": "A fully qualified domain, e.g. lab.example.org.", **DOMAIN},
    "traefik.acme": {"description": "The Let's Encrypt account and challenge.", "required": True},
    "traefik.acme.email": {"description": "The Let's Encrypt account email (at a domain you own: Let's "
                                          "Encrypt refuses example.com and the like).", "required": True, **EMAIL},
    "traefik.acme.challenge": {"description": "http: HTTP-01 on port 80; tls: TLS-ALPN-01 on port 443.",
                               "default": "http", "enum": list(config.CHALLENGES)},
    "traefik.acme.staging": {"description": "true: Let's Encrypt staging (untrusted certificates, high limits).",
                             "default": False},
    "traefik.acme.storage_dir": {"description": "hostPath on the node for acme.json: a normalized path under "
                                                "/var (Talos' only writable, lasting place).",
                                 "default": "/var/mnt/traefik", **STORAGE_DIR},
    "traefik.acme.resolver": {"description": "The name of Traefik's certificate resolver.",
                              "default": "letsencrypt", **DNS_LABEL},
    "traefik.namespace": {"description": "Traefik's namespace, labelled Pod Security privileged (this namespace "
                                         "only; never a system namespace).", "default": "traefik", **DNS_LABEL,
                          "not": {"enum": list(config.SYSTEM_NAMESPACES)}},
    "traefik.release": {"description": "The Helm release name.", "default": "traefik", **DNS_SUBDOMAIN,
                        "maxLength": 53},
    "traefik.chart": {"description": "repo/chart, oci://..., or a local chart path.",
                      "default": "traefik/traefik", **CHART},
    "traefik.repo_url": {"description": "The chart repository.", "default": "https://traefik.github.io/charts",
                         **URL},
    "traefik.chart_version": {"description": "The chart the values are written for; labup validates them "
                                             "against its schema.", "default": "41.3.0", **SEMVER},
    "traefik.values": {"description": "An extra Helm values file (must exist), merged last; relative to "
                                      "lab.yaml.", "default": None, **PATH},
    "traefik.wait_timeout_s": {"description": "Seconds for `helm upgrade --install --wait`.", "default": 300,
                               "bounds": (0, 3600)},
    "traefik.force_conflicts": {"description": "Helm 4: --force-conflicts, take back fields another field "
                                              "manager changed (kubectl scale/edit).", "default": False},
    "traefik.cert_timeout_s": {"description": "Seconds apply waits for the ACME certificate before reading "
                                              "Traefik's log for the error.", "default": 300, "bounds": (0, 3600)},
    "verify": {"description": "`labup verify`'s checks."},
    "verify.timeout_s": {"description": "Seconds for each check.", "default": 5, "bounds": (0, 300)},
    "verify.ca_file": {"description": "An extra CA (PEM file, must exist) to trust for https-cert (staging, "
                                      "tests).", "default": None, **PATH},
    "backup": {"description": "`labup backup`: acme.json copied off Traefik's node."},
    "backup.keep": {"description": "The newest N backups in .labup/backups/ are kept.", "default": 10,
                    "bounds": (0, 1000)},
    "backup.in_cluster": {"description": "true: also keep the newest as a Secret in Traefik's namespace, which "
                                         "seeds an empty acme.json when Traefik starts on another node.",
                          "default": False},
    "retry": {"description": "Retries of transient errors only (timeouts, 5xx, Talos Unavailable)."},
    "retry.attempts": {"description": "Attempts in all, the first included.", "default": 5, "bounds": (0, 50)},
    "retry.initial_s": {"description": "The first backoff in seconds; doubles, with jitter.", "default": 1,
                        "bounds": (0, 600)},
    "retry.max_s": {"description": "The longest backoff in seconds.", "default": 20, "bounds": (0, 3600)},
    "retry.total_s": {"description": "Seconds all attempts may take together.", "default": 120,
                      "bounds": (0, 86_400)},
}


class SchemaDrift(Exception):
    """config.py and FIELDS disagree on which keys lab.yaml has."""


def _unwrap(hint: Any) -> tuple[Any, bool]:
    """(the type, whether None is allowed) of `X | None`."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0], len(args) < len(typing.get_args(hint))
    return hint, False


_SCALARS = {str: "string", Path: "string", bool: "boolean", int: "integer", float: "number"}


def _property(path: str, hint: Any, used: set[str]) -> dict[str, Any]:
    if path not in FIELDS:
        raise SchemaDrift(f"lab.yaml key '{path}' is in config.py but not in labup/labschema.py FIELDS: describe "
                          "it there, then run `.venv/bin/python tools/snapshot_schema.py`")
    used.add(path)
    entry = dict(FIELDS[path])
    # a list item is never read as "not given": null there is refused, as if it were required
    required = entry.pop("required", False) or path.endswith("[]")
    bounds = entry.pop("bounds", None)
    hint, _ = _unwrap(hint)
    out: dict[str, Any] = {"description": entry.pop("description")}
    if dataclasses.is_dataclass(hint):
        out.update(_object(path, hint, used))
        # an empty (null) section is read as {}: allowed where nothing in it is required
        if not out.get("required"):
            out["type"] = ["object", "null"]
    elif typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]
        out["type"] = "array" if required else ["array", "null"]
        out["items"] = (_object(f"{path}[]", item, used) if dataclasses.is_dataclass(item)
                        else _property(f"{path}[]", item, used))
    else:
        kind = _SCALARS[hint]
        # config.py reads a null value as "not given" (the default): null is allowed unless required
        out["type"] = kind if required else [kind, "null"]
        if bounds:
            out["exclusiveMinimum"], out["maximum"] = bounds  # config: low < value <= high
    if "enum" in entry and not required:
        entry["enum"] = [*entry["enum"], None]
    if "default" in entry:
        out["default"] = entry.pop("default")
    out.update(entry)
    return out


def _object(path: str, cls: Any, used: set[str]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls, vars(config))
    properties: dict[str, Any] = {}
    required: list[str] = []
    for f in dataclasses.fields(cls):
        if f.name == "source":  # where the file was read from, not a key
            continue
        key = f"{path}.{f.name}" if path else f.name
        properties[f.name] = _property(key, hints[f.name], used)
        if FIELDS[key].get("required"):
            required.append(f.name)
    out: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": properties}
    if required:
        out["required"] = required
    return out


def build() -> dict[str, Any]:
    """The schema, from config.py's dataclasses and FIELDS (SchemaDrift when they disagree on a key)."""
    used: set[str] = set()
    root = _object("", config.Lab, used)
    stale = sorted(set(FIELDS) - used)
    if stale:
        raise SchemaDrift(f"labup/labschema.py FIELDS describes {', '.join(stale)}, which config.py does not have")
    only = "; ".join(VALIDATOR_ONLY)
    return {"$schema": DRAFT, "title": "labup lab.yaml",
            "description": "A lab for labup (`labup init` writes one). labup checks more than this schema: "
                           f"{only}.", **root}


def dumps(schema: dict[str, Any]) -> str:
    import json

    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def key_paths(schema: dict[str, Any], prefix: str = "") -> set[str]:
    """Every key path a schema (or one of its objects) describes, as FIELDS names them."""
    found: set[str] = set()
    for name, sub in schema.get("properties", {}).items():
        path = f"{prefix}.{name}" if prefix else name
        found.add(path)
        found |= key_paths(sub, path)
        items = sub.get("items")
        if isinstance(items, dict):
            if "properties" in items:
                found |= key_paths(items, f"{path}[]")
            else:
                found.add(f"{path}[]")
    return found
