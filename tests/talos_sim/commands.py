"""The talosctl commands: version, get, patch, read. Each writes to ctx.out/ctx.err or raises TalosError."""

from __future__ import annotations

import json
import os
import stat
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from talos_sim import nodefs, output, resources, runtime
from talos_sim.argv import Invocation, UsageError
from talos_sim.errors import TalosError, multierror, node_errors, rpc, tls_failure, unavailable
from talos_sim.model import Lab
from talos_sim.versions import GO_VERSION, parse_version, semver

NODES_NOT_SET = (
    "nodes are not set for the command: please use `--nodes` flag or configuration file "
    "to set the nodes to run the command against"
)
MACHINECONFIG = "MachineConfigs.config.talos.dev"
MODE_DETAILS = {
    "auto": "Applied configuration without a reboot",
    "no-reboot": "Applied configuration without a reboot",
    "try": "Applied configuration without a reboot",
    "reboot": "Applied configuration with a reboot",
    "staged": "Staged configuration to be applied after the next reboot",
}


@dataclass
class Context:
    lab: Lab
    inv: Invocation
    call: dict[str, Any]
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)
    raw: bytes = b""  # written to stdout as is, after `out` (read streams a file's bytes)

    def targets(self) -> list[str]:
        nodes = self.inv.nodes or list(self.lab.default_nodes)
        if not nodes:
            raise TalosError(NODES_NOT_SET)
        self.call["nodes"] = nodes
        return nodes

    def endpoint_error(self) -> str | None:
        """All -e endpoints dead -> the client cannot connect at all. Certificates are checked with
        the first endpoint that answers: a refusal there fails the whole call."""
        endpoints = self.inv.endpoints
        if self.lab.tls_failure and endpoints:
            return tls_failure(self.lab.tls_failure, endpoints[0])
        for ep in endpoints:
            node = self.lab.find(ep) or self.lab.find(self.lab.holders.get(ep, ""))
            if node is not None and runtime.api_reachable(self.lab, node):
                return None
        return unavailable(endpoints[0]) if endpoints else None

    def contact(self, nodes: list[str]) -> dict[str, str | None]:
        """Per node: the error its first RPC fails with, or None. Consumes one injected fault."""
        result: dict[str, str | None] = {}
        for addr in nodes:
            node = self.lab.find(addr)
            if node is None:
                result[addr] = unavailable(addr)
            elif node.faults:
                result[addr] = node.faults.pop(0)
            elif not runtime.api_reachable(self.lab, node):
                result[addr] = unavailable(addr)
            else:
                result[addr] = None
        return result

    def version_check(self, contacts: dict[str, str | None]) -> None:
        """helpers.ClientVersionCheck: warn about servers older than the client (stderr)."""
        client = self.lab.client_version
        warnings = []
        for addr, failure in contacts.items():
            node = self.lab.find(addr)
            if failure is None and node is not None and parse_version(node.version) < parse_version(client):
                older = f"server version {semver(node.version)} is older than client version {semver(client)}"
                warnings.append(f"{addr}: {older}")
        if warnings:
            self.err.append("WARNING: " + ", ".join(warnings) + "\n")


def _sha(tag: str) -> str:
    return f"{zlib.crc32(tag.encode()):08x}"  # stable fake commit id per tag


def _long_version(tag: str) -> str:
    return (
        f"\tTag:         {tag}\n\tSHA:         {_sha(tag)}\n\tBuilt:       \n"
        f"\tGo version:  {GO_VERSION}\n\tOS/Arch:     linux/amd64\n"
    )


# -- version ----------------------------------------------------------------------------------


def cmd_version(ctx: Context) -> int:
    if ctx.inv.args:
        raise UsageError(f'unknown command "{ctx.inv.args[0]}" for "talosctl version"', "version")
    as_json = ctx.inv.get("json", False)
    if not as_json:
        ctx.out.append("Client:\n")
        tag = ctx.lab.client_version
        ctx.out.append(f"Talos {tag}\n" if ctx.inv.get("short") else _long_version(tag))
        if ctx.inv.get("client"):
            return 0
        ctx.out.append("Server:\n")
    nodes = ctx.targets()
    if (ep_err := ctx.endpoint_error()) is not None:
        raise TalosError(f"error getting version: {ep_err}")
    contacts = ctx.contact(nodes)
    failed = [(addr, err) for addr, err in contacts.items() if err is not None]
    if len(failed) == len(nodes):
        raise TalosError("error getting version: " + node_errors(failed))
    if failed:
        ctx.err.append("WARNING: " + node_errors(failed) + "\n")
    for addr in nodes:
        if contacts[addr] is not None:
            continue
        tag = ctx.lab.node(addr).version
        if as_json:
            msg = {
                "metadata": {"hostname": addr},
                "version": {"tag": tag, "sha": _sha(tag), "goVersion": GO_VERSION, "os": "linux", "arch": "amd64"},
                "platform": {"name": "metal", "mode": "metal"},
                "features": {"rbac": True},
            }
            ctx.out.append(json.dumps(msg, separators=(",", ":")) + "\n")
        else:
            ctx.out.append(f"\tNODE:        {addr}\n" + _long_version(tag) + "\tEnabled:     RBAC\n")
    return 0


# -- get --------------------------------------------------------------------------------------


def cmd_get(ctx: Context) -> int:
    args = ctx.inv.args
    if not 1 <= len(args) <= 2:
        raise UsageError(f"accepts between 1 and 2 arg(s), received {len(args)}", "get")
    if ctx.inv.get("watch"):
        raise TalosError("talos_sim: `get --watch` is not simulated")
    nodes = ctx.targets()
    if (ep_err := ctx.endpoint_error()) is not None:
        raise TalosError(ep_err)
    contacts = ctx.contact(nodes)
    ctx.version_check(contacts)
    failed = [(addr, err) for addr, err in contacts.items() if err is not None]
    if failed and parse_version(ctx.lab.client_version) >= (1, 14, 0):
        # talosctl 1.14 asks every node's version first and stops at the first that fails: nothing of
        # the others is printed (helpers.ClientVersionCheck, cmd/talosctl/cmd/talos/get.go)
        addr, err = failed[0]
        raise TalosError(f"{addr}: error getting server version: {err}")
    writer = output.new_writer(ctx.inv.get("output", "table"))
    if contacts[nodes[0]] is not None:  # resolving the type is an RPC to the first node
        raise TalosError(str(contacts[nodes[0]]))
    rtype = resources.resolve(args[0])
    rid = args[1] if len(args) == 2 else None
    if rtype.type == MACHINECONFIG and ctx.lab.role != "os:admin":  # a sensitive resource
        raise TalosError(rpc("PermissionDenied", "not authorized"))
    errors = []
    for addr in nodes:
        if contacts[addr] is not None:
            errors.append(str(contacts[addr]))
            continue
        try:
            items = resources.get(ctx.lab, ctx.lab.node(addr), rtype, rid)
        except TalosError as exc:
            errors.append(exc.message)
            continue
        ctx.out.extend(writer.write(addr, item) for item in items)
    ctx.out.append(writer.flush())
    if rtype.type == "AddressStatuses.net.talos.dev" and ctx.lab.vip_delay > 0:
        ctx.lab.vip_delay -= 1
    if errors:
        raise TalosError(multierror(errors))
    return 0


# -- patch ------------------------------------------------------------------------------------


def _modes(client_version: str) -> list[str]:
    modes = ["auto", "no-reboot", "reboot", "staged", "try"]
    if parse_version(client_version) >= (1, 14, 0):
        modes.remove("reboot")  # Talos 1.14 drops --mode reboot (FACTS.md §2)
    return modes


def cmd_patch(ctx: Context) -> int:
    inv = ctx.inv
    if not 1 <= len(inv.args) <= 2:
        raise UsageError(f"accepts between 1 and 2 arg(s), received {len(inv.args)}", "patch")
    mode = inv.get("mode", "auto")
    modes = _modes(ctx.lab.client_version)
    if mode not in modes:
        raise UsageError(
            f'invalid argument "{mode}" for "-m, --mode" flag: possible options are: {", ".join(modes)}', "patch"
        )
    from talos_sim import patchload  # lazy: only patch needs the YAML machinery

    specs = list(inv.get("patch", []))
    if inv.get("patch-file"):
        specs.append("@" + inv.get("patch-file"))
    if not specs:
        raise TalosError("either --patch or --patch-file should be defined")
    sources = patchload.read_patch_args(specs)
    ctx.call["patches"] = [text for _, text in sources]  # so tests can inspect what labup sent
    patches = patchload.load_patches([text for _, text in sources], ctx.lab.client_version)

    nodes = ctx.targets()
    if (ep_err := ctx.endpoint_error()) is not None:
        raise TalosError(ep_err)
    contacts = ctx.contact(nodes)
    ctx.version_check(contacts)
    for addr in nodes:
        if contacts[addr] is not None:
            raise TalosError(str(contacts[addr]))
        if ctx.lab.role != "os:admin":
            raise TalosError(node_errors([(addr, rpc("PermissionDenied", "not authorized"))]))
        rtype = resources.resolve(inv.args[0])
        if rtype.type != MACHINECONFIG:
            raise TalosError(f"{addr}: unsupported resource type: {rtype.type}")
        _patch_node(ctx, addr, patches, mode)
    return 0


def _patch_node(ctx: Context, addr: str, patches: list[Any], mode: str) -> None:
    import difflib

    from talos_sim import patchapply, validate, yamlio

    node = ctx.lab.node(addr)
    # the client patches what it read: talosctl 1.12.0-1.12.4 read only the first document of a <= 1.11
    # node's config, and sent back only that (siderolabs/talos#12787)
    base = yamlio.load_docs(node.config)
    if resources.truncates(ctx.lab.client_version, node.version):
        base = base[:1]
    patched = patchapply.encode(patchapply.apply(base, patches))
    if patched.strip() == node.config.strip():
        ctx.err.append("Apply was skipped: no changes detected.\n")
        return
    # Real talosctl prints this line before it looks at the apply result: even on a rejection.
    ctx.err.append(f"patched {MACHINECONFIG}/v1alpha1 at the node {addr}\n")
    try:
        validate.check(patched, node.version)
    except TalosError as exc:
        raise TalosError(node_errors([(addr, rpc("InvalidArgument", exc.message))])) from None
    details = MODE_DETAILS[mode]
    if ctx.inv.get("dry-run"):
        diff = "".join(
            difflib.unified_diff(node.config.splitlines(keepends=True), patched.splitlines(keepends=True), "a", "b")
        )
        ctx.err.append(f"Dry run summary:\n{details} (skipped in dry-run).\nConfig diff:\n\n{diff or 'No changes.'}\n")
        return
    if mode == "staged":
        node.staged_config = patched
    else:
        node.config = patched
        node.config_version += 1
        node.staged_config = None
        if mode == "reboot":
            node.reboots += 1
    if mode == "try":
        timeout = ctx.inv.get("timeout", "1m0s")
        details += f"\nThe config is applied in 'try' mode and will be automatically reverted back in {timeout}"
    runtime.recompute(ctx.lab)
    ctx.err.append(details + "\n")


# -- read -------------------------------------------------------------------------------------


def cmd_read(ctx: Context) -> int:
    """`talosctl read <path>` (cmd/talosctl/cmd/talos/read.go): one node, the file's bytes on stdout.
    Errors the node sends come through the stream (ReadStream): `error reading: <status>`; a client
    that cannot reach its endpoint fails opening the stream: `error reading file: <status>`."""
    if len(ctx.inv.args) != 1:
        raise UsageError(f"accepts 1 arg(s), received {len(ctx.inv.args)}", "read")
    path = ctx.inv.args[0]
    nodes = ctx.targets()
    if parse_version(ctx.lab.client_version) >= (1, 14, 0):
        if len(nodes) != 1:  # global.ClientFactory.BuildClientEnforceSingleNode
            raise TalosError(f'command "read" requires exactly one node (got {len(nodes)})')
    elif len(nodes) > 1:  # helpers.FailIfMultiNodes (talosctl <= 1.13)
        raise TalosError('command "read" is not supported with multiple nodes')
    if (ep_err := ctx.endpoint_error()) is not None:
        raise TalosError(f"error reading file: {ep_err}")
    addr = nodes[0]
    failure = ctx.contact(nodes)[addr]
    if failure is not None:
        if "code = DeadlineExceeded" in failure or "code = Canceled" in failure:
            return 0  # ReadStream ends quietly on these codes: an empty "file", exit 0
        raise TalosError(f"error reading: {failure}")
    if ctx.lab.role != "os:admin":  # "/machine.MachineService/Read": role.MakeSet(role.Admin)
        raise TalosError("error reading: " + rpc("PermissionDenied", "not authorized"))
    ctx.raw = _read_node_file(ctx.lab, addr, path)
    return 0


def _read_node_file(lab: Lab, address: str, path: str) -> bytes:
    """machined's Read (internal/app/machined/internal/server/v1alpha1/v1alpha1_server.go): os.Stat,
    NotFound for a missing file; anything but a regular file is a plain error (gRPC code Unknown)."""
    missing = TalosError("error reading: " + rpc("NotFound", f"stat {path}: no such file or directory"))
    host = nodefs.host_path(lab.files_dir, address, path) if lab.files_dir else None
    if host is None:
        raise missing
    try:
        mode = os.stat(host).st_mode
    except FileNotFoundError:
        raise missing from None
    except NotADirectoryError:  # Go: not ErrNotExist, so returned as is
        raise TalosError("error reading: " + rpc("Unknown", f"stat {path}: not a directory")) from None
    if not stat.S_ISREG(mode):
        raise TalosError("error reading: " + rpc("Unknown", "path must be a regular file"))
    with open(host, "rb") as handle:
        return handle.read()


COMMANDS: dict[str, Callable[[Context], int]] = {
    "version": cmd_version, "get": cmd_get, "patch": cmd_patch, "read": cmd_read,
}
