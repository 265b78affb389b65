"""Talos, through talosctl: the only code in labup that runs talosctl (explicit argv, never a shell).

Every call gets the lab's global flags (`--talosconfig`, `--context`, `-e` endpoints: lab.talos, the
endpoints defaulting to the control-plane addresses, never the VIP) and a timeout (talos.timeout_s).

Errors: an unreachable node (gRPC `Unavailable`, `DeadlineExceeded`, dial errors, a timeout) is a
TransientError, which the engine retries; anything else is a PermanentError carrying talosctl's own
text. A call is judged by its exit code only: talosctl prints `patched MachineConfigs...` before the
node has accepted anything, and a `WARNING: ... server version ... is older than client version`
line on successful calls.

The machine config holds the cluster's secrets (CA keys, tokens): it is read into memory only
(MachineConfig), never logged, written to disk, or put into an exception message.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labup.adapters.process import ToolResult, ToolTimeout, find_tool, run_tool
from labup.errors import LabupError, PermanentError, TransientError, Unreadable
from labup.redact import redact

if TYPE_CHECKING:
    from labup.config import Lab
    from labup.engine.context import Context

INSTALL_URL = "https://www.talos.dev/latest/talos-guides/install/talosctl/"
CONTROL_PLANE_TYPES = ("controlplane", "init")  # `init` is the bootstrap control plane of old clusters

# talosctl's texts for a node it cannot reach (or that did not answer): worth a retry
_TRANSIENT_MARKERS = ("code = Unavailable", "code = DeadlineExceeded", "connection refused",
                      "connection reset", "no route to host", "i/o timeout", "network is unreachable",
                      "context deadline exceeded", "Error while dialing")
# printed by talosctl on calls that succeed, or before the node's verdict: never a result
_NOISE = (re.compile(r"^WARNING: .*server version .* is older than client version"),
          re.compile(r"^patched MachineConfigs\.config\.talos\.dev/\S+ at the node "))
_UNREACHABLE_HINT = ("is the node up, and its Talos API (port 50000) reachable from here? Check "
                     "talos.endpoints and talos.talosconfig in lab.yaml")
# grpc-go reports every transport failure as `code = Unavailable`, TLS ones included: these texts mean
# the connection was made and the certificates were refused, which no retry changes
_AUTH_MARKERS = ("authentication handshake failed", "x509:", "tls: ", "error reading server preface",
                 "certificate required")


class TalosUnreachable(TransientError):
    """The node (or the endpoint in front of it) did not answer."""


class TalosAuthFailed(PermanentError):
    """The node and talosctl could not agree on certificates, or the client's role is not enough."""


class TalosFailed(PermanentError):
    """talosctl said no; `detail` is its own (redacted, one-line) text."""

    def __init__(self, message: str, detail: str, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.detail = detail


@dataclass(frozen=True)
class Link:
    name: str
    mac: str
    type: str  # ether, loopback, ...
    kind: str  # "" for a physical link; bond, vlan, ...
    state: str  # operationalState: up, down, unknown

    def describe(self) -> str:
        what = self.kind or self.type
        return f"{self.name} ({what}, {self.state})"


@dataclass(frozen=True)
class Address:
    id: str  # <link>/<ip>/<prefix>, e.g. ens18/192.0.2.250/32
    cidr: str  # spec.address: 192.0.2.250/32
    link: str

    @property
    def ip(self) -> str:
        return self.cidr.split("/", 1)[0]


class MachineConfig:
    """A node's machine config, parsed, in memory only: repr() and str() never show it."""

    __slots__ = ("_documents",)

    def __init__(self, documents: list[dict[str, Any]]) -> None:
        self._documents = documents

    @property
    def documents(self) -> list[dict[str, Any]]:
        return self._documents

    def __repr__(self) -> str:
        return f"<MachineConfig: {len(self._documents)} document(s), not shown: it holds secrets>"

    __str__ = __repr__


@dataclass
class PerNode:
    """One talosctl call over several nodes: each node's resources, or why that node did not answer."""

    found: dict[str, list[dict[str, Any]]]
    failed: dict[str, LabupError]


@dataclass(frozen=True)
class PatchOutcome:
    applied: bool  # False: talosctl said `Apply was skipped: no changes detected.`


def parse_stream(text: str) -> Iterator[dict[str, Any]]:
    """`talosctl get -o json` prints concatenated JSON objects, not an array: decode them one by one."""
    decoder = json.JSONDecoder()
    pos, end = 0, len(text)
    while True:
        while pos < end and text[pos].isspace():
            pos += 1
        if pos >= end:
            return
        obj, pos = decoder.raw_decode(text, pos)
        if isinstance(obj, dict):
            yield obj


def parse_link(res: dict[str, Any]) -> Link:
    spec, meta = res.get("spec") or {}, res.get("metadata") or {}
    return Link(name=str(meta.get("id", "")), mac=str(spec.get("hardwareAddr") or "").lower(),
                type=str(spec.get("type") or ""), kind=str(spec.get("kind") or ""),
                state=str(spec.get("operationalState") or ""))


def parse_address(res: dict[str, Any]) -> Address:
    spec, meta = res.get("spec") or {}, res.get("metadata") or {}
    rid = str(meta.get("id", ""))
    return Address(id=rid, cidr=str(spec.get("address") or rid.split("/", 1)[-1]),
                   link=str(spec.get("linkName") or rid.split("/", 1)[0]))


def client_tag(version_output: str) -> str | None:
    """talosctl's own `Tag:` (under `Client:`, printed before any node is asked)."""
    head, _, _ = version_output.partition("Server:")
    _, found, client = head.partition("Client:")
    match = re.search(r"^\s*Tag:\s*(\S+)", client, re.MULTILINE) if found else None
    return match.group(1) if match else None


def talos_error_text(stderr: str) -> str:
    """talosctl's message on one line, without the lines that are not part of the verdict.

    talosctl prints its whole usage text after any error mentioning "arg(s)", "flag" or "command"
    (cmd/talosctl/cmd/root.go): everything from the `Usage:` line on is dropped."""
    lines = [ln.strip() for ln in stderr.splitlines()]
    if "Usage:" in lines:
        lines = lines[:lines.index("Usage:")]
    kept = [ln for ln in lines if ln and not any(rx.match(ln) for rx in _NOISE)]
    return redact(" ".join(kept))


def is_unreachable(text: str) -> bool:
    return not is_auth_failure(text) and any(marker in text for marker in _TRANSIENT_MARKERS)


def is_auth_failure(text: str) -> bool:
    return any(marker in text for marker in _AUTH_MARKERS) or "code = PermissionDenied" in text


class TalosAdapter:
    """talosctl for one lab. Stateless apart from where talosctl is: safe to share in a run."""

    def __init__(self, lab: Lab, timeout_s: float | None = None) -> None:
        self.lab = lab
        # verify passes the time its deadline leaves; phases use talos.timeout_s
        self.timeout = timeout_s if timeout_s is not None else lab.talos.timeout_s
        self._binary: Path | None = None
        self._talosconfig: Path | None = None
        self.client_tag: str | None = None  # talosctl's own tag, known after client_version()

    @classmethod
    def from_context(cls, ctx: Context) -> TalosAdapter:
        return cls(ctx.lab)

    # -- reads ------------------------------------------------------------------------------------

    def client_version(self) -> str | None:
        """talosctl's own tag (`version --client`: no node is asked)."""
        if self.client_tag is None:
            out = self._run_local(["version", "--client"], "version --client").stdout
            self.client_tag = client_tag(out)
        return self.client_tag

    def machineconfig(self, node: str) -> MachineConfig:
        """The running config, parsed in memory (all documents). Its text is never kept or shown."""
        result = self._run(node, ["get", "machineconfig", "v1alpha1", "-o", "jsonpath={.spec}"],
                           "get machineconfig")
        return MachineConfig(load_config(result.stdout, node))

    def get_each(self, nodes: list[str], kind: str, rid: str | None = None) -> PerNode:
        """`talosctl -n A,B,... get KIND -o json`: one call for all the nodes. The endpoint's apid
        proxies to each node; every object carries the `node` it came from. A node that fails does not
        hide the others: their objects are still printed, and its error is said per node on stderr."""
        args = ["get", kind, *([rid] if rid else []), "-o", "json"]
        what = f"get {kind}"
        result = self._run_each(nodes, args, what)
        found: dict[str, list[dict[str, Any]]] = {}
        try:
            for obj in parse_stream(result.stdout):
                node = str(obj.get("node") or (nodes[0] if len(nodes) == 1 else ""))
                if node in nodes:
                    found.setdefault(node, []).append(obj)
        except ValueError as exc:
            raise TalosFailed(f"talosctl {what} on {', '.join(nodes)}: not the JSON stream labup expects ({exc})",
                              detail=str(exc), hint="is talosctl the Talos CLI, and recent enough?") from None
        failed: dict[str, LabupError] = {}
        if result.exit_code != 0:
            detail = talos_error_text(result.stderr) or f"talosctl exited {result.exit_code} without a message"
            for node in nodes:
                if node not in found:
                    failed[node] = self._error(node, what, _about(detail, node, nodes))
        else:
            for node in nodes:
                found.setdefault(node, [])
        return PerNode(found, failed)

    def read_file(self, node: str, path: str) -> str:
        """`talosctl read PATH` on one node (the machine API's Read: os:admin, any regular file).
        The text is returned only: it may hold keys (acme.json), so it is never logged."""
        return self._run(node, ["read", path], f"read {path}").stdout

    # -- the one write ----------------------------------------------------------------------------

    def patch(self, node: str, fragment: str) -> PatchOutcome:
        """`patch machineconfig --patch @file --mode no-reboot`: a VIP never needs a reboot, and
        no-reboot makes sure a mistake can never reboot a node. The file holds labup's fragment only,
        in a private folder (0700, file 0600), removed afterwards whatever happens."""
        folder = tempfile.mkdtemp(prefix="labup-talos-patch-")
        try:
            path = os.path.join(folder, "patch.yaml")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(fragment)
            result = self._run(node, ["patch", "machineconfig", "--patch", f"@{path}",
                                      "--mode", "no-reboot"], "patch machineconfig")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return PatchOutcome(applied="Apply was skipped: no changes detected." not in result.stderr)

    # -- plumbing ---------------------------------------------------------------------------------

    def global_args(self, node: str) -> list[str]:
        """talosctl's flags for one node or several (`a,b,c`: one call, answered per node)."""
        talos = self.lab.talos
        args: list[str] = []
        # always the file labup found (as talosctl would): both then read the same one
        config = self._talosconfig or talos.talosconfig
        if config:
            args += ["--talosconfig", str(config)]
        if talos.context:
            args += ["--context", talos.context]
        # never the VIP: it moves, and is down exactly when Talos is needed to repair it
        endpoints = talos.endpoints or tuple(n.address for n in self.lab.control_planes)
        return [*args, "-e", ",".join(endpoints), "-n", node]

    def binary(self) -> Path:
        if self._binary is None:
            found = find_tool("talosctl")
            if found is None:
                raise Unreadable("talosctl not found on PATH",
                                 hint=f"install it: {INSTALL_URL} (the version of your nodes)")
            problem = self._talosconfig_problem()
            if problem:
                raise Unreadable(problem, hint="set talos.talosconfig in lab.yaml, or TALOSCONFIG")
            self._binary = found
        return self._binary

    def _talosconfig_problem(self) -> str | None:
        """talosctl's own message for a missing config is obscure: say which file is missing."""
        from labup.adapters.talosconfig import discover

        found = discover(self.lab.talos.talosconfig)
        if found.path is not None:
            self._talosconfig = found.path
            return None
        if found.source == "talos.talosconfig":
            return f"talos.talosconfig: {found.looked_at[0]} does not exist"
        return "no talosconfig: none of " + ", ".join(str(p) for p in found.looked_at) + " exists"

    def identity_hint(self) -> str:
        """The talosconfig, its context and the client certificate's expiry: what a TLS refusal is about."""
        from labup.adapters.talosconfig import identity

        path = self._talosconfig or self.lab.talos.talosconfig
        if path is None:
            return "no talosconfig found"
        return identity(path, self.lab.talos.context).describe()

    def _run_each(self, nodes: list[str], args: list[str], what: str) -> ToolResult:
        """The call as it is, whatever its exit code (a partial answer is judged per node)."""
        binary = self.binary()
        try:
            return run_tool(binary, [*self.global_args(",".join(nodes)), *args], timeout=self.timeout, check=False)
        except ToolTimeout:
            raise TalosUnreachable(f"talosctl {what} on {', '.join(nodes)}: no answer within {self.timeout:g}s",
                                   hint=_UNREACHABLE_HINT) from None

    def _run_local(self, args: list[str], what: str) -> ToolResult:
        """A talosctl call that asks no node (no -e/-n)."""
        try:
            result = run_tool(self.binary(), args, timeout=self.timeout, check=False)
        except ToolTimeout:
            raise TalosFailed(f"talosctl {what}: no answer within {self.timeout:g}s", detail="timeout") from None
        if result.exit_code != 0:
            detail = talos_error_text(result.stderr) or f"talosctl exited {result.exit_code} without a message"
            raise TalosFailed(f"talosctl {what}: {detail}", detail)
        return result

    def _run(self, node: str, args: list[str], what: str) -> ToolResult:
        result = self._run_each([node], args, what)
        if result.exit_code == 0:
            return result
        detail = talos_error_text(result.stderr) or f"talosctl exited {result.exit_code} without a message"
        raise self._error(node, what, detail)

    def _error(self, node: str, what: str, detail: str) -> LabupError:
        message = f"talosctl {what} on {node}: {detail}"
        if is_auth_failure(detail):
            return TalosAuthFailed(message, hint=self._auth_hint(detail, what))
        if is_unreachable(detail):
            return TalosUnreachable(message, hint=_UNREACHABLE_HINT)
        return TalosFailed(message, detail, hint=_hint_for(detail))

    def _auth_hint(self, detail: str, what: str) -> str:
        who = self.identity_hint()
        if "code = PermissionDenied" in detail:
            need = "os:admin" if "machineconfig" in what else "os:reader at least"
            return (f"the Talos API refused this client's role: `{what}` needs {need} ({who}); use a "
                    "talosconfig generated with that role (`talosctl config new --roles os:admin`)")
        if "valid for" in detail:
            return (f"the endpoint is not one of the names in the node's certificate ({who}): use the nodes' own "
                    "addresses as talos.endpoints (never the VIP), or add it to machine.certSANs")
        if "unknown authority" in detail:
            return (f"the node's certificate is not signed by the CA in the talosconfig ({who}): the wrong "
                    "context or file for this cluster, or its CA was rotated; set talos.talosconfig/context")
        return (f"TLS with the Talos API failed: a wrong or rotated CA, an expired client certificate, or an "
                f"endpoint the node's certificate does not name ({who})")


def _about(detail: str, node: str, nodes: list[str]) -> str:
    """The part of a several-node error that is about `node`: apid names each node it failed to reach
    (`* 10.0.0.2: rpc error: ...`); an error naming no node (the endpoint itself failed) is everyone's."""
    points = [p.strip() for p in re.split(r"\s\*\s", f" {detail}") if p.strip()]
    mine = [p for p in points if re.match(rf"^{re.escape(node)}\b", p) or f" {node}:" in f" {p}"]
    if mine:
        return " ".join(mine)
    named = [p for p in points if any(re.match(rf"^{re.escape(n)}\b", p) for n in nodes)]
    return " ".join(p for p in points if p not in named) or detail


def _hint_for(detail: str) -> str | None:
    if "virtual (shared) IP is not allowed on non-controlplane nodes" in detail:
        return "the VIP belongs on control-plane nodes only: check nodes[].role in lab.yaml"
    if '"Layer2VIPConfig" "v1alpha1": not registered' in detail:
        if "rpc error" in detail:  # the node's answer
            return "this node runs Talos < 1.12, which knows only the machine.network.interfaces form of a VIP"
        # talosctl decodes a patch itself before any node is asked (configpatcher.LoadPatch)
        return ("this talosctl is older than 1.12 and cannot even load a Layer2VIPConfig patch (no node was "
                "asked): install the talosctl of your nodes' version (`talosctl version --client`)")
    if "PermissionDenied" in detail or "certificate" in detail:
        return "talosctl was refused: is the talosconfig (and its context) the one for this cluster?"
    return None


# -- the config as YAML: Go's yaml reads only true/false as booleans (`auto: off` is a string) ------

def load_config(text: str, node: str) -> list[dict[str, Any]]:
    """Parse the (multi-document) config. A YAML error says where, never quotes the config."""
    import yaml

    try:
        docs = [d for d in yaml.load_all(text, Loader=_loader()) if d is not None]  # _loader() derives from SafeLoader
    except yaml.YAMLError:
        # PyYAML's message quotes the text around the error: it could be a key. Say only that.
        raise PermanentError(f"the machine config of {node} is not valid YAML (not shown: it holds the "
                             "cluster's secrets)", hint="is talosctl the Talos CLI?") from None
    if not all(isinstance(d, dict) for d in docs):
        raise PermanentError(f"the machine config of {node} has a document that is not a mapping")
    return docs


_LOADER: Any = None


def _loader() -> Any:
    global _LOADER
    if _LOADER is None:
        import yaml

        base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        boolean = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
        resolvers: dict[Any, Any] = {
            first: [(tag, rx) for tag, rx in entries if tag != "tag:yaml.org,2002:bool"]
            for first, entries in yaml.SafeLoader.yaml_implicit_resolvers.items()}
        for first in "tTfF":
            resolvers.setdefault(first, []).insert(0, ("tag:yaml.org,2002:bool", boolean))
        _LOADER = type("TalosConfigLoader", (base,), {"yaml_implicit_resolvers": resolvers})
    return _LOADER
