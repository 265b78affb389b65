"""Who is who in the simulated lab: one record per machine, shared by every part of the harness.

A Talos node is at once a network namespace (netlab), a Talos node (the talosctl simulator) and a
Kubernetes Node (kubeemu): the same address, MAC and name everywhere, so that what labup reads from
one system (talosctl says cp-1 holds the VIP, with MAC m) is true in the others (ARP for the VIP
answers m; Kubernetes has a node cp-1; Traefik pinned there is served from cp's namespace).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from netlab import Node as NetNode

DOMAIN = "tazlab.example"  # the lab's domain: the test CA signs the stand-in's certificate for it
VIP = "192.0.2.250"
LINK = "ens18"
CLIENT = NetNode("cl", "192.0.2.100", "02:6c:61:62:00:64")  # where labup runs (the operator's laptop)


@dataclass(frozen=True)
class LabNode:
    name: str  # Kubernetes node name = Talos nodename = lab.yaml nodes[].name
    netns: str  # netlab node (short: it names a veth)
    address: str  # 192.0.2.x: Talos API address, InternalIP, the namespace's ens18 address
    role: str  # controlplane | worker

    @property
    def mac(self) -> str:
        """Locally administered, derived from the address: the same in netlab and in `talosctl get links`."""
        return f"02:6c:61:62:00:{int(self.address.rsplit('.', 1)[1]):02x}"

    @property
    def net_node(self) -> NetNode:
        return NetNode(self.netns, self.address, self.mac)


DEFAULT_NODES: tuple[LabNode, ...] = (
    LabNode("cp-1", "cp", "192.0.2.10", "controlplane"),
    LabNode("wk-1", "wk", "192.0.2.11", "worker"),
)
# for failover: two control planes the VIP can move between, and the worker
TWO_CP_NODES: tuple[LabNode, ...] = (
    LabNode("cp-1", "cp", "192.0.2.10", "controlplane"),
    LabNode("cp-2", "cq", "192.0.2.12", "controlplane"),
    LabNode("wk-1", "wk", "192.0.2.11", "worker"),
)

# topology ha: three control planes (etcd quorum; the VIP may go to any) and a worker (cert-manager's)
HA_NODES: tuple[LabNode, ...] = (
    LabNode("cp-1", "cp", "192.0.2.10", "controlplane"),
    LabNode("cp-2", "cq", "192.0.2.12", "controlplane"),
    LabNode("cp-3", "cr", "192.0.2.13", "controlplane"),
    LabNode("wk-1", "wk", "192.0.2.11", "worker"),
)


def net_nodes(nodes: Sequence[LabNode]) -> list[NetNode]:
    return [n.net_node for n in nodes] + [CLIENT]
