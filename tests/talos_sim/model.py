"""The simulated lab: nodes, links, addresses and machine configs, as plain data.

Everything here round-trips through JSON (the state file shared by the test process and the
`talosctl` subprocesses), so it holds only str/int/bool/list/dict values.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Any

from talos_sim.versions import CLIENT_VERSION

CONTROL_PLANE_TYPES = ("controlplane", "init")
MACHINE_TYPES = ("controlplane", "init", "worker", "unknown")


@dataclass
class Link:
    name: str
    mac: str
    type: str = "ether"
    kind: str = ""
    operational_state: str = "up"


@dataclass
class Node:
    address: str  # the Talos API address used with `talosctl -n`; also the state key
    nodename: str
    machinetype: str = "controlplane"
    version: str = "v1.13.0"
    links: list[Link] = field(default_factory=list)
    # Addresses the node got from default DHCP, as `get addresses` ids: `ens18/192.0.2.253/24`.
    base_addresses: list[str] = field(default_factory=list)
    config: str = ""  # the running machine config, raw (multi-)document YAML
    staged_config: str | None = None  # `--mode staged` lands here, not in the running config
    reachable: bool = True
    # Error messages the next calls to this node fail with, one per talosctl invocation.
    faults: list[str] = field(default_factory=list)
    reboots: int = 0
    config_version: int = 1  # resource version of MachineConfigs/v1alpha1

    def link_names(self) -> list[str]:
        return [link.name for link in self.links]


@dataclass
class Lab:
    nodes: list[Node] = field(default_factory=list)
    cluster_name: str = "tazlab"
    client_version: str = CLIENT_VERSION
    # The VIP runs only after Kubernetes (etcd) is bootstrapped (FACTS.md §2, VIP runtime).
    etcd_bootstrapped: bool = True
    # VIP address -> API address of the node holding it; maintained by runtime.recompute().
    holders: dict[str, str] = field(default_factory=dict)
    # Hide every VIP from the next N `get addresses` calls (the VIP "takes a while" to come up).
    vip_delay: int = 0
    # Certificates refused between talosctl and the endpoint (errors.TLS_FAILURES key), or None.
    tls_failure: str | None = None
    # The talosconfig's role: os:reader may not read or patch the machine config (sensitive).
    role: str = "os:admin"
    # Nodes used when a call has no -n (as if the talosconfig context listed them).
    default_nodes: list[str] = field(default_factory=list)
    # The nodes' disks on the host (talos_sim.nodefs): node A's /x/y is <files_dir>/A/x/y. None: no
    # node has any file (`talosctl read` answers NotFound).
    files_dir: str | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)

    # -- builders ---------------------------------------------------------------------------

    @classmethod
    def single_cp_worker(
        cls,
        version: str = "v1.13.0",
        *,
        cp_address: str = "192.0.2.253",
        worker_address: str = "192.0.2.127",
        link: str = "ens18",
    ) -> Lab:
        """The example lab: control plane talos-unw-ifc and one worker, both on `link`."""
        lab = cls()
        lab.add_node(cp_address, "talos-unw-ifc", "controlplane", version, link=link)
        lab.add_node(worker_address, "talos-worker-1", "worker", version, link=link)
        return lab

    @classmethod
    def three_cp(
        cls,
        version: str = "v1.13.0",
        *,
        addresses: tuple[str, ...] = ("192.0.2.11", "192.0.2.12", "192.0.2.13"),
        link: str = "ens18",
        with_worker: bool = False,
    ) -> Lab:
        """Three control-plane nodes (talos-cp-1..3), optionally plus talos-worker-1 at .127."""
        lab = cls()
        for i, addr in enumerate(addresses, start=1):
            lab.add_node(addr, f"talos-cp-{i}", "controlplane", version, link=link)
        if with_worker:
            lab.add_node("192.0.2.127", "talos-worker-1", "worker", version, link=link)
        return lab

    def add_node(
        self,
        address: str,
        nodename: str,
        machinetype: str = "controlplane",
        version: str = "v1.13.0",
        *,
        link: str = "ens18",
        prefix: int = 24,
    ) -> Node:
        if machinetype not in MACHINE_TYPES:
            raise ValueError(f"machinetype must be one of {MACHINE_TYPES}")
        from talos_sim import configgen, yamlio  # lazy: most talosctl calls never build a lab

        index = len(self.nodes) + 1
        node = Node(
            address=address,
            nodename=nodename,
            machinetype=machinetype,
            version=version,
            links=[Link(name=link, mac=f"bc:24:11:00:00:{index:02x}")],
            base_addresses=[f"{link}/{address}/{prefix}"],
        )
        node.config = yamlio.dump_docs(
            configgen.generate(
                version=version,
                machinetype=machinetype,
                nodename=nodename,
                cluster_name=self.cluster_name,
                endpoint=self._endpoint(address, machinetype),
            )
        )
        self.nodes.append(node)
        return node

    def _endpoint(self, address: str, machinetype: str) -> str:
        cps = [n.address for n in self.nodes if n.machinetype in CONTROL_PLANE_TYPES]
        first = cps[0] if cps else address
        return f"https://{first}:6443"

    # -- lookups ----------------------------------------------------------------------------

    def node(self, address: str) -> Node:
        for node in self.nodes:
            if node.address == address:
                return node
        raise KeyError(f"no node {address!r} in the simulated lab")

    def find(self, address: str) -> Node | None:
        return next((n for n in self.nodes if n.address == address), None)

    # -- (de)serialisation ------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Lab:
        data = copy.deepcopy(data)
        nodes = []
        for raw in data.pop("nodes", []):
            links = [Link(**link) for link in raw.pop("links", [])]
            nodes.append(Node(links=links, **raw))
        return cls(nodes=nodes, **data)
