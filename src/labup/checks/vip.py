"""vip-arp (does the VIP answer ARP from here?) and vip-holder (which node holds it, per Talos, and
is that the node answering ARP?)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from labup.checks.model import FAIL, PASS, WARN, CheckContext, CheckResult

if TYPE_CHECKING:
    from labup.adapters.net import Neighbour
    from labup.checks.talos_facts import VipFacts

ARP_FACT = "arp"
TALOS_FACT = "talos"


def arp_fact(ctx: CheckContext) -> Neighbour:
    """The VIP's neighbour entry, resolved once per run whichever check asks first."""
    from labup.adapters import net

    return ctx.fact(ARP_FACT, lambda: net.resolve_neighbour(ctx.lab.vip.address, ctx.remaining()))


def talos_fact(ctx: CheckContext) -> VipFacts:
    from labup.checks.talos_facts import read_vip_facts

    return ctx.fact(TALOS_FACT, lambda: read_vip_facts(ctx.lab, ctx.remaining(), ctx.shared))


def no_answer_hint(ctx: CheckContext) -> str:
    lab = ctx.lab
    cp = lab.control_planes[0].address
    return ("likely causes: no node holds the VIP yet (it comes up only once Kubernetes/etcd is "
            "bootstrapped; or the VIP patch is not applied: `labup phase vip`); the wrong interface "
            f"(vip.interface is {lab.vip.interface}: compare `talosctl -n {cp} get links`); or this machine "
            "is not on the same Layer-2 segment as the nodes (ARP does not cross routers)")


ARP_TIMEOUT_HINT = ("no node answered ARP for the VIP in time: it is not up yet (etcd not bootstrapped, VIP "
                    "patch not applied), on the wrong interface, or this machine is on another L2 segment")


# -- vip-arp --------------------------------------------------------------------------------------


METHODS = {
    "arp-request": "own ARP request",
    "neighbour-confirmed": "kernel neighbour entry confirmed during this check",
}


def vip_arp(ctx: CheckContext) -> CheckResult:
    vip = ctx.lab.vip.address
    seen = arp_fact(ctx)
    method = METHODS.get(seen.source, seen.source)
    data: dict[str, Any] = {"vip": vip, "mac": seen.mac, "state": seen.state, "device": seen.device,
                            "method": seen.source, "cached_mac": seen.cached_mac, "others": list(seen.others)}
    if seen.method_note:
        data["method_note"] = seen.method_note
    if seen.mac and seen.others:
        macs = ", ".join((seen.mac, *seen.others))
        return CheckResult("vip-arp", FAIL, f"more than one device answers ARP for VIP {vip}: {macs} ({method})",
                           hint="an address conflict: another device uses the VIP address, or two nodes hold it "
                                "(see vip-holder); pick a free address for vip.address", data=data)
    if seen.mac:
        answer = f"MAC {seen.mac} ({method}, {seen.seconds:.2f}s, via {seen.device})"
        return CheckResult("vip-arp", PASS, f"VIP {vip} answers ARP with {answer}", data=data)
    if seen.gateway:
        data["gateway"] = seen.gateway
        return CheckResult(
            "vip-arp", FAIL,
            f"VIP {vip} is not on this machine's network: it is routed via {seen.gateway} ({seen.device}), "
            "so ARP cannot reach it",
            hint="run labup verify from a machine on the nodes' Layer-2 segment, and check that vip.address "
                 "is a free address in the nodes' own subnet", data=data)
    if seen.error:
        return CheckResult("vip-arp", FAIL, f"cannot send to VIP {vip}: {seen.error}",
                           hint="this machine has no route to the VIP: it must be on the nodes' Layer-2 segment",
                           data=data)
    how = "the kernel marked it FAILED" if seen.state == "FAILED" else f"within {ctx.timeout_s:g}s"
    summary = f"no ARP answer for VIP {vip} {how} ({method})"
    hint = no_answer_hint(ctx)
    if seen.cached_mac:
        summary += (f"; this machine's cache still holds MAC {seen.cached_mac} for it from before the check"
                    + (f" ({seen.state})" if seen.state and seen.state != "FAILED" else "")
                    + ", which proves nothing about now")
        if seen.source == "neighbour-confirmed":
            hint += ("; without root labup can only take an entry the kernel confirms during the check (an "
                     "answer on the VIP's TCP ports 50000/6443/443/80 confirms it): run as root to send "
                     "its own ARP request")
    return CheckResult("vip-arp", FAIL, summary, hint=hint, data=data)


# -- vip-holder -----------------------------------------------------------------------------------


def vip_holder(ctx: CheckContext) -> CheckResult:
    from labup.checks.talos_facts import TalosUnavailable

    _prefetch_arp(ctx)  # ARP runs while talosctl answers, not after
    try:
        facts = talos_fact(ctx)
    except TalosUnavailable as exc:
        return CheckResult("vip-holder", FAIL, exc.message, hint=exc.hint)
    seen = arp_fact(ctx)
    return judge_holder(ctx, facts, seen)


def _prefetch_arp(ctx: CheckContext) -> None:
    import contextlib
    import threading

    def warm() -> None:
        with contextlib.suppress(Exception):  # the checks that read it report the problem
            arp_fact(ctx)

    threading.Thread(target=warm, name="labup-arp-prefetch", daemon=True).start()


def judge_holder(ctx: CheckContext, facts: VipFacts, seen: Neighbour) -> CheckResult:
    """Compare Talos' view (who has the VIP address) with the wire's (whose MAC answers ARP)."""
    lab, vip = ctx.lab, ctx.lab.vip.address
    holders = facts.holders
    owner = facts.mac_owner(seen.mac) if seen.mac else None
    data: dict[str, Any] = {
        "vip": vip, "holder": None, "arp_mac": seen.mac,
        "arp_owner": owner[0].name if owner else None,
        "nodes": {n.name: {"macs": n.macs, "vip_link": n.vip_link, "error": n.error} for n in facts.nodes},
    }
    unread = "; ".join(f"{n.name}: {n.error}" for n in facts.unreadable)
    if len(holders) > 1:
        names = ", ".join(n.name for n in holders)
        return CheckResult("vip-holder", FAIL, f"the VIP {vip} is on more than one node: {names}",
                           hint="only one node may hold it (elected through etcd): check etcd health "
                                f"(`talosctl -n {holders[0].address} etcd status`) and that no node has the "
                                "VIP as a static address", data=data)
    if not holders and len(facts.unreadable) == len(facts.nodes):
        from labup.adapters.talos import is_auth_failure

        refused = [n.hint for n in facts.unreadable if n.error and n.hint and is_auth_failure(n.error)]
        return CheckResult("vip-holder", FAIL, f"cannot ask Talos which node holds the VIP: {unread}",
                           hint=refused[0] if refused else
                           "check talos.talosconfig, talos.context and talos.endpoints (the control-plane "
                           "addresses, port 50000) in lab.yaml; `talosctl -n <node> version` must answer",
                           data=data)
    if not holders:
        summary = f"no node holds the VIP {vip} (talosctl get addresses)"
        if unread:
            summary += f"; could not read {unread}"
        if seen.mac and owner is None:
            summary += f"; yet MAC {seen.mac}, which is no Talos node's, answers ARP for it"
            hint = ("another device on the network uses the VIP address: pick a free address for "
                    "vip.address, or find and reconfigure that device")
        else:
            links = "; ".join(f"{n.name}: {', '.join(n.macs) or '?'}" for n in facts.nodes if n.role == "controlplane")
            hint = ("the VIP comes up only after Kubernetes is bootstrapped (etcd); apply it with `labup phase vip` "
                    f"and check vip.interface ({lab.vip.interface}) is a link of the control planes ({links})")
        return CheckResult("vip-holder", FAIL, summary, hint=hint, data=data)
    holder = holders[0]
    assert holder.vip_link is not None
    holder_mac = holder.macs.get(holder.vip_link)
    data |= {"holder": holder.name, "holder_link": holder.vip_link, "holder_mac": holder_mac}
    if holder.role != "controlplane":
        return CheckResult("vip-holder", FAIL, f"the VIP {vip} is on {holder.name}, a worker in lab.yaml",
                           hint="the VIP belongs on control-plane nodes only: remove it from the worker's "
                                "config and apply it to the control planes (`labup phase vip`)", data=data)
    where = f"{holder.name} holds the VIP on {holder.vip_link}" + (f" ({holder_mac})" if holder_mac else "")
    if not seen.mac:
        return CheckResult("vip-holder", WARN, f"{where}, but it does not answer ARP from here (see vip-arp)",
                           hint=no_answer_hint(ctx), data=data)
    if owner is not None and owner[0].name == holder.name:
        return CheckResult("vip-holder", PASS, f"{where}; ARP from here answers with that node's MAC", data=data)
    if owner is not None:
        other = owner[0]
        return CheckResult(
            "vip-holder", FAIL,
            f"{where}, but ARP from here answers with {other.name}'s MAC {seen.mac}",
            hint=f"either this machine keeps a stale neighbour entry (a failover without gratuitous ARP: "
                 f"`sudo ip neigh flush to {vip}` and verify again) or {other.name} also has the address",
            data=data)
    return CheckResult(
        "vip-holder", FAIL, f"{where}, but MAC {seen.mac}, which is no Talos node's, answers ARP for it",
        hint="another device on the network uses the VIP address (an address conflict): pick a free "
             "address for vip.address, or find and reconfigure that device", data=data)


def holder_from_known(ctx: CheckContext) -> tuple[str | None, str | None]:
    """(node name, MAC) of whatever answers for the VIP, from results and facts already gathered.

    Used by diagnoses (the connection paradox) that should name the node when it is known. Waits for
    vip-holder only if it was selected (it is then running anyway)."""
    result = ctx.result_of("vip-holder")
    if result is not None:
        name = result.data.get("arp_owner") or result.data.get("holder")
        mac = result.data.get("arp_mac") or result.data.get("holder_mac")
        if name or mac:
            return name, mac
    try:
        seen = arp_fact(ctx)
    except Exception:
        return None, None
    facts = ctx.known_fact(TALOS_FACT)
    owner = facts.mac_owner(seen.mac) if facts is not None and seen.mac else None
    return (owner[0].name if owner else None), seen.mac
