"""Single-value checks for lab.yaml; each returns None when valid, else what is wrong."""

from __future__ import annotations

import ipaddress
import re

_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# fullmatch, never match: `$` also matches before a trailing newline ("4.1.4\n"); [0-9], never \d (any
# Unicode digit): these are the patterns of lab.schema.json too (labup.labschema)
_SEMVER = re.compile(
    r"^v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$")
_EMAIL_LOCAL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}$")
_SHELL_META = set(";&|`$<>()\\\"' \t\n*?[]{}!#~")


def dns_label(value: str) -> str | None:
    """RFC 1123 label: a namespace or a lab name."""
    if not _DNS_LABEL.fullmatch(value):
        return (f"'{value}' is not a valid RFC 1123 label "
                "(lower-case letters, digits and '-', 1-63 characters, starting and ending alphanumeric)")
    return None


def dns_subdomain(value: str, max_len: int = 253) -> str | None:
    """RFC 1123 subdomain: a Kubernetes node name or a Helm release (max 53)."""
    if len(value) > max_len:
        return f"'{value}' is longer than {max_len} characters"
    if not value or any(dns_label(part) for part in value.split(".")):
        return (f"'{value}' is not a valid RFC 1123 name "
                "(lower-case letters, digits, '-' and '.', each part starting and ending alphanumeric)")
    return None


def domain(value: str) -> str | None:
    """A DNS domain for a certificate: RFC 1123, at least two labels, no shell metacharacters."""
    bad = sorted(set(value) & _SHELL_META)
    if bad:
        return f"'{value}' contains characters not allowed in a domain: {' '.join(repr(c) for c in bad)}"
    if value != value.lower():
        return f"'{value}' must be lower case"
    if "." not in value.strip("."):
        return f"'{value}' is not a fully qualified domain (expected e.g. example.net)"
    if value.endswith(".") or dns_subdomain(value):
        return f"'{value}' is not a valid RFC 1123 domain"
    if value.rsplit(".", 1)[1].isdigit():
        return f"'{value}' looks like an IP address, not a domain"
    return None


def endpoint(value: str) -> tuple[str, str | None]:
    """A talosctl endpoint `host`, `host:port` or `[v6]:port`: (host, problem). talosctl splits `-e` on
    commas, so one entry must never hold several."""
    if "," in value or any(c.isspace() for c in value) or value.startswith("-"):
        return value, f"'{value}' must be one address or name (with an optional :port), without commas or spaces"
    host, port = value, None
    if value.startswith("["):
        closing = value.find("]")
        host, rest = value[1:closing], value[closing + 1:]
        if closing < 0 or (rest and not rest.startswith(":")):
            return value, f"'{value}' is not [IPv6]:port"
        port = rest[1:] if rest else None  # `[v6]:` names no port: refused, as `host:` is
    elif value.count(":") == 1:
        host, port = value.split(":")
    if port is not None and not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        return host, f"'{value}' has port '{port}': expected a number from 1 to 65535"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if dns_subdomain(host.lower()):
            return host, f"'{value}' is not an IP address or a host name"
    return host, None


def ip_address(value: str) -> str | None:
    """A bare IPv4/IPv6 address (no prefix length, no port)."""
    if "/" in value:
        return f"'{value}' has a prefix length; give the bare address (e.g. {value.split('/')[0]})"
    if "%" in value:  # fe80::1%eth0: a scope means nothing in a Talos patch, ARP or another machine's talosctl
        return f"'{value}' has a zone index; give the bare address (e.g. {value.split('%')[0]})"
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        return f"'{value}' is not an IPv4 or IPv6 address"
    if addr.is_unspecified or addr.is_loopback or addr.is_multicast:
        return f"'{value}' is a loopback, multicast or unspecified address"
    return None


def interface_name(value: str) -> str | None:
    """A Linux interface name: 1-15 bytes, no '/', ':' or whitespace, not '.' or '..'."""
    if not value or len(value.encode()) > 15:
        return f"'{value}' is not a Linux interface name (1-15 characters)"
    if value in (".", "..") or any(c in value for c in "/: \t\n") or not value.isprintable():
        return f"'{value}' is not a Linux interface name (no '/', ':' or spaces)"
    # the kernel allows more, but no NIC, bond or VLAN name uses anything else, and these reach a
    # terminal, a Talos patch and talosctl's output: keep them plain
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.@-]*", value):
        return f"'{value}' is not a Linux interface name (letters, digits, '-', '_', '.', '@')"
    return None


def email(value: str) -> str | None:
    """An ACME account e-mail: local@domain, with a real domain."""
    local, sep, dom = value.rpartition("@")
    if not sep or not _EMAIL_LOCAL.fullmatch(local) or local.startswith(".") or ".." in local:
        return f"'{value}' is not a valid e-mail address"
    if domain(dom):
        return f"'{value}' is not a valid e-mail address (bad domain '{dom}')"
    return None


def semver(value: str) -> str | None:
    """A semantic version, e.g. 4.1.4 or 41.3.0 (a leading v is accepted)."""
    if not _SEMVER.fullmatch(value):
        return f"'{value}' is not a semantic version (expected MAJOR.MINOR.PATCH, e.g. 4.1.4)"
    return None


def url(value: str) -> str | None:
    """An http(s) URL without spaces or shell metacharacters."""
    if not re.fullmatch(r"https?://[A-Za-z0-9.\-\[\]:]+(/[A-Za-z0-9._~/%+-]*)?", value):
        return f"'{value}' is not an http(s) URL"
    return None


def version_tuple(value: str) -> tuple[int, int, int]:
    """'v1.13.0' or '4.1.4-rc.1' -> (1, 13, 0); callers validate with semver() first."""
    core = value.lstrip("v").split("-", 1)[0].split("+", 1)[0]
    major, minor, patch = (int(part) for part in core.split(".")[:3])
    return major, minor, patch


# Let's Encrypt refuses an account whose contact is at a reserved domain (RFC 2606/6761): boulder's
# policy `contact email has forbidden domain` - at registration, i.e. after the whole deploy
_RESERVED_SUFFIXES = (".test", ".invalid", ".localhost", ".example", ".local")
_RESERVED_DOMAINS = ("example.com", "example.org", "example.net")


def reserved_email(value: str) -> str | None:
    """Why Let's Encrypt would refuse this account email, or None."""
    domain = value.rpartition("@")[2].lower().rstrip(".")
    if any(domain == d or domain.endswith("." + d) for d in _RESERVED_DOMAINS) or \
            domain.endswith(_RESERVED_SUFFIXES) or domain in ("test", "invalid", "localhost", "example", "local"):
        return (f"'{value}' is at a reserved domain ({domain}): Let's Encrypt refuses it when Traefik registers "
                "(\"contact email has forbidden domain\"), which happens only after the whole deploy")
    return None


def vip_far_from(vip: str, addresses: list[str]) -> str | None:
    """Why a VIP that shares no /24 (IPv4) or /64 (IPv6) with any control-plane address looks wrong,
    or None. Offline, so only a guess (a /23 LAN is fine): a warning, never an error. Live, pre-flight
    reads the link's real prefixes and refuses a VIP outside them."""
    import ipaddress

    try:
        want = ipaddress.ip_address(vip)
    except ValueError:
        return None
    prefix = 24 if want.version == 4 else 64
    near = []
    for address in addresses:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return None  # a name: its address is unknown offline
        if ip.version == want.version:
            near.append(want in ipaddress.ip_network(f"{ip}/{prefix}", strict=False))
    if not near or any(near):
        return None
    return (f"vip.address {vip} shares no /{prefix} with the control-plane addresses "
            f"({', '.join(addresses)}): a Layer-2 VIP must be a free address in their subnet on vip.interface")
