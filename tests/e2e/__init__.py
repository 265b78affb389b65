"""The simulated lab for end-to-end tests: real namespaces, the talosctl simulator, kubeemu as a
Talos-like cluster, real helm and the stand-in chart, kept in agreement by two mirrors (simlab.py)."""

from .counters import Counts
from .simlab import STANDIN_CHART, LabupRun, SimLab
from .topology import CLIENT, DEFAULT_NODES, DOMAIN, HA_NODES, TWO_CP_NODES, VIP, LabNode

__all__ = ["CLIENT", "DEFAULT_NODES", "DOMAIN", "HA_NODES", "STANDIN_CHART", "TWO_CP_NODES", "VIP", "Counts", "LabNode",
           "LabupRun", "SimLab"]
