"""What Talos says about the VIP: each node's links (MACs) and which node carries the VIP address.

`read_vip_facts` reads every node's links and addresses from the run's Talos snapshot (one call per
fact for all nodes), each call bounded by what is left of the check's deadline; vip-holder judges them.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from labup.errors import LabupError

if TYPE_CHECKING:
    from labup.adapters.talos import Address, Link
    from labup.config import Lab, Node
    from labup.engine.shared import RunShared
    from labup.facts.talos import TalosFacts

_NO_MAC = "00:00:00:00:00:00"


class TalosUnavailable(LabupError):
    """Talos cannot be asked at all (talosctl missing): the check says so instead of guessing."""


@dataclass(frozen=True)
class NodeLinks:
    name: str  # the Kubernetes node name from lab.yaml
    address: str  # the Talos API address
    role: str
    macs: dict[str, str] = field(default_factory=dict)  # link name -> MAC (ethernet links only)
    vip_link: str | None = None  # the link carrying the VIP address, when this node holds it
    error: str | None = None  # why this node could not be read
    hint: str | None = None  # what to do about it (a refused certificate names the talosconfig)


@dataclass(frozen=True)
class VipFacts:
    vip: str
    nodes: tuple[NodeLinks, ...]

    @property
    def holders(self) -> list[NodeLinks]:
        return [n for n in self.nodes if n.vip_link is not None]

    @property
    def unreadable(self) -> list[NodeLinks]:
        return [n for n in self.nodes if n.error is not None]

    def mac_owner(self, mac: str) -> tuple[NodeLinks, str] | None:
        """The node and link that have this MAC, if any Talos node does."""
        mac = mac.lower()
        for node in self.nodes:
            for link, node_mac in node.macs.items():
                if node_mac == mac:
                    return node, link
        return None


def links_of(links: list[Link]) -> dict[str, str]:
    """link name -> MAC for ethernet-type links (physical, bond, vlan: whatever may answer ARP)."""
    return {link.name: link.mac for link in links
            if link.type == "ether" and link.mac and link.mac != _NO_MAC}


def vip_link_of(addresses: list[Address], vip: str) -> str | None:
    """The link whose addresses include the VIP (Talos shows `ens18/<vip>/32` on the holder only)."""
    want = ipaddress.ip_address(vip)
    for address in addresses:
        try:
            if ipaddress.ip_address(address.ip) == want:
                return address.link
        except ValueError:
            continue
    return None


def read_vip_facts(lab: Lab, timeout: float, shared: RunShared) -> VipFacts:
    """Every node's links and addresses from the run's Talos snapshot: two talosctl calls for the whole
    lab, none inside `labup apply` when its vip phase has read them since its last write."""
    from labup.adapters.process import find_tool
    from labup.facts.talos import facts

    if find_tool("talosctl") is None:
        raise TalosUnavailable("talosctl is not on PATH: cannot ask Talos which node holds the VIP",
                               hint="install talosctl (the version of your nodes), or --skip vip-holder")
    snapshot = facts(lab, shared)
    deadline = time.monotonic() + timeout
    # both facts at once (each is one call for all nodes), bounded by the check's time
    snapshot.prefetch(("links", "addresses"), timeout=max(timeout, 0.1))
    return VipFacts(lab.vip.address, tuple(_read_node(snapshot, lab, n, deadline) for n in lab.nodes))


def _read_node(snapshot: TalosFacts, lab: Lab, node: Node, deadline: float) -> NodeLinks:
    # one attempt (a check works under a deadline), each call bounded by what is left of it
    try:
        links = snapshot.links(node.address, timeout=max(deadline - time.monotonic(), 0.1))
        addresses = snapshot.addresses(node.address, timeout=max(deadline - time.monotonic(), 0.1))
    except LabupError as exc:
        text = " ".join(line.strip() for line in exc.message.splitlines() if line.strip())
        return NodeLinks(node.name, node.address, node.role, error=text[:300], hint=exc.hint)
    return NodeLinks(node.name, node.address, node.role, links_of(links),
                     vip_link_of(addresses, lab.vip.address))
