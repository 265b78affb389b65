"""A test harness of real network namespaces: a Layer-2 lab for labup's verify checks."""

from .certs import CertSet, Issued, make_ca, make_cert_set, make_leaf
from .lab import DEFAULT_NODES, DEFAULT_VIP, NAME_PREFIX, NetLab, NetLabError, Node, arp_resolve, list_netns

__all__ = [
    "DEFAULT_NODES",
    "DEFAULT_VIP",
    "NAME_PREFIX",
    "CertSet",
    "Issued",
    "NetLab",
    "NetLabError",
    "Node",
    "arp_resolve",
    "list_netns",
    "make_ca",
    "make_cert_set",
    "make_leaf",
]
