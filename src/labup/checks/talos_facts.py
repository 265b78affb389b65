"""What Talos says about the VIP: each node's links (MACs) and which node carries the VIP address.

A small interface (`VipFacts`, `read_vip_facts`) so vip-holder does not care where the facts come
from: today `talosctl get links/addresses -o json` through the process adapter; later the shared
Talos adapter can provide the same `VipFacts` (swap `read_vip_facts`, keep the judging code).
"""

from __future__ import annotations

import ipaddress
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from labup.errors import LabupError

if TYPE_CHECKING:
    from labup.config import Lab, Node

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


def parse_stream(text: str) -> Iterator[dict[str, Any]]:
    """talosctl -o json prints concatenated JSON objects (not an array): decode them one by one."""
    decoder = json.JSONDecoder()
    pos, end = 0, len(text)
    while True:
        while pos < end and text[pos].isspace():
            pos += 1
        if pos >= end:
            return
        obj, pos = decoder.raw_decode(text, pos)
        if isinstance(obj, dict):
            yield obj


def links_of(resources: list[dict[str, Any]]) -> dict[str, str]:
    """link name -> MAC for ethernet-type links (physical, bond, vlan: whatever may answer ARP)."""
    macs = {}
    for res in resources:
        spec, meta = res.get("spec") or {}, res.get("metadata") or {}
        mac = str(spec.get("hardwareAddr") or "").lower()
        if spec.get("type") == "ether" and mac and mac != _NO_MAC:
            macs[str(meta.get("id"))] = mac
    return macs


def vip_link_of(resources: list[dict[str, Any]], vip: str) -> str | None:
    """The link whose addresses include the VIP (Talos shows `ens18/<vip>/32` on the holder only)."""
    want = ipaddress.ip_address(vip)
    for res in resources:
        spec = res.get("spec") or {}
        address = str(spec.get("address") or "")
        try:
            if ipaddress.ip_interface(address).ip == want:
                return str(spec.get("linkName") or str((res.get("metadata") or {}).get("id", "")).split("/")[0])
        except ValueError:
            continue
    return None


def talosctl_args(lab: Lab, node_address: str) -> list[str]:
    """Global flags for one node. Endpoints default to the control planes: never the VIP (FACTS §2)."""
    args: list[str] = []
    if lab.talos.talosconfig:
        args += ["--talosconfig", str(lab.talos.talosconfig)]
    if lab.talos.context:
        args += ["--context", lab.talos.context]
    endpoints = lab.talos.endpoints or tuple(n.address for n in lab.control_planes)
    return [*args, "-e", ",".join(endpoints), "-n", node_address]


def read_vip_facts(lab: Lab, timeout: float) -> VipFacts:
    """Ask every node of the lab, concurrently, for its links and addresses (2 talosctl calls each)."""
    from labup.adapters.process import find_tool

    talosctl = find_tool("talosctl")
    if talosctl is None:
        raise TalosUnavailable("talosctl is not on PATH: cannot ask Talos which node holds the VIP",
                               hint="install talosctl (the version of your nodes), or --skip vip-holder")
    out: dict[str, NodeLinks] = {}
    threads = [threading.Thread(target=lambda n=node: out.__setitem__(n.name, _read_node(
        str(talosctl), lab, n, timeout)), daemon=True) for node in lab.nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout + 0.2)
    nodes = tuple(out.get(n.name) or NodeLinks(n.name, n.address, n.role, error="no answer in time")
                  for n in lab.nodes)
    return VipFacts(lab.vip.address, nodes)


def _read_node(talosctl: str, lab: Lab, node: Node, timeout: float) -> NodeLinks:
    from labup.adapters.process import run_tool

    base = talosctl_args(lab, node.address)
    deadline = time.monotonic() + timeout

    def get(kind: str) -> list[dict[str, Any]]:
        left = max(deadline - time.monotonic(), 0.1)
        return list(parse_stream(run_tool(talosctl, [*base, "get", kind, "-o", "json"], timeout=left).stdout))

    try:
        links, addresses = get("links"), get("addresses")
    except LabupError as exc:
        text = " ".join(line.strip() for line in exc.message.splitlines() if line.strip())
        return NodeLinks(node.name, node.address, node.role, error=text[:300])
    except ValueError as exc:  # not the JSON stream we expect: say so rather than guess
        return NodeLinks(node.name, node.address, node.role, error=f"unexpected talosctl output: {exc}")
    return NodeLinks(node.name, node.address, node.role, links_of(links),
                     vip_link_of(addresses, lab.vip.address))
