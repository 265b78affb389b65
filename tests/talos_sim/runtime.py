"""What a node's network looks like given its config: addresses, DHCP, and the VIP election."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from talos_sim.model import CONTROL_PLANE_TYPES, Lab, Node
from talos_sim.versions import multidoc


@dataclass(frozen=True)
class Address:
    link: str
    cidr: str  # "192.0.2.253/24"
    scope: str  # global | host | link
    origin: str  # dhcp | static | vip | loopback | linklocal

    @property
    def id(self) -> str:
        return f"{self.link}/{self.cidr}"

    @property
    def ip(self) -> str:
        return self.cidr.split("/", 1)[0]


def config_docs(node: Node) -> list[dict[str, Any]]:
    from talos_sim import yamlio  # lazy: `get machinetype` needs no YAML at all

    return [d for d in yamlio.load_docs_cached(node.config) if isinstance(d, dict)]


def _v1alpha1(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return next((d for d in docs if not d.get("kind")), {})


def legacy_entries(node: Node) -> dict[str, dict[str, Any]]:
    """machine.network.interfaces entries by interface name."""
    network = (_v1alpha1(config_docs(node)).get("machine") or {}).get("network") or {}
    entries = {}
    for dev in network.get("interfaces") or []:
        if isinstance(dev, dict) and dev.get("interface"):
            entries[str(dev["interface"])] = dev
    return entries


def vip_claims(node: Node) -> list[tuple[str, str]]:
    """(link, vip) the node's running config asks for, in either form."""
    from talos_sim import validate

    docs = config_docs(node)
    claims = validate.legacy_vips(_v1alpha1(docs))
    if multidoc(node.version):
        claims += validate.layer2_vips(docs)
    return claims


def eligible(lab: Lab, node: Node, link: str) -> bool:
    """The VIP runs only on control-plane nodes, on a link that exists, once etcd is up."""
    return lab.etcd_bootstrapped and node.machinetype in CONTROL_PLANE_TYPES and link in node.link_names()


def recompute(lab: Lab) -> None:
    """One holder per VIP: keep the current one while eligible, else the first eligible node."""
    vips: dict[str, list[Node]] = {}
    for node in lab.nodes:
        for link, vip in vip_claims(node):
            vips.setdefault(vip, [])
            if eligible(lab, node, link) and node not in vips[vip]:
                vips[vip].append(node)
    holders = {}
    for vip, candidates in vips.items():
        addresses = [n.address for n in candidates]
        current = lab.holders.get(vip)
        if current in addresses:
            holders[vip] = current
        elif addresses:
            holders[vip] = addresses[0]
    lab.holders = holders


def _link_local(mac: str) -> str:
    octets = [int(b, 16) for b in mac.split(":")]
    octets[0] ^= 0x02  # EUI-64: flip the universal/local bit, insert ff:fe
    eui = [*octets[:3], 0xFF, 0xFE, *octets[3:]]
    groups = [f"{eui[i] << 8 | eui[i + 1]:x}" for i in range(0, 8, 2)]
    return str(ipaddress.IPv6Address("fe80::" + ":".join(groups))) + "/64"


def addresses(lab: Lab, node: Node, *, show_vips: bool = True) -> list[Address]:
    """The node's AddressStatus resources, in the order Talos lists them (by id)."""
    out = [Address("lo", "127.0.0.1/8", "host", "loopback"), Address("lo", "::1/128", "host", "loopback")]
    entries = legacy_entries(node)
    links = node.link_names()
    for base in node.base_addresses:
        link, cidr = base.split("/", 1)
        entry = entries.get(link)
        # Listing an interface turns default DHCP off on it unless the entry says dhcp: true.
        if entry is None or entry.get("dhcp") is True:
            out.append(Address(link, cidr, "global", "dhcp"))
    for link, entry in entries.items():
        if link not in links:
            continue
        statics = list(entry.get("addresses") or [])
        if entry.get("cidr"):
            statics.append(entry["cidr"])
        out += [Address(link, str(c), "global", "static") for c in statics]
    for item in node.links:
        if item.operational_state == "up":
            out.append(Address(item.name, _link_local(item.mac), "link", "linklocal"))
    if show_vips:
        for vip, holder in lab.holders.items():
            if holder != node.address:
                continue
            link = next(link for link, v in vip_claims(node) if v == vip)
            bits = 128 if ipaddress.ip_address(vip).version == 6 else 32
            out.append(Address(link, f"{vip}/{bits}", "global", "vip"))
    unique = {a.id: a for a in out}
    return sorted(unique.values(), key=lambda a: a.id)


def api_reachable(lab: Lab, node: Node) -> bool:
    """Reachable unless cut off - including by losing the address its API answers on."""
    if not node.reachable:
        return False
    base_ips = {b.split("/")[1] for b in node.base_addresses}
    if node.address not in base_ips or "interfaces" not in node.config:
        return True  # fast path: without interface entries default DHCP is untouched
    return any(a.ip == node.address for a in addresses(lab, node, show_vips=False))
