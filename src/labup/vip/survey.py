"""What the VIP steps read from Talos: the run's snapshot (labup.facts.talos), each fact read once for
all nodes (failures too: an unreachable node is retried once, with the lab's policy, not again by every
step). A patch drops what it changed; the holder's wait asks for fresh addresses each round.

Every read that fails, after its retries, becomes `Unreadable` with talosctl's own text: a dry run
shows `unknown` with that reason and goes on; an apply stops in pre-flight, before any write.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from labup.adapters.talos import Address, Link, MachineConfig, TalosAdapter, TalosAuthFailed
from labup.errors import LabupError, Unreadable
from labup.facts.talos import TalosFacts, facts

if TYPE_CHECKING:
    from labup.config import Lab, Node
    from labup.engine.context import Context

T = TypeVar("T")


def talos(ctx: Context) -> TalosAdapter:
    return ctx.adapter("talos", TalosAdapter.from_context)  # type: ignore[no-any-return]


def label(node: Node, version: str | None = None) -> str:
    return f"{node.name} ({node.address}" + (f", Talos {version})" if version else ")")


class Survey:
    """The vip phase's view of the run's Talos facts (labup.facts.talos): every read goes through the
    lab's retry policy once, and a failure becomes `Unreadable` naming the node."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.configured: set[str] = set()  # addresses whose config carries the VIP (seen or patched)

    def machinetype(self, ctx: Context, node: Node) -> str:
        return self._read(ctx, node, "machine type", lambda f, how: f.machinetype(node.address, **how))

    def version(self, ctx: Context, node: Node) -> str:
        return self._read(ctx, node, "version", lambda f, how: f.version(node.address, **how))

    def links(self, ctx: Context, node: Node) -> list[Link]:
        return self._read(ctx, node, "links", lambda f, how: f.links(node.address, **how))

    def nodename(self, ctx: Context, node: Node) -> str:
        return self._read(ctx, node, "node name", lambda f, how: f.nodename(node.address, **how))

    def machineconfig(self, ctx: Context, node: Node) -> MachineConfig:
        return self._read(ctx, node, "machine config", lambda f, how: f.machineconfig(node.address, **how))

    def addresses(self, ctx: Context, node: Node, *, retry: bool = True) -> list[Address]:
        """retry=False: one attempt (a round of the holder's wait: a dead node must not eat the wait)."""
        return self._read(ctx, node, "addresses", lambda f, how: f.addresses(node.address, **how), retry=retry)

    def prefetch(self, ctx: Context) -> None:
        """What the phase will read of every node, at once (one talosctl call each, concurrently)."""
        snapshot(ctx).prefetch(("machineconfig", "links", "addresses", "nodename"), retry=ctx.retry)

    def forget_addresses(self, ctx: Context) -> None:
        """The next addresses read asks Talos again (each round of the holder's wait)."""
        snapshot(ctx).drop("addresses")

    def patched(self, ctx: Context, node: Node) -> None:
        """A patch changed this node's config, and maybe where the VIP lives."""
        self.configured.add(node.address)
        snapshot(ctx).drop("machineconfig", node.address)
        snapshot(ctx).drop("addresses")

    def _read(self, ctx: Context, node: Node, what: str, fn: Callable[[TalosFacts, dict[str, Any]], T],
              retry: bool = True) -> T:
        how = {"retry": ctx.retry} if retry else {}
        try:
            return fn(snapshot(ctx), how)
        except (Unreadable, TalosAuthFailed):
            raise  # refused certificates or role: a real problem, even for a dry run
        except LabupError as exc:
            # the engine must not retry it again: it was retried above, and it is only a read
            raise Unreadable(f"cannot read {label(node)} ({what}): {exc.message}", hint=exc.hint) from None


def snapshot(ctx: Context) -> TalosFacts:
    return facts(ctx.lab, ctx.shared)
