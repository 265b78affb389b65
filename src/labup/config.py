"""lab.yaml: the typed model with its defaults, and its validation (DESIGN.md §2)."""

from __future__ import annotations

import difflib
import ipaddress
import os
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labup import validators as check
from labup.errors import ConfigError

ROLES = ("controlplane", "worker")
CHALLENGES = ("http", "tls")
# single: one Traefik on the VIP's node, certificates by its built-in ACME in acme.json on that node;
# ha: Traefik on every control-plane node (a DaemonSet), certificates by cert-manager in a Secret
TOPOLOGIES = ("single", "ha")
HA_MIN_CONTROL_PLANES = 3
SYSTEM_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease", "default")


@dataclass(frozen=True)
class Node:
    name: str
    address: str
    role: str

    @property
    def is_control_plane(self) -> bool:
        return self.role == "controlplane"


@dataclass(frozen=True)
class Vip:
    address: str
    interface: str = "ens18"
    wait_timeout_s: float = 120.0


@dataclass(frozen=True)
class Talos:
    talosconfig: Path | None = None
    endpoints: tuple[str, ...] = ()
    context: str | None = None
    timeout_s: float = 30.0


@dataclass(frozen=True)
class Kubernetes:
    kubeconfig: Path | None = None
    context: str | None = None
    timeout_s: float = 15.0


@dataclass(frozen=True)
class Helm:
    version: str = "4.1.4"
    install_dir: Path = field(default_factory=lambda: Path("~/.local/bin").expanduser())
    download_url: str = "https://get.helm.sh"


@dataclass(frozen=True)
class Acme:
    email: str
    challenge: str = "http"
    staging: bool = False
    storage_dir: str = "/var/mnt/traefik"
    resolver: str = "letsencrypt"


@dataclass(frozen=True)
class Traefik:
    domains: tuple[str, ...]
    acme: Acme
    namespace: str = "traefik"
    release: str = "traefik"
    chart: str = "traefik/traefik"
    repo_url: str = "https://traefik.github.io/charts"
    chart_version: str = "41.3.0"
    values: Path | None = None
    wait_timeout_s: float = 300.0
    # Helm 4 only: `--force-conflicts`, take fields another field manager owns (server-side apply)
    force_conflicts: bool = False
    # how long `labup apply` waits for Traefik's ACME certificate before naming the error in its log
    cert_timeout_s: float = 300.0


@dataclass(frozen=True)
class CertManager:
    """cert-manager, installed by the cert-manager phase (topology: ha only)."""

    namespace: str = "cert-manager"
    release: str = "cert-manager"
    chart: str = "jetstack/cert-manager"
    repo_url: str = "https://charts.jetstack.io"
    chart_version: str = "v1.21.1"
    wait_timeout_s: float = 300.0


@dataclass(frozen=True)
class Verify:
    timeout_s: float = 5.0
    ca_file: Path | None = None


@dataclass(frozen=True)
class Backup:
    """`labup backup`: the copies of Traefik's acme.json kept in .labup/backups/."""

    keep: int = 10  # the newest N backups are kept; older ones labup wrote are removed
    # also keep the newest backup as the Secret SEED_SECRET in Traefik's namespace: a Traefik pod that
    # starts with an empty acme.json (another node after the VIP moved) is seeded from it
    in_cluster: bool = False


@dataclass(frozen=True)
class Retry:
    """Retry policy for transient errors (DESIGN.md §4); bounded in attempts and total time."""

    attempts: int = 5
    initial_s: float = 1.0
    max_s: float = 20.0
    total_s: float = 120.0


@dataclass(frozen=True)
class Lab:
    name: str
    nodes: tuple[Node, ...]
    vip: Vip
    talos: Talos
    kubernetes: Kubernetes
    helm: Helm
    traefik: Traefik
    verify: Verify
    retry: Retry
    source: Path  # the lab.yaml this came from; .labup/ lives beside it
    backup: Backup = field(default_factory=Backup)
    topology: str = "single"
    cert_manager: CertManager = field(default_factory=CertManager)

    @property
    def ha(self) -> bool:
        return self.topology == "ha"

    @property
    def state_dir(self) -> Path:
        # beside the real file: a lab reached through a symlink has one state folder, one lock
        return self.source.resolve().parent / ".labup"

    @property
    def identity(self) -> str:
        return lab_identity(self.source, self.name)

    @property
    def control_planes(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.is_control_plane)

    @property
    def workers(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if not n.is_control_plane)

    def node_by_address(self, address: str) -> Node | None:
        return next((n for n in self.nodes if n.address == address), None)

    def node_by_name(self, name: str) -> Node | None:
        return next((n for n in self.nodes if n.name == name), None)


class _Section:
    """Reads one mapping of lab.yaml: typed getters that name the field path on error,
    and a final check that no unknown key is left (with a "did you mean" hint)."""

    def __init__(self, data: Any, path: str, base_dir: Path) -> None:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(path, f"expected a mapping, got {_kind(data)}")
        self.data = data
        self.path = path
        self.base_dir = base_dir
        self.used: set[str] = set()

    def where(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def _get(self, key: str, required: bool) -> Any:
        self.used.add(key)
        if key not in self.data or self.data[key] is None:
            if required:
                raise ConfigError(self.where(key), "is required")
            return None
        return self.data[key]

    def str(self, key: str, default: str | None = None, *, required: bool = False,
            rule: Callable[[str], str | None] | None = None) -> Any:
        value = self._get(key, required)
        if value is None:
            return default
        if not isinstance(value, str):
            raise ConfigError(self.where(key), f"expected a string, got {_kind(value)}")
        if rule and (problem := rule(value)):
            raise ConfigError(self.where(key), problem)
        return value

    def bool(self, key: str, default: bool) -> bool:
        value = self._get(key, False)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ConfigError(self.where(key), f"expected true or false, got {_kind(value)}")
        return value

    def number(self, key: str, default: float, *, integer: bool = False,
               low: float = 0, high: float = 86_400) -> Any:
        value = self._get(key, False)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or (
                integer and not isinstance(value, int)):
            raise ConfigError(self.where(key), f"expected {'an integer' if integer else 'a number'}, "
                              f"got {_kind(value)}")
        if not low < value <= high:
            raise ConfigError(self.where(key), f"must be greater than {low:g} and at most {high:g}, "
                              f"got {value}")
        return value

    def path_value(self, key: str, *, must_exist: bool = False) -> Path | None:
        value = self.str(key)
        if value is None:
            return None
        if "\0" in value or not value.strip():
            raise ConfigError(self.where(key), "is not a valid path")
        resolved = Path(value).expanduser()
        if not resolved.is_absolute():
            resolved = self.base_dir / resolved
        if must_exist:
            try:
                readable = resolved.is_file() and os.access(resolved, os.R_OK)
                exists = readable or resolved.exists()
            except OSError as exc:  # e.g. a folder on the way that this user may not enter
                raise ConfigError(self.where(key), f"file '{value}' cannot be read ({exc.strerror})") from None
            if not exists:
                raise ConfigError(self.where(key), f"file '{value}' does not exist (looked at {resolved})")
            if resolved.is_dir():
                raise ConfigError(self.where(key), f"'{value}' is a directory, expected a file")
            if not readable:
                kind = "is not readable" if resolved.is_file() else "is not a regular file (a device, FIFO or socket)"
                raise ConfigError(self.where(key), f"'{value}' {kind} (looked at {resolved})")
        return resolved

    def list(self, key: str, *, required: bool = False) -> list[Any]:
        value = self._get(key, required)
        if value is None:
            return []
        if not isinstance(value, list):
            raise ConfigError(self.where(key), f"expected a list, got {_kind(value)}")
        return value

    def section(self, key: str) -> _Section:
        return _Section(self._get(key, False), self.where(key), self.base_dir)

    def done(self) -> None:
        unknown = [k for k in self.data if k not in self.used]
        if unknown:
            key = unknown[0]
            known = sorted(self.used)
            guess = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
            hint = f"did you mean '{guess[0]}'?" if guess else f"known keys here: {', '.join(known)}"
            raise ConfigError(self.where(str(key)), "unknown key", hint=hint)


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "nothing"}.get(type(value), type(value).__name__)


def _nodes(top: _Section) -> tuple[Node, ...]:
    raw = top.list("nodes", required=True)
    if not raw:
        raise ConfigError("nodes", "must list at least one node")
    nodes: list[Node] = []
    for i, item in enumerate(raw):
        s = _Section(item, f"nodes[{i}]", top.base_dir)
        node = Node(
            name=s.str("name", required=True, rule=check.dns_subdomain),
            address=s.str("address", required=True, rule=check.ip_address),
            role=s.str("role", required=True,
                       rule=lambda r: None if r in ROLES else f"'{r}' is not one of {', '.join(ROLES)}"),
        )
        s.done()
        for j, other in enumerate(nodes):
            if other.name == node.name:
                raise ConfigError(f"nodes[{i}].name", f"'{node.name}' is also the name of nodes[{j}]")
            if ipaddress.ip_address(other.address) == ipaddress.ip_address(node.address):
                raise ConfigError(f"nodes[{i}].address",
                                  f"'{node.address}' is also the address of nodes[{j}] ({other.name})")
        nodes.append(node)
    if not any(n.is_control_plane for n in nodes):
        raise ConfigError("nodes", "needs at least one node with role: controlplane",
                          hint="the VIP is announced by Talos on control-plane nodes only")
    return tuple(nodes)


def _vip(top: _Section, nodes: tuple[Node, ...]) -> Vip:
    s = top.section("vip")
    address = s.str("address", required=True, rule=check.ip_address)
    for node in nodes:
        if ipaddress.ip_address(node.address) == ipaddress.ip_address(address):
            raise ConfigError("vip.address", f"'{address}' is the address of node {node.name}",
                              hint="the VIP must be a free address in the nodes' subnet, not a node's own")
    vip = Vip(address=address,
              interface=s.str("interface", "ens18", rule=check.interface_name),
              wait_timeout_s=s.number("wait_timeout_s", 120.0, high=3600))
    s.done()
    return vip


def _talos(top: _Section, nodes: tuple[Node, ...], vip: Vip) -> Talos:
    s = top.section("talos")
    endpoints: list[str] = []
    for i, item in enumerate(s.list("endpoints")):
        where = f"talos.endpoints[{i}]"
        if not isinstance(item, str):
            raise ConfigError(where, f"expected a string, got {_kind(item)}")
        host, problem = check.endpoint(item)
        if problem:
            raise ConfigError(where, problem)
        if host == vip.address:
            raise ConfigError(where, f"'{item}' is the VIP",
                              hint="never use the VIP as a talosctl endpoint: it moves, and is down "
                                   "exactly when you need Talos to repair it; use control-plane addresses")
        if check.ip_address(host.strip("[]")) and check.dns_subdomain(host):
            raise ConfigError(where, f"'{item}' is not an address or host name")
        endpoints.append(item)
    talos = Talos(talosconfig=s.path_value("talosconfig", must_exist=False),
                  endpoints=tuple(endpoints),
                  context=s.str("context"),
                  timeout_s=s.number("timeout_s", 30.0, high=600))
    s.done()
    return talos


def _kubernetes(top: _Section) -> Kubernetes:
    s = top.section("kubernetes")
    kube = Kubernetes(kubeconfig=s.path_value("kubeconfig"), context=s.str("context"),
                      timeout_s=s.number("timeout_s", 15.0, high=600))
    s.done()
    return kube


def _helm(top: _Section) -> Helm:
    s = top.section("helm")
    install_dir = s.path_value("install_dir") or Path("~/.local/bin").expanduser()
    helm = Helm(version=s.str("version", "4.1.4", rule=check.semver).lstrip("v"),
                install_dir=install_dir,
                download_url=s.str("download_url", "https://get.helm.sh", rule=check.url).rstrip("/"))
    s.done()
    return helm


def _storage_dir(value: str) -> str | None:
    if not value.startswith("/"):
        return f"'{value}' must be an absolute path"
    norm = posixpath.normpath(value)
    if norm != value.rstrip("/") or not norm.startswith("/var/") or "\0" in value:
        return (f"'{value}' must be a normalized path under /var "
                "(Talos' root filesystem is read-only; only /var survives and is writable)")
    if any(c in value for c in " \t\n;&|`$'\"\\"):
        return f"'{value}' contains characters not allowed in a host path"
    return None


def _traefik(top: _Section) -> Traefik:
    s = top.section("traefik")
    domains_raw = s.list("domains", required=True)
    if not domains_raw:
        raise ConfigError("traefik.domains", "must list at least one domain")
    domains: list[str] = []
    for i, item in enumerate(domains_raw):
        if not isinstance(item, str):
            raise ConfigError(f"traefik.domains[{i}]", f"expected a string, got {_kind(item)}")
        if problem := check.domain(item):
            raise ConfigError(f"traefik.domains[{i}]", problem)
        if item in domains:
            raise ConfigError(f"traefik.domains[{i}]", f"'{item}' is listed twice")
        domains.append(item)
    a = s.section("acme")
    if "acme" not in s.data:
        raise ConfigError("traefik.acme.email", "is required")
    acme = Acme(
        email=a.str("email", required=True, rule=check.email),
        challenge=a.str("challenge", "http", rule=lambda c: None if c in CHALLENGES
                        else f"'{c}' is not one of {', '.join(CHALLENGES)}"),
        staging=a.bool("staging", False),
        storage_dir=a.str("storage_dir", "/var/mnt/traefik", rule=_storage_dir).rstrip("/"),
        resolver=a.str("resolver", "letsencrypt", rule=check.dns_label),
    )
    a.done()

    traefik = Traefik(
        domains=tuple(domains),
        acme=acme,
        namespace=s.str("namespace", "traefik", rule=_not_system_namespace),
        release=s.str("release", "traefik", rule=lambda v: check.dns_subdomain(v, 53)),
        chart=s.str("chart", "traefik/traefik", rule=_chart_ref),
        repo_url=s.str("repo_url", "https://traefik.github.io/charts", rule=check.url),
        chart_version=s.str("chart_version", "41.3.0", rule=check.semver),
        values=s.path_value("values", must_exist=True),
        wait_timeout_s=s.number("wait_timeout_s", 300.0, high=3600),
        force_conflicts=s.bool("force_conflicts", False),
        cert_timeout_s=s.number("cert_timeout_s", 300.0, high=3600),
    )
    s.done()
    return traefik


def _not_system_namespace(value: str) -> str | None:
    if value in SYSTEM_NAMESPACES:
        return (f"'{value}' is a system namespace: labup labels Traefik's namespace privileged and installs "
                "cert-manager in its own, which must never touch system workloads")
    return check.dns_label(value)


def _chart_ref(value: str) -> str | None:
    if any(c in value for c in " \t\n;&|`$'\"\\"):
        return f"'{value}' contains characters not allowed in a chart reference"
    if value.startswith("-"):  # on helm's command line it would be read as a flag
        return f"'{value}' starts with '-': a chart reference is repo/chart, oci://... or a path"
    if value.startswith("oci://") or value.startswith((".", "/", "~")) or value.count("/") == 1:
        return None
    return f"'{value}' is not repo/chart, oci://... or a local chart path"


def _topology(top: _Section, nodes: tuple[Node, ...]) -> str:
    topology: str = top.str("topology", "single", rule=lambda t: None if t in TOPOLOGIES
                            else f"'{t}' is not one of {', '.join(TOPOLOGIES)}")
    planes = [n.name for n in nodes if n.is_control_plane]
    if topology == "ha" and len(planes) < HA_MIN_CONTROL_PLANES:
        raise ConfigError("topology", f"'ha' needs at least {HA_MIN_CONTROL_PLANES} control-plane nodes; "
                          f"nodes lists {len(planes)} ({', '.join(planes)})",
                          hint="the VIP fails over only while etcd keeps its quorum, which takes three control "
                               "planes; with fewer, keep topology: single")
    return topology


def _cert_manager(top: _Section, topology: str, traefik: Traefik) -> CertManager:
    s = top.section("cert_manager")
    cm = CertManager(
        namespace=s.str("namespace", "cert-manager", rule=_not_system_namespace),
        release=s.str("release", "cert-manager", rule=lambda v: check.dns_subdomain(v, 53)),
        chart=s.str("chart", "jetstack/cert-manager", rule=_chart_ref),
        repo_url=s.str("repo_url", "https://charts.jetstack.io", rule=check.url),
        chart_version=s.str("chart_version", "v1.21.1", rule=check.semver),
        wait_timeout_s=s.number("wait_timeout_s", 300.0, high=3600),
    )
    s.done()
    if topology == "ha" and traefik.acme.challenge == "tls":
        raise ConfigError("traefik.acme.challenge", "'tls' cannot be used with topology: ha: cert-manager "
                          "solves ACME with HTTP-01 or DNS-01, never TLS-ALPN-01",
                          hint="use challenge: http (Let's Encrypt reaches the VIP on port 80)")
    if topology == "ha" and cm.namespace == traefik.namespace:
        raise ConfigError("cert_manager.namespace", f"'{cm.namespace}' is Traefik's namespace, which labup "
                          "labels privileged: cert-manager needs no such rights",
                          hint="keep cert-manager in a namespace of its own (default cert-manager)")
    return cm


def _verify(top: _Section) -> Verify:
    s = top.section("verify")
    v = Verify(timeout_s=s.number("timeout_s", 5.0, high=300),
               ca_file=s.path_value("ca_file", must_exist=True))
    s.done()
    return v


def _backup(top: _Section) -> Backup:
    s = top.section("backup")
    b = Backup(keep=s.number("keep", 10, integer=True, high=1000), in_cluster=s.bool("in_cluster", False))
    s.done()
    return b


def _retry(top: _Section) -> Retry:
    s = top.section("retry")
    r = Retry(attempts=s.number("attempts", 5, integer=True, high=50),
              initial_s=s.number("initial_s", 1.0, high=600),
              max_s=s.number("max_s", 20.0, high=3600),
              total_s=s.number("total_s", 120.0, high=86_400))
    s.done()
    return r


def _keys_of(cls: type) -> frozenset[str]:
    from dataclasses import fields

    return frozenset(f.name for f in fields(cls)) - {"source"}


def _unknown_keys(data: dict[Any, Any]) -> list[tuple[str, list[str]]]:
    """Every key lab.yaml does not know, anywhere, with its close matches: checked before any value,
    so a typo (`traefk:`) is named as such rather than as the key it hides being "required"."""
    sections: dict[str, type] = {"vip": Vip, "talos": Talos, "kubernetes": Kubernetes, "helm": Helm,
                                 "traefik": Traefik, "verify": Verify, "retry": Retry, "backup": Backup,
                                 "cert_manager": CertManager}
    found: list[tuple[str, list[str]]] = []

    def visit(mapping: Any, where: str, known: frozenset[str]) -> None:
        if not isinstance(mapping, dict):
            return
        for key in mapping:
            if key not in known:
                path = f"{where}.{key}" if where else str(key)
                found.append((path, difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.6)))

    visit(data, "", _keys_of(Lab))
    for name, cls in sections.items():
        visit(data.get(name), name, _keys_of(cls))
    traefik = data.get("traefik")
    if isinstance(traefik, dict):
        visit(traefik.get("acme"), "traefik.acme", _keys_of(Acme))
    nodes = data.get("nodes")
    for i, node in enumerate(nodes if isinstance(nodes, list) else []):
        visit(node, f"nodes[{i}]", _keys_of(Node))
    return found


def parse(data: Any, source: Path) -> Lab:
    """Turn parsed YAML into a Lab, or raise ConfigError naming the first bad field (unknown keys
    first, all of them at once)."""
    if data is None:
        raise ConfigError("", f"{source}: is empty", hint="start from `labup init`")
    if isinstance(data, dict):
        unknown = _unknown_keys(data)
        if unknown:
            def short(path: str) -> str:  # a key may be a whole line of some other file (-c /etc/shadow)
                return path if len(path) <= 40 else path[:37] + "..."

            first = short(unknown[0][0])
            more = [short(p) for p, _ in unknown[1:6]] + ([f"{len(unknown) - 6} more"] if len(unknown) > 6 else [])
            others = f" (and {', '.join(more)})" if more else ""
            hints = [f"'{short(p)}': did you mean '{g[0]}'?" for p, g in unknown[:6] if g]
            raise ConfigError(first, f"unknown key{others}", hint="; ".join(hints) or None)
        left = placeholders(data)
        if left:  # all at once: `labup init` wrote them, the user fills them in one go
            more = f" (and {', '.join(left[1:])})" if len(left) > 1 else ""
            raise ConfigError(left[0], f"is still the {PLACEHOLDER} placeholder{more}",
                              hint="labup init wrote a placeholder where it had no fact: put your lab's value "
                                   "in each")
    top = _Section(data, "", source.parent)
    name = top.str("name", "lab", rule=check.dns_label)
    nodes = _nodes(top)
    vip = _vip(top, nodes)
    topology = _topology(top, nodes)
    traefik = _traefik(top)
    lab = Lab(name=name, nodes=nodes, vip=vip, talos=_talos(top, nodes, vip),
              kubernetes=_kubernetes(top), helm=_helm(top), traefik=traefik,
              verify=_verify(top), retry=_retry(top), source=source, backup=_backup(top),
              topology=topology, cert_manager=_cert_manager(top, topology, traefik))
    top.done()
    return lab


PLACEHOLDER = "CHANGE-ME"  # what `labup init` writes where it had no fact; never valid


def placeholders(data: Any, where: str = "") -> list[str]:
    """The paths of every value that is still PLACEHOLDER (any case: init names a node `change-me`), in
    file order. Whole values only: `exchange-media.example.net` is no placeholder."""
    if isinstance(data, dict):
        return [p for k, v in data.items() for p in placeholders(v, f"{where}.{k}" if where else str(k))]
    if isinstance(data, list):
        return [p for i, v in enumerate(data) for p in placeholders(v, f"{where}[{i}]")]
    return [where] if isinstance(data, str) and data.strip().lower() == PLACEHOLDER.lower() else []


def default_path() -> Path:
    return Path(os.environ.get("LABUP_CONFIG") or "lab.yaml")


def lab_identity(source: Path, name: str) -> str:
    """Which lab a journal entry belongs to: the lab file's real path and the lab's name."""
    import hashlib

    return hashlib.sha256(f"{source.resolve()}\0{name}".encode()).hexdigest()[:16]


def load(path: Path) -> Lab:
    """Load and validate lab.yaml; never runs anything."""
    from labup.yamlsafe import load_file

    try:
        return parse(load_file(path), path.absolute())
    except ConfigError as exc:
        if not exc.message.startswith(str(path)):  # say which file (it may not be called lab.yaml)
            raise ConfigError("", f"{path}: {exc.message}", hint=exc.hint) from None
        raise
