"""What the VIP steps read from Talos, once per node per run.

A node's role, version and links do not change while labup runs, so they are read once (failures
too: an unreachable node is retried once, with the lab's policy, not again by every step). The
machine config and the addresses are never cached: they are what a step converges or waits on.

Every read that fails, after its retries, becomes `Unreadable` with talosctl's own text: a dry run
shows `unknown` with that reason and goes on; an apply stops in pre-flight, before any write.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from labup.adapters.talos import Address, Link, MachineConfig, TalosAdapter, TalosAuthFailed
from labup.errors import LabupError, Unreadable

if TYPE_CHECKING:
    from labup.config import Lab, Node
    from labup.engine.context import Context

T = TypeVar("T")


def talos(ctx: Context) -> TalosAdapter:
    return ctx.adapter("talos", TalosAdapter.from_context)  # type: ignore[no-any-return]


def label(node: Node, version: str | None = None) -> str:
    return f"{node.name} ({node.address}" + (f", Talos {version})" if version else ")")


class Survey:
    """Shared by the steps of one vip phase build. No I/O until a step asks."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self._memo: dict[tuple[str, str], Any] = {}
        self.configured: set[str] = set()  # addresses whose config carries the VIP (seen or patched)

    # -- memoized facts ---------------------------------------------------------------------------

    def machinetype(self, ctx: Context, node: Node) -> str:
        return self._once(ctx, node, "machinetype", lambda t: t.machinetype(node.address))

    def version(self, ctx: Context, node: Node) -> str:
        return self._once(ctx, node, "version", lambda t: t.version(node.address))

    def links(self, ctx: Context, node: Node) -> list[Link]:
        return self._once(ctx, node, "links", lambda t: t.links(node.address))

    def nodename(self, ctx: Context, node: Node) -> str:
        return self._once(ctx, node, "nodename", lambda t: t.nodename(node.address))

    # -- live reads -------------------------------------------------------------------------------

    def machineconfig(self, ctx: Context, node: Node) -> MachineConfig:
        return self._read(ctx, node, "get machineconfig", lambda t: t.machineconfig(node.address))

    def addresses(self, ctx: Context, node: Node) -> list[Address]:
        return self._read(ctx, node, "get addresses", lambda t: t.addresses(node.address))

    # -- plumbing ---------------------------------------------------------------------------------

    def _once(self, ctx: Context, node: Node, what: str, fn: Callable[[TalosAdapter], T]) -> T:
        key = (node.address, what)
        if key not in self._memo:
            try:
                self._memo[key] = self._read(ctx, node, what, fn)
            except Unreadable as exc:
                self._memo[key] = exc
        found = self._memo[key]
        if isinstance(found, Unreadable):
            raise found
        return found  # type: ignore[no-any-return]

    def _read(self, ctx: Context, node: Node, what: str, fn: Callable[[TalosAdapter], T]) -> T:
        adapter = talos(ctx)
        try:
            return ctx.retry(lambda: fn(adapter), f"vip/{node.name}: {what}")  # type: ignore[no-any-return]
        except (Unreadable, TalosAuthFailed):
            raise  # refused certificates or role: a real problem, even for a dry run
        except LabupError as exc:
            # the engine must not retry it again: it was retried above, and it is only a read
            raise Unreadable(f"cannot read {label(node)}: {exc.message}", hint=exc.hint) from None
