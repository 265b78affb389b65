"""The two forms of a Talos VIP, chosen by the node's version (FACTS §2), and for one node: whether
its config already carries the VIP, the patch that adds it, the patch that removes exactly that
again, and the change as a diff of the relevant part of the config (nothing else of it is shown).

- document (Talos >= 1.12): a `Layer2VIPConfig` document.
- interface (Talos <= 1.11): `machine.network.interfaces[].vip`, merged into the node's entry for the
  link when it has one; a new entry carries `dhcp: true`, else the node would lose its address.
"""

from __future__ import annotations

import copy
import difflib
import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from labup.adapters.talos import MachineConfig
from labup.errors import PreflightError
from labup.redact import redact_obj
from labup.vip import templates

DOCUMENT = "document"
INTERFACE = "interface"
NEW_FORM_FROM = (1, 12)
_DESCRIBE = {DOCUMENT: "Layer2VIPConfig document", INTERFACE: "machine.network.interfaces entry"}


def parse_version(tag: str) -> tuple[int, int, int] | None:
    """`v1.13.0` / `1.11.5-beta.1` -> (1, 13, 0); None when it is not a version."""
    match = re.match(r"^v?(\d+)\.(\d+)(?:\.(\d+))?", tag.strip())
    if not match:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


# what the patch forms and the simulator were checked against (docs/FIDELITY.md)
SUPPORTED_TALOS = "1.11 (machine.network.interfaces) to 1.13 (Layer2VIPConfig from 1.12)"
# talosctl 1.12.0-1.12.4 keep only the first document of a <= 1.11 node's config, in `get` and in
# `patch`, which then sends the truncated config back (siderolabs/talos#12787, fixed in 1.12.5)
TRUNCATING_CLIENTS = ((1, 12, 0), (1, 12, 4))


def client_problem(client_tag: str | None, node_version: tuple[int, int, int], who: str) -> str | None:
    """Why this talosctl must not patch this node, or None."""
    client = parse_version(client_tag) if client_tag else None
    if client is None:
        return None  # an unknown client tag (a dev build) is not refused on a guess
    low, high = TRUNCATING_CLIENTS
    if low <= client <= high and node_version[:2] <= (1, 11):
        return (f"talosctl {client_tag} would destroy {who}'s configuration: talosctl 1.12.0-1.12.4 read only "
                "the first document of a Talos <= 1.11 machine config and `patch` sends only that back "
                "(siderolabs/talos#12787); use talosctl 1.12.5 or newer")
    if client[:2] < node_version[:2]:
        return (f"talosctl {client_tag} is older than {who}: an older client cannot read or patch the "
                "documents a newer Talos has; install talosctl of at least the nodes' minor version")
    return None


def address_id(interface: str, vip: str) -> str:
    """How `talosctl get addresses` names the VIP on its holder: `<link>/<vip>/32`, or `/128` for IPv6."""
    return f"{interface}/{vip}/{128 if ':' in vip else 32}"


def form_for(version: tuple[int, int, int]) -> str:
    return DOCUMENT if version[:2] >= NEW_FORM_FROM else INTERFACE


def describe(form: str) -> str:
    return _DESCRIBE[form]


@dataclass(frozen=True)
class Want:
    vip: str
    link: str


@dataclass(frozen=True)
class NodePlan:
    form: str
    converged: bool
    summary: str
    fragment: str | None = None  # the whole patch file; None when converged
    diff: str | None = None  # the patch, then the change to the relevant part of the config
    created_entry: bool = False  # interface form: labup adds the entry (rollback deletes it)


def plan(config: MachineConfig, form: str, want: Want, label: str) -> NodePlan:
    """What this node needs. A VIP configured in a way labup must not touch is a PreflightError."""
    found = existing(config, want, label)
    if found is not None:
        return found
    if form == DOCUMENT:
        return _plan_document(want, label)
    return _plan_interface(config, want, label)


def existing(config: MachineConfig, want: Want, label: str) -> NodePlan | None:
    """The converged plan when the config already carries the VIP (in either form: no version needed to
    tell), None when it does not; a VIP on another link is a PreflightError."""
    places = _vip_places(config, want.vip)
    elsewhere = [(f, link) for f, link in places if link != want.link]
    if elsewhere:
        where, link = elsewhere[0]
        raise PreflightError(
            f"{label}: the VIP {want.vip} is already configured on link '{link}' (a {describe(where)}), "
            f"not on vip.interface '{want.link}': labup will not move it",
            hint=f"set vip.interface: {link} in lab.yaml, or remove that VIP from the node's config yourself")
    if places:
        where = places[0][0]
        return NodePlan(where, True, f"{label}: already carries the VIP {want.vip} on {want.link} "
                                     f"(a {describe(where)})")
    return None


def _plan_document(want: Want, label: str) -> NodePlan:
    docs = templates.load("layer2vip.yaml", vip=want.vip, link=want.link)
    fragment = templates.dump(docs)
    change = _diff("", fragment, f"Layer2VIPConfig {want.vip}", label)
    return NodePlan(DOCUMENT, False, f"{label}: add a Layer2VIPConfig document: VIP {want.vip} on {want.link}",
                    fragment, _shown(fragment, change))


def _plan_interface(config: MachineConfig, want: Want, label: str) -> NodePlan:
    entry = _entry(config, want.link)
    if entry is not None and _entry_vip(entry):
        raise PreflightError(
            f"{label}: its machine.network.interfaces entry for {want.link} already has the VIP "
            f"{_entry_vip(entry)}; an entry holds one VIP: labup will not replace it",
            hint=f"set vip.address: {_entry_vip(entry)} in lab.yaml, or remove that VIP yourself")
    if entry is not None and "wireguard" in entry:
        raise PreflightError(f"{label}: {want.link} is a WireGuard interface: a Layer-2 VIP cannot live there",
                             hint="set vip.interface to the node's LAN link")
    if entry is None:
        docs = templates.load("interface-new.yaml", vip=want.vip, link=want.link)
        after = _entries_of(docs[0])[0]
        summary = (f"{label}: add a machine.network.interfaces entry for {want.link} with the VIP "
                   f"{want.vip} and dhcp: true (a new entry turns default DHCP off: the node would lose "
                   "its address)")
    else:
        docs = templates.load("interface-merge.yaml", vip=want.vip, link=want.link)
        after = copy.deepcopy(entry)
        after["vip"] = _entries_of(docs[0])[0]["vip"]  # strategic merge adds the key, keeps the rest
        summary = (f"{label}: add the VIP {want.vip} to its machine.network.interfaces entry for "
                   f"{want.link} (its other keys kept)")
    fragment = templates.dump(docs)
    before = _section(entry) if entry is not None else ""
    change = _diff(before, _section(after), f"machine.network.interfaces[{want.link}]", label)
    return NodePlan(INTERFACE, False, summary, fragment, _shown(fragment, change),
                    created_entry=entry is None)


def rollback(config: MachineConfig, data: dict[str, Any]) -> tuple[str | None, str]:
    """(the patch that removes what labup added, or None when it is gone already; what it does)."""
    vip, link, who = data["vip"], data["link"], data.get("name") or data["node"]
    if data["form"] == DOCUMENT:
        doc = next((d for d in config.documents if d.get("kind") == "Layer2VIPConfig"
                    and _same_ip(d.get("name"), vip)), None)
        if doc is None:
            return None, f"the Layer2VIPConfig for {vip} is already gone from {who}"
        if doc.get("link") != link:
            return None, (f"left the Layer2VIPConfig for {vip} on {who} alone: it is now on link "
                          f"'{doc.get('link')}', not the {link} labup set")
        # the node's own spelling of the name: the delete selector matches it as text
        fragment = templates.dump(templates.load("layer2vip-delete.yaml", vip=doc["name"]))
        return fragment, f"removed the Layer2VIPConfig document for {vip} from {who}"
    entry = _entry(config, link)
    if entry is None or not _same_ip(_entry_vip(entry), vip):
        return None, f"the VIP {vip} is already gone from {who}'s entry for {link}"
    rest = {k: v for k, v in entry.items() if k != "vip"}
    if data.get("created_entry") and rest == {"interface": link, "dhcp": True}:
        fragment = templates.dump(templates.load("interface-delete.yaml", link=link))
        return fragment, f"removed the machine.network.interfaces entry for {link} (with the VIP) from {who}"
    fragment = templates.dump(templates.load("interface-restore.yaml", link=link, entry=rest))
    return fragment, f"removed the VIP {vip} from {who}'s machine.network.interfaces entry for {link}"


# -- reading the config ---------------------------------------------------------------------------

def _same_ip(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return False
    try:
        return ipaddress.ip_address(str(a)) == ipaddress.ip_address(str(b))
    except ValueError:
        return str(a) == str(b)


def _v1alpha1(config: MachineConfig) -> dict[str, Any]:
    return next((d for d in config.documents if not d.get("kind")), {})


def _entries_of(v1: dict[str, Any]) -> list[dict[str, Any]]:
    network = (v1.get("machine") or {}).get("network") or {}
    return [e for e in network.get("interfaces") or [] if isinstance(e, dict)]


def _entry(config: MachineConfig, link: str) -> dict[str, Any] | None:
    return next((e for e in _entries_of(_v1alpha1(config)) if e.get("interface") == link), None)


def _entry_vip(entry: dict[str, Any]) -> str | None:
    vip = entry.get("vip")
    return str(vip["ip"]) if isinstance(vip, dict) and vip.get("ip") else None


def _vip_places(config: MachineConfig, vip: str) -> list[tuple[str, str]]:
    """(form, link) wherever the config asks for this VIP, in either form."""
    places = [(INTERFACE, str(e.get("interface") or "(a deviceSelector entry)"))
              for e in _entries_of(_v1alpha1(config)) if _same_ip(_entry_vip(e), vip)]
    places += [(DOCUMENT, str(d.get("link") or "")) for d in config.documents
               if d.get("kind") == "Layer2VIPConfig" and _same_ip(d.get("name"), vip)]
    return places


# -- showing the change ---------------------------------------------------------------------------

def _section(entry: dict[str, Any]) -> str:
    """One interface entry, in place, with anything secret-looking masked."""
    return templates.dump([{"machine": {"network": {"interfaces": [redact_obj(entry)]}}}])


def _diff(before: str, after: str, what: str, label: str) -> str:
    return "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                        fromfile=f"{label}: {what} (now)",
                                        tofile=f"{label}: {what} (after the patch)"))


def _shown(fragment: str, change: str) -> str:
    patch = "".join(f"  {line}\n" for line in fragment.splitlines())
    return f"patch (the whole file labup sends):\n{patch}change to the node's config:\n{change}"
