"""COSI resources as `talosctl get` returns them: metadata + spec, per resource type."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from talos_sim import runtime
from talos_sim.errors import TalosError, rpc
from talos_sim.model import Lab, Node
from talos_sim.versions import parse_version

_EPOCH = 1735722000  # 2025-01-01T09:00:00Z; `updated` moves one second per resource version


@dataclass(frozen=True)
class ResourceType:
    type: str
    namespace: str
    owner: str
    aliases: tuple[str, ...]
    items: Callable[[Lab, Node], list[tuple[str, int, Any]]]  # (id, version, spec)


def _machinetype(lab: Lab, node: Node) -> list[tuple[str, int, Any]]:
    return [("machine-type", 1, node.machinetype)]


def _nodename(lab: Lab, node: Node) -> list[tuple[str, int, Any]]:
    spec = {"nodename": node.nodename, "hostnameVersion": "2", "skipNodeRegistration": False}
    return [("nodename", 2, spec)]


def truncates(client_version: str, node_version: str) -> bool:
    """talosctl 1.12.0-1.12.4 on a <= 1.11 node: `yaml.Marshal(mc.Spec())` keeps only the first
    document (siderolabs/talos#12787, fixed in 1.12.5 by "read multi-doc machine config")."""
    return (1, 12, 0) <= parse_version(client_version) <= (1, 12, 4) and parse_version(node_version) < (1, 12, 0)


def _machineconfig(lab: Lab, node: Node) -> list[tuple[str, int, Any]]:
    config = node.config
    if truncates(lab.client_version, node.version):
        config = config.split("\n---\n", 1)[0] + "\n"
    return [("v1alpha1", node.config_version, config)]


def _links(lab: Lab, node: Node) -> list[tuple[str, int, Any]]:
    out: list[tuple[str, int, Any]] = [("lo", 2, _link_spec(1, "loopback", "00:00:00:00:00:00", "unknown", ""))]
    for index, link in enumerate(node.links, start=2):
        spec = _link_spec(index, link.type, link.mac, link.operational_state, link.kind)
        out.append((link.name, 3, spec))
    return sorted(out, key=lambda item: item[0])


def _link_spec(index: int, typ: str, mac: str, state: str, kind: str) -> dict[str, Any]:
    loopback = typ == "loopback"
    return {
        "index": index,
        "type": typ,
        "linkIndex": 0,
        "flags": "UP,LOOPBACK,RUNNING,LOWER_UP" if loopback else "UP,BROADCAST,RUNNING,MULTICAST,LOWER_UP",
        "hardwareAddr": mac,
        "permanentAddr": mac,
        "broadcastAddr": "00:00:00:00:00:00" if loopback else "ff:ff:ff:ff:ff:ff",
        "mtu": 65536 if loopback else 1500,
        "queueDisc": "noqueue" if loopback else "pfifo_fast",
        "operationalState": state,
        "kind": kind,
        "slaveKind": "",
        **({} if loopback else {"busPath": f"virtio{index}", "driver": "virtio_net"}),
        "linkState": state == "up",
        "port": "Other",
        "duplex": "Unknown",
    }


def _addresses(lab: Lab, node: Node) -> list[tuple[str, int, Any]]:
    # The VIP "takes a while": hidden from the first lab.vip_delay listings (the CLI counts down).
    show_vips = lab.vip_delay <= 0
    link_index = {"lo": 1} | {link.name: i for i, link in enumerate(node.links, start=2)}
    out = []
    for addr in runtime.addresses(lab, node, show_vips=show_vips):
        iface = ipaddress.ip_interface(addr.cidr)
        spec: dict[str, Any] = {"address": addr.cidr}
        if iface.version == 4:
            spec["local"] = addr.ip
            if iface.network.prefixlen < 31:
                spec["broadcast"] = str(iface.network.broadcast_address)
        spec |= {
            "linkIndex": link_index.get(addr.link, 0),
            "linkName": addr.link,
            "family": "inet4" if iface.version == 4 else "inet6",
            "scope": addr.scope,
            "flags": "permanent",
            "priority": 0 if addr.origin == "loopback" else 1024,
        }
        out.append((addr.id, 1, spec))
    return out


def _version(lab: Lab, node: Node) -> list[tuple[str, int, Any]]:
    """Versions.runtime.talos.dev (Talos >= 1.10, runtime.VersionController): spec.version is the Tag."""
    if parse_version(node.version) < (1, 10, 0):
        return []
    return [("version", 1, {"name": "Talos", "version": node.version})]


TYPES: tuple[ResourceType, ...] = (
    ResourceType(
        "MachineTypes.config.talos.dev", "config", "config.MachineTypeController",
        ("machinetype", "machinetypes"), _machinetype,
    ),
    ResourceType(
        "Nodenames.kubernetes.talos.dev", "k8s", "k8s.NodenameController", ("nodename", "nodenames"), _nodename
    ),
    ResourceType(
        "MachineConfigs.config.talos.dev", "config", "",
        ("machineconfig", "machineconfigs", "mc"), _machineconfig,
    ),
    ResourceType(
        "LinkStatuses.net.talos.dev", "network", "network.LinkStatusController",
        ("link", "links", "linkstatus", "linkstatuses"), _links,
    ),
    ResourceType(
        "Versions.runtime.talos.dev", "runtime", "runtime.VersionController",
        ("version", "versions", "versions.runtime"), _version,
    ),
    ResourceType(
        "AddressStatuses.net.talos.dev", "network", "network.AddressStatusController",
        ("address", "addresses", "addressstatus", "addressstatuses"), _addresses,
    ),
)  # fmt: skip


def resolve(name: str) -> ResourceType:
    """ResolveResourceKind: aliases, or the full type name, case-insensitive."""
    wanted = name.lower()
    for rt in TYPES:
        if wanted == rt.type.lower() or wanted in rt.aliases:
            return rt
    raise TalosError(rpc("NotFound", f'resource "{name}" is not registered'))


def metadata(rt: ResourceType, rid: str, version: int) -> dict[str, Any]:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(_EPOCH + version))
    return {
        "namespace": rt.namespace,
        "type": rt.type,
        "id": rid,
        "version": version,
        "owner": rt.owner,
        "phase": "running",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(_EPOCH)),
        "updated": stamp,
    }


def get(lab: Lab, node: Node, rt: ResourceType, rid: str | None) -> list[dict[str, Any]]:
    """The node's resources of one type ({metadata, spec}), or the one with id `rid`."""
    items = rt.items(lab, node)
    if rid is not None:
        items = [item for item in items if item[0] == rid]
        if not items:
            ref = f"{rt.type}({rt.namespace}/{rid}@undefined)"
            raise TalosError(rpc("NotFound", f"resource {ref} doesn't exist"))
    return [{"metadata": metadata(rt, i, v), "spec": spec} for i, v, spec in items]
