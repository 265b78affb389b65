"""What the node does with an ApplyConfiguration request: decode with its own version, validate.

Failures become `rpc error: code = InvalidArgument desc = ...` (v1alpha1_server.go).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from talos_sim import patchload, yamlio
from talos_sim.errors import TalosError, multierror
from talos_sim.versions import LINES_FROM, parse_version

WORKER_VIP = "virtual (shared) IP is not allowed on non-controlplane nodes"
NO_V1ALPHA1 = (
    "the applied machine configuration doesn't contain v1alpha1 config, "
    "did you mean to patch the machine config instead?"
)


def check(text: str, version: str) -> list[dict[str, Any]]:
    """Decode + validate `text` as a node running `version` would; returns the documents.

    Raises TalosError whose message is the gRPC status description.
    """
    docs = _decode(text, version)
    if not any(_is_v1alpha1(d) for d in docs):
        raise TalosError(NO_V1ALPHA1)
    errors = []
    for doc in docs:
        if _is_v1alpha1(doc):
            v1_errors = _validate_v1alpha1(doc)
            if v1_errors:
                errors.append("v1alpha1.Config: " + multierror(v1_errors))
        elif doc.get("kind") == "Layer2VIPConfig":
            doc_errors = _validate_layer2vip(doc)
            if doc_errors:
                errors.append(f"Layer2VIPConfig/{doc.get('name') or ''}: " + "\n".join(doc_errors))
    if errors:
        raise TalosError(multierror(errors))
    return docs


def _is_v1alpha1(doc: dict[str, Any]) -> bool:
    return not doc.get("kind") and any(k in doc for k in patchload.LEGACY_KEYS)


def _decode(text: str, version: str) -> list[dict[str, Any]]:
    with_lines = parse_version(version) >= LINES_FROM  # 1.12.3 added "(line N)" and the wrapper
    seen: set[tuple[str, str, str]] = set()
    docs = []
    for line, doc in yamlio.load_docs_with_lines(text):
        if not isinstance(doc, dict):
            raise TalosError(f"expected a YAML document at line {line}")
        ident = (doc.get("apiVersion") or "", doc.get("kind") or "v1alpha1", str(doc.get("name") or ""))
        if ident in seen:
            suffix = f" (line {line})" if with_lines else ""
            raise TalosError(f"duplicate document {'/'.join(ident)} is not allowed{suffix}")
        seen.add(ident)
        patchload.check_document(doc, line, version)  # wraps with "(line N)" from 1.12.3 on
        docs.append(doc)
    return docs


def legacy_vips(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """(link, vip) from machine.network.interfaces[].vip.ip and .vlans[].vip.ip."""
    network = (doc.get("machine") or {}).get("network") or {}
    out = []
    for dev in network.get("interfaces") or []:
        if not isinstance(dev, dict):
            continue
        link = str(dev.get("interface") or "")
        vip = (dev.get("vip") or {}).get("ip")
        if vip:
            out.append((link, str(vip)))
        for vlan in dev.get("vlans") or []:
            vvip = (vlan.get("vip") or {}).get("ip") if isinstance(vlan, dict) else None
            if vvip:
                out.append((f"{link}.{vlan.get('vlanId')}", str(vvip)))
    return out


def _validate_v1alpha1(doc: dict[str, Any]) -> list[str]:
    machine = doc.get("machine") or {}
    errors = []
    if machine.get("type") == "worker":
        errors += [WORKER_VIP for _ in legacy_vips(doc)]
        if (machine.get("ca") or {}).get("key"):
            errors.append("issuing Talos API CA key is not allowed on non-controlplane nodes (.machine.ca)")
    elif machine.get("type") in ("controlplane", "init") and not (machine.get("ca") or {}).get("key"):
        errors.append("issuing CA key is required for controlplane nodes (.machine.ca.key)")
    return errors


def _validate_layer2vip(doc: dict[str, Any]) -> list[str]:
    errors = []
    name = doc.get("name")
    if not name:
        errors.append("name must be specified")
    else:
        try:
            ipaddress.ip_address(str(name))
        except ValueError:
            errors.append(f'name must be a valid IP address: ParseAddr("{name}"): unable to parse IP')
    if not doc.get("link"):
        errors.append("link must be specified")
    return errors


def layer2_vips(docs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(link, vip) from Layer2VIPConfig documents."""
    return [
        (str(d.get("link") or ""), str(d.get("name")))
        for d in docs
        if d.get("kind") == "Layer2VIPConfig" and d.get("name")
    ]
