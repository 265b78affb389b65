"""Error texts exactly as talosctl prints them (FACTS.md §2 and the Talos v1.13.9 source)."""

from __future__ import annotations

import ipaddress


class TalosError(Exception):
    """A failure talosctl would print (as is) on stderr before exiting 1."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def multierror(errors: list[str]) -> str:
    """hashicorp/go-multierror's list format, trailing blank line included."""
    if len(errors) == 1:
        return f"1 error occurred:\n\t* {errors[0]}\n\n"
    points = "\n\t".join(f"* {e}" for e in errors)
    return f"{len(errors)} errors occurred:\n\t{points}\n\n"


def rpc(code: str, desc: str) -> str:
    """A gRPC status error's Error() string."""
    return f"rpc error: code = {code} desc = {desc}"


def _dial_target(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return ""
    return f"[{ip}]:50000" if ip.version == 6 else f"{ip}:50000"


def unavailable(address: str) -> str:
    """An unreachable node or endpoint (FACTS.md §2: `no route to host`)."""
    target = _dial_target(address)
    if not target:
        dial = f"dial tcp: lookup {address}: no such host"
    else:
        dial = f"dial tcp {target}: connect: no route to host"
    return rpc("Unavailable", f'connection error: desc = "transport: Error while dialing: {dial}"')


def node_errors(pairs: list[tuple[str, str]]) -> str:
    """Errors the apid proxy returns per node (one-to-many calls: version, apply)."""
    return multierror([f"{node}: {err}" for node, err in pairs])


# What grpc-go reports when TLS with the endpoint fails (every transport error is `Unavailable`):
# crypto/tls and crypto/x509 texts as Go 1.25 prints them.
TLS_FAILURES = {
    # the talosconfig's CA is not the one that signed the node's certificate (rotated CA, other cluster)
    "unknown-authority": 'connection error: desc = "transport: authentication handshake failed: tls: failed to '
                         'verify certificate: x509: certificate signed by unknown authority"',
    # the endpoint is not among the names in the node's certificate
    "not-valid-for": 'connection error: desc = "transport: authentication handshake failed: tls: failed to '
                     'verify certificate: x509: certificate is valid for {names}, not {endpoint}"',
    # TLS 1.3: the server refused the client certificate (expired, or not from the cluster's CA)
    "bad-certificate": 'connection error: desc = "error reading server preface: remote error: tls: bad '
                       'certificate"',
}


def tls_failure(kind: str, endpoint: str, names: str = "127.0.0.1") -> str:
    return rpc("Unavailable", TLS_FAILURES[kind].format(endpoint=endpoint, names=names))
