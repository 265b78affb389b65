"""The last step: wait until one control-plane node holds the VIP, and say which.

Talos elects one holder among the nodes configured with the VIP, through etcd; it shows the VIP in
`get addresses` as `<link>/<vip>/32` on that node only. observe() is "held by X" (converged) and
sets ctx.facts["vip_holder"] for the traefik phase, which pins Traefik there (wall 5); apply() waits,
bounded by vip.wait_timeout_s, and when the VIP never comes says what usually keeps it down.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from labup.adapters.talos import Address
from labup.engine.model import Observation, Step
from labup.errors import LabupError, PermanentError, Unreadable
from labup.vip import forms
from labup.vip.survey import Survey, label

if TYPE_CHECKING:
    from labup.config import Lab, Node
    from labup.engine.context import Context


@dataclass
class Look:
    """One round of `get addresses` over the control-plane nodes."""

    holders: list[tuple[Node, str]] = field(default_factory=list)  # (node, link carrying the VIP)
    addresses: dict[str, list[Address]] = field(default_factory=dict)  # by node name
    errors: dict[str, LabupError] = field(default_factory=dict)  # by node name


class HolderStep(Step):
    long_running = True

    def __init__(self, lab: Lab, survey: Survey, name: str = "holder") -> None:
        self.name = name
        self.lab = lab
        self.survey = survey
        self.vip = lab.vip.address

    def offline_plan(self, ctx: Context) -> str | None:
        return (f"wait up to {self.lab.vip.wait_timeout_s:g}s until one of "
                f"{', '.join(n.name for n in self.lab.control_planes)} shows "
                f"{forms.address_id(self.lab.vip.interface, self.vip)} in `talosctl get addresses`")

    def observe(self, ctx: Context) -> Observation:
        seen = self._look(lambda n: self.survey.addresses(ctx, n))
        if not seen.holders:
            if len(seen.errors) == len(self.lab.control_planes):
                first = next(iter(seen.errors.values()))
                raise first if isinstance(first, Unreadable) else Unreadable(first.message, first.hint)
            return Observation(False, f"no control-plane node holds the VIP {self.vip} yet: wait up to "
                                      f"{self.lab.vip.wait_timeout_s:g}s for one to announce it")
        node, link = seen.holders[0]
        name = self._kubernetes_name(ctx, node)
        ctx.facts["vip_holder"] = {"name": name, "address": node.address}
        summary = f"the VIP {self.vip} is held by {name} ({node.address}) on {link}"
        if len(seen.holders) > 1:
            others = ", ".join(n.name for n, _ in seen.holders[1:])
            summary += f"; also announced by {others} (a failover in progress?)"
        return Observation(True, summary)

    def apply(self, ctx: Context, seen: Observation) -> dict[str, Any] | None:
        timeout = self.lab.vip.wait_timeout_s
        deadline = time.monotonic() + timeout
        interval = min(2.0, max(0.2, timeout / 30))
        started = time.monotonic()
        while True:
            # one talosctl call and one attempt per round: an unreachable node must not eat the whole wait
            self.survey.forget_addresses(ctx)
            last = self._look(lambda n: self.survey.addresses(ctx, n, retry=False))
            if last.holders:
                node, link = last.holders[0]
                # the runner reports the step with the summary read before the wait: say who holds it
                ctx.reporter.note(f"the VIP {self.vip} came up on {node.name} ({node.address}) on {link} "
                                  f"after {time.monotonic() - started:.1f}s")
                return None  # nothing to undo: waiting changed nothing
            if time.monotonic() + interval > deadline:
                vip_id = forms.address_id(self.lab.vip.interface, self.vip)
                raise PermanentError(f"no control-plane node announced the VIP {self.vip} within {timeout:g}s "
                                     f"(no `{vip_id}` in `talosctl get addresses` "
                                     f"on {', '.join(n.name for n in self.lab.control_planes)})",
                                     hint=self._why_not(last))
            time.sleep(interval)

    # -- helpers ----------------------------------------------------------------------------------

    def _look(self, read: Callable[[Node], list[Address]]) -> Look:
        seen = Look()
        want = ipaddress.ip_address(self.vip)
        for node in self.lab.control_planes:
            try:
                addresses = read(node)
            except LabupError as exc:
                seen.errors[node.name] = exc
                continue
            seen.addresses[node.name] = addresses
            for addr in addresses:
                try:
                    if ipaddress.ip_address(addr.ip) == want:
                        seen.holders.append((node, addr.link))
                        break
                except ValueError:
                    continue
        return seen

    def _kubernetes_name(self, ctx: Context, node: Node) -> str:
        """Talos' nodename is the name Kubernetes knows (what Traefik is pinned by)."""
        try:
            name = self.survey.nodename(ctx, node)
        except Unreadable as exc:
            ctx.reporter.note(f"cannot read the node name of {label(node)} ({exc.message}): using lab.yaml's")
            return node.name
        if name != node.name:
            where = f"nodes[{self.lab.nodes.index(node)}].name"
            ctx.reporter.note(f"Talos calls {node.address} '{name}', lab.yaml calls it '{node.name}': using "
                              f"'{name}' (the Kubernetes node name); set {where}: {name}")
        return name

    def _why_not(self, last: Look) -> str:
        first_cp = self.lab.control_planes[0].address
        reasons = [
            "etcd not bootstrapped: Talos elects the VIP holder through etcd, so the VIP comes up only once "
            f"Kubernetes is bootstrapped (a new cluster: `talosctl -n {first_cp} bootstrap`, once; check "
            f"`talosctl -n {first_cp} service etcd`)",
        ]
        link = self.lab.vip.interface
        for node in self.lab.control_planes:
            subnets = [a for a in last.addresses.get(node.name, []) if a.link == link and _is_lan(a)]
            if node.name in last.addresses and not subnets:
                reasons.append(f"the wrong link: {link} has no address on {node.name}: is it the LAN link? "
                               f"(`talosctl -n {node.address} get links`)")
            elif subnets and not any(_contains(a, self.vip) for a in subnets):
                nets = ", ".join(a.cidr for a in subnets)
                reasons.append(f"the wrong link or address: the VIP {self.vip} is not in the subnet of {link} "
                               f"on {node.name} ({nets}); a Layer-2 VIP must be")
        unconfigured = [n.name for n in self.lab.control_planes if n.address not in self.survey.configured]
        if unconfigured:
            reasons.append(f"not configured on {', '.join(unconfigured)}")
        for name, exc in last.errors.items():
            reasons.append(f"{name} did not answer: {exc.message}")
        return "likely causes: " + "; ".join(reasons)


def _is_lan(addr: Address) -> bool:
    try:
        iface = ipaddress.ip_interface(addr.cidr)
    except ValueError:
        return False
    return not iface.ip.is_link_local and not iface.ip.is_loopback and iface.network.prefixlen < iface.max_prefixlen


def _contains(addr: Address, vip: str) -> bool:
    try:
        return ipaddress.ip_address(vip) in ipaddress.ip_interface(addr.cidr).network
    except ValueError:
        return False
