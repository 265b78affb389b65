"""`talosctl` entry point: parse argv, run one command against the shared state, log the call."""

from __future__ import annotations

import sys

from talos_sim import argv as argparse_
from talos_sim.commands import COMMANDS, Context
from talos_sim.errors import TalosError
from talos_sim.store import StateFile


def main(args: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if args is None else args)
    store = StateFile.from_env()
    with store.edit() as lab:
        call: dict[str, object] = {"argv": args, "verb": None, "nodes": [], "rc": None}
        lab.calls.append(call)  # logged before parsing: even a bad call is a call
        ctx = Context(lab=lab, inv=argparse_.Invocation(command="?"), call=call)
        rc = _run(ctx, args)
        call["rc"] = rc
    # Written after the state is saved and the lock released.
    sys.stdout.write("".join(ctx.out))
    if ctx.raw:
        sys.stdout.flush()
        sys.stdout.buffer.write(ctx.raw)  # bytes as they are: no decoding, no newline added
    sys.stderr.write("".join(ctx.err))
    return rc


def _run(ctx: Context, args: list[str]) -> int:
    try:
        inv = argparse_.parse(args)
        ctx.inv = inv
        ctx.call["verb"] = inv.command
        ctx.call["nodes"] = inv.nodes
        ctx.call["talosconfig"] = talosconfig_path(inv.get("talosconfig", ""), ctx.lab.client_version)
        if inv.command == "help" or inv.get("help"):
            ctx.out.append(argparse_.usage(None if inv.command == "help" else inv.command))
            return 0
        return COMMANDS[inv.command](ctx)
    except argparse_.UsageError as exc:
        ctx.err.append(exc.message + "\n\n" + argparse_.usage(exc.command) + "\n")
        return 1
    except TalosError as exc:
        ctx.err.append(exc.message + "\n")
        # cmd/talosctl/cmd/root.go: any error whose text mentions "arg(s)", "flag" or "command" is
        # followed by the command's usage, whatever produced it (the node's own messages too)
        if any(word in exc.message for word in ("arg(s)", "flag", "command")):
            inv = getattr(ctx, "inv", None)
            ctx.err.append("\n" + argparse_.usage(inv.command if inv else None) + "\n")
        return 1


def talosconfig_path(flag: str, client_version: str) -> str | None:
    """The file this talosctl reads (pkg/machinery/client/config/path.go): the flag, else the first
    existing of $TALOSCONFIG, <talos dir>/config ($TALOS_HOME when absolute, from 1.12 on; else
    ~/.talos/config), /var/run/secrets/talos.dev/config."""
    import os

    from talos_sim.versions import parse_version

    if flag:
        return flag
    home = os.environ.get("TALOS_HOME", "")
    talos_dir = home if home and os.path.isabs(home) and parse_version(client_version) >= (1, 12, 0) \
        else os.path.join(os.path.expanduser("~"), ".talos")
    for path in (os.environ.get("TALOSCONFIG", ""), os.path.join(talos_dir, "config"),
                 "/var/run/secrets/talos.dev/config"):
        if path and os.path.isfile(path):
            return path
    return None


if __name__ == "__main__":
    sys.exit(main())
