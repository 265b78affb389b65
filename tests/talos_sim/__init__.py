"""A faithful-enough `talosctl` for labup's tests: no Talos node, no network, one JSON state file.

Shapes and error texts follow FACTS.md §2 and the Talos v1.13.9 source (cmd/talosctl).
"""

from talos_sim.configgen import SECRET_MARKER
from talos_sim.model import Lab, Link, Node
from talos_sim.store import ENV_VAR, StateFile

__all__ = ["ENV_VAR", "SECRET_MARKER", "Lab", "Link", "Node", "StateFile"]
