"""Cobra/pflag-style argument parsing for the commands the simulator knows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from talos_sim.errors import TalosError

# name -> (shorthand, kind); kind is bool | str | list (a pflag StringSlice / StringArray)
FlagSpec = dict[str, tuple[str, str]]

GLOBAL_FLAGS: FlagSpec = {
    "talosconfig": ("", "str"),
    "endpoints": ("e", "list"),
    "nodes": ("n", "list"),
    "context": ("", "str"),
    "cluster": ("", "str"),
    "siderov1-keys-dir": ("", "str"),
    "help": ("h", "bool"),
}
COMMAND_FLAGS: dict[str, FlagSpec] = {
    "version": {"short": ("", "bool"), "client": ("", "bool"), "json": ("", "bool"), "insecure": ("i", "bool")},
    "get": {
        "output": ("o", "str"),
        "namespace": ("", "str"),
        "watch": ("w", "bool"),
        "insecure": ("i", "bool"),
    },
    "patch": {
        "patch": ("p", "array"),
        "patch-file": ("", "str"),
        "mode": ("m", "str"),
        "dry-run": ("", "bool"),
        "timeout": ("", "str"),
        "namespace": ("", "str"),
    },
    "read": {},
}
# cobra aliases: the command is logged (and parsed) under its own name
ALIASES = {"cat": "read"}
USES = {
    "version": "talosctl version [flags]",
    "get": "talosctl get <type> [<id>] [flags]",
    "patch": "talosctl patch machineconfig [flags]",
    "read": "talosctl read <path> [flags]",
}


class UsageError(TalosError):
    """Errors cobra follows with the command's usage text."""

    def __init__(self, message: str, command: str | None) -> None:
        super().__init__(message)
        self.command = command


@dataclass
class Invocation:
    command: str
    args: list[str] = field(default_factory=list)
    flags: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str, default: Any = None) -> Any:
        return self.flags.get(name, default)

    @property
    def nodes(self) -> list[str]:
        return list(self.flags.get("nodes", []))

    @property
    def endpoints(self) -> list[str]:
        return list(self.flags.get("endpoints", []))


def usage(command: str | None) -> str:
    use = USES.get(command or "", "talosctl [command]")
    return (
        f"Usage:\n  {use}\n\nGlobal Flags:\n"
        "      --cluster string       Cluster to connect to if a proxy endpoint is used.\n"
        "      --context string       Context to be used in command\n"
        "  -e, --endpoints strings    override default endpoints in Talos configuration\n"
        "  -n, --nodes strings        target the specified nodes\n"
        '      --talosconfig string   The path to the Talos configuration file. Defaults to "TALOSCONFIG" '
        'env variable if set, otherwise "$HOME/.talos/config" and "/var/run/secrets/talos.dev/config" in order.\n'
    )


def _find_command(argv: list[str]) -> str | None:
    """The first positional argument, skipping global flags and their values."""
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok == "--":
            return argv[i + 1] if i + 1 < len(argv) else None
        if tok.startswith("-") and tok != "-":
            long = tok.startswith("--")
            found = _lookup(GLOBAL_FLAGS, tok.lstrip("-").split("=", 1)[0], short=not long)
            # the value is the next token unless given inline (--x=v, -nV, -n=V)
            if found and found[1] != "bool" and "=" not in tok and (long or len(tok) == 2):
                i += 1
            i += 1
            continue
        return tok
    return None


def _lookup(spec: FlagSpec, name: str, *, short: bool) -> tuple[str, str] | None:
    if short:
        for long_name, (shorthand, kind) in spec.items():
            if shorthand and shorthand == name[:1]:
                return long_name, kind
        return None
    return (name, spec[name][1]) if name in spec else None


def parse(argv: list[str]) -> Invocation:
    typed = _find_command(argv)
    if typed is None:
        return Invocation(command="help")
    command = ALIASES.get(typed, typed)
    if command not in COMMAND_FLAGS:
        raise UsageError(f'unknown command "{typed}" for "talosctl"', None)
    spec = {**GLOBAL_FLAGS, **COMMAND_FLAGS[command]}
    inv = Invocation(command=command)
    seen_command = False
    i = 0
    while i < len(argv):
        tok = argv[i]
        i += 1
        if tok == "--":
            inv.args.extend(argv[i:])
            break
        if not tok.startswith("-") or tok == "-":
            if not seen_command and tok == typed:
                seen_command = True
            else:
                inv.args.append(tok)
            continue
        if tok.startswith("--"):
            name, eq, value = tok[2:].partition("=")
            found = _lookup(spec, name, short=False)
            if found is None:
                raise UsageError(f"unknown flag: --{name}", command)
            display = f"--{name}"
            inline = value if eq else None
        else:
            name = tok[1:2]
            found = _lookup(spec, name, short=True)
            if found is None:
                raise UsageError(f"unknown shorthand flag: '{name}' in {tok}", command)
            display = f"'{name}' in {tok}"
            rest = tok[2:]
            inline = (rest[1:] if rest.startswith("=") else rest) or None
        long_name, kind = found
        if kind == "bool":
            inv.flags[long_name] = inline is None or inline.lower() in ("true", "1", "t")
            continue
        if inline is None:
            if i >= len(argv):
                raise UsageError(f"flag needs an argument: {display}", command)
            inline = argv[i]
            i += 1
        if kind == "list":  # StringSlice: comma-separated and repeatable
            inv.flags.setdefault(long_name, []).extend(v for v in inline.split(",") if v)
        elif kind == "array":  # StringArray: repeatable, no splitting
            inv.flags.setdefault(long_name, []).append(inline)
        else:
            inv.flags[long_name] = inline
    return inv
