"""`labup render vip`: the patch labup would send to each control-plane node, offline.

No node is asked anything, so no node's Talos version is known: the output assumes Talos >= 1.12 (a
Layer2VIPConfig document) and says so, with the <= 1.11 form in comments. The output itself is a
valid patch file: `talosctl -n CP patch machineconfig --patch @vip.yaml --mode no-reboot`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labup.vip import templates
from labup.vip.steps import WORKER_WALL

if TYPE_CHECKING:
    from labup.config import Lab


def render(lab: Lab) -> str:
    vip, link = lab.vip.address, lab.vip.interface
    new = templates.dump(templates.load("layer2vip.yaml", vip=vip, link=link))
    legacy = templates.dump(templates.load("interface-new.yaml", vip=vip, link=link))
    lines = [
        f"# labup render vip: the Talos patch for lab '{lab.name}': VIP {vip} on link {link}.",
        "# Rendered offline: no node was asked its Talos version, so this assumes Talos >= 1.12",
        "# (a Layer2VIPConfig document). labup reads each node's version before patching; a node on",
        "# Talos <= 1.11 gets the machine.network.interfaces form instead (at the end, commented out).",
        "#",
        "# Sent to each control-plane node (talosctl patch machineconfig --mode no-reboot):",
        *[f"#   {n.name} ({n.address})" for n in lab.control_planes],
    ]
    if lab.workers:
        lines += [f"# Workers get no VIP patch: Talos refuses it there (\"{WORKER_WALL}\"):",
                  *[f"#   {n.name} ({n.address})" for n in lab.workers]]
    else:
        lines.append("# (no workers in this lab: a worker would get no VIP patch)")
    lines += new.rstrip("\n").splitlines()
    lines += [
        "#",
        f"# Talos <= 1.11 instead: a new entry for {link}, keeping DHCP on (listing an interface turns",
        f"# default DHCP off). A node that already lists {link} gets only `interface` and `vip`, merged",
        "# into its entry, its other keys kept.",
        *[f"# {line}" for line in legacy.rstrip("\n").splitlines()],
    ]
    return "\n".join(lines) + "\n"
