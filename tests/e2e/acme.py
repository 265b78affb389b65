"""Traefik's ACME behaviour for the stand-in, as Traefik v3.7 decides it (read in its source):

- pkg/provider/acme/provider.go `watchNewDomains` (v3.7.9) asks the resolver for names found on
  routers whose TLS names that resolver (an Ingress on `websecure` inherits the entry point's
  `http.tls.certResolver`), and for the `defaultGeneratedCert.domain` of a TLS store whose
  `defaultGeneratedCert.resolver` is that resolver; nothing else. Entry-point `tls.domains` alone
  request nothing (pkg/server/aggregator.go applies them per router only).
- Until a certificate exists, pkg/tls/tlsmanager.go serves its generated "TRAEFIK DEFAULT CERT".
- A failed order is logged as `ERR Unable to obtain ACME certificate for domain(s)` with lego's
  `acme: error: <status> :: <method> :: <url> :: <urn> :: <detail>` (go-acme/lego acme/errors.go).

`AcmeSim` watches, as Traefik does: for every running Traefik pod it re-reads the emulator (TLSStore
objects, Ingresses) and the pod's arguments (the chart renders `--certificatesresolvers.NAME.acme.*`
and the entry points' TLS settings) until the domain is requested; then, after `delay_s`, the order
"succeeds" (a flag file tells the pod's stand-in to serve the ACME certificate) or, with `failure`
set, Traefik's error line is written to the pod's log in the emulator.

The ACME store is Traefik's own file (e2e/acmestore.py, pkg/provider/acme): on a hostPath volume it
is `<files_dir>/<node address>/<hostPath>/acme.json`, the node's disk the talosctl simulator reads
(`talosctl read /var/mnt/traefik/acme.json`). A pod starting reads it as Traefik does: a mode with
group/other bits, or a file that is not a store, is logged and the resolver skipped (no certificate
ever); an empty file or `{}` is a new account; a stored certificate for the domain is served at once,
with no order (renewed first when it expires within the renew period, or cannot be loaded). Each
order is counted in `orders`; a success writes the account and the certificate (test CA) back.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from . import acmestore
from .background import Background
from .podfs import PodDisk
from kubeemu.cluster import PodOnNode
from kubeemu.server import KubeEmulator
from netlab import CertSet, Issued
from talos_sim import nodefs

PRODUCTION_CA = "https://acme-v02.api.letsencrypt.org/directory"
STAGING_CA = "https://acme-staging-v02.api.letsencrypt.org/directory"
_STAMP = "2026-12-04T10:00:00Z"
# one line per failure kind, in Traefik's default console format (zerolog: error first, fields sorted)
FAILURES = {
    "rate-limit": ('error="unable to generate a certificate for the domains [{d}]: acme: error: 429 :: POST :: '
                   'https://acme-v02.api.letsencrypt.org/acme/new-order :: urn:ietf:params:acme:error:rateLimited '
                   ':: too many certificates (5) already issued for this exact set of identifiers in the last '
                   '168h0m0s, retry after 2026-12-05 09:12:34 UTC: see https://letsencrypt.org/docs/rate-limits/"'),
    "connection": ('error="unable to generate a certificate for the domains [{d}]: resolver: one or more domains '
                   'had a problem: [{d}: invalid authorization: acme: error: 400 :: '
                   'urn:ietf:params:acme:error:connection :: 203.0.113.10: Timeout during connect (likely '
                   'firewall problem)]"'),
    "dns": ('error="unable to generate a certificate for the domains [{d}]: resolver: one or more domains had a '
            'problem: [{d}: invalid authorization: acme: error: 400 :: urn:ietf:params:acme:error:dns :: DNS '
            'problem: NXDOMAIN looking up A for {d} - check that a DNS record exists for this domain]"'),
    "unauthorized": ('error="unable to generate a certificate for the domains [{d}]: resolver: one or more '
                     'domains had a problem: [{d}: invalid authorization: acme: error: 403 :: '
                     'urn:ietf:params:acme:error:unauthorized :: 203.0.113.10: Invalid response from '
                     'http://{d}/.well-known/acme-challenge/x: 404]"'),
    "contact": ('error="cannot get ACME client acme: error: 400 :: POST :: '
                'https://acme-v02.api.letsencrypt.org/acme/new-acct :: urn:ietf:params:acme:error:invalidContact '
                ':: contact email has forbidden domain \\"example.com\\""'),
}


@dataclass(frozen=True)
class Issuance:
    """What the stand-in serves: Traefik's default certificate, then the ACME one once `flag` exists."""

    default: Issued
    issued: Issued | None
    flag: Path


@dataclass
class _Resolver:
    """One certificate resolver of one Traefik process, after its Init succeeded."""

    name: str
    store: acmestore.LocalStore
    email: str
    ca: str
    renew_period_s: float


@dataclass
class _Watched:
    pod: PodOnNode
    flag: Path
    resolvers: dict[str, _Resolver] = field(default_factory=dict)  # the resolvers Traefik kept
    renew: str | None = None  # resolver whose stored certificate for the domain is renewed at start
    requested_at: float | None = None
    done: bool = False
    from_secret: Issued | None = None  # topology ha: the files the default TLS store's Secret is served from


class AcmeSim(Background):
    """Traefik's ACME side for the stand-in. acme.json is a real file on the node's disk when the
    resolver's storage is on a hostPath volume (`<files_dir>/<node address>/<hostPath>/acme.json`,
    which `talosctl read` returns), else in the pod's own filesystem (gone with the pod)."""

    def __init__(self, emu: KubeEmulator, certs: CertSet, domain: str, folder: Path,
                 files_dir: Path | None = None, addresses: dict[str, str] | None = None) -> None:
        self.emu, self.certs, self.domain, self.folder = emu, certs, domain, folder
        self.files_dir = files_dir  # the talosctl simulator's Lab.files_dir (None: no node disks)
        self.addresses = dict(addresses or {})  # Kubernetes node name -> address (else its InternalIP)
        self.failure: str | None = None  # a key of FAILURES: Let's Encrypt refuses instead of issuing
        self.delay_s = 0.5  # how long an order takes
        self.issued: list[str] = []  # pods that got their certificate, in order
        # every order Traefik placed with Let's Encrypt (renewals and refused ones too): (node, domain, time.time())
        self.orders: list[tuple[str, str, float]] = []
        self._pods: dict[str, _Watched] = {}
        self._account_key: rsa.RSAPrivateKey | None = None
        self.errors: list[str] = []
        self._lock = threading.RLock()
        super().__init__("acme-sim")

    def start(self) -> AcmeSim:
        self.folder.mkdir(parents=True, exist_ok=True)
        super().start()
        return self

    # -- where the files are --------------------------------------------------------------------

    def address_of(self, node: str) -> str | None:
        if node in self.addresses:
            return self.addresses[node]
        obj = self.emu.find("v1", "Node", node) or {}
        found = [a.get("address") for a in (obj.get("status") or {}).get("addresses") or []
                 if a.get("type") == "InternalIP"]
        return str(found[0]) if found else None

    def acme_file(self, node: str, folder: str = "/var/mnt/traefik", name: str = "acme.json") -> Path:
        """The host file of `<folder>/<name>` on `node`'s disk (a Kubernetes node name or address)."""
        if self.files_dir is None:
            raise RuntimeError("AcmeSim was given no files_dir: acme.json is not on any disk")
        address = self.address_of(node) or node
        found = nodefs.host_path(str(self.files_dir), address, f"{folder.rstrip('/')}/{name}")
        if found is None:
            raise ValueError(f"{folder}/{name} is outside the node's disk")
        return Path(found)

    def _disk(self, pod: PodOnNode) -> PodDisk | None:
        address = self.address_of(pod.node)
        if self.files_dir is None or address is None:
            return None
        return PodDisk(self.files_dir, address, pod.obj, self.folder / pod.uid,
                       secret=lambda name: self.emu.find("v1", "Secret", name, pod.namespace))

    # -- a Traefik pod starts -------------------------------------------------------------------

    def decide(self, pod: PodOnNode) -> Issuance:
        """Called when a Traefik pod starts: its init containers run (e2e/podfs.py), each resolver
        loads its store (refused files are logged, that resolver skipped); a stored certificate for
        the domain is served at once, with no order (wall 7); otherwise the default one until an
        order succeeds."""
        flag = self.folder / f"{pod.uid}.issued"
        self.emu.append_log(pod.namespace, pod.name, f"{_STAMP} INF Traefik version 3.7.11 built on unknown")
        watched = _Watched(pod, flag)
        issued = self.certs.good
        if not _resolver_args(pod.obj):  # no built-in ACME (topology ha): the default TLS store's Secret
            watched.from_secret = Issued(self.certs.good.cert, self.certs.good.key,
                                         self.folder / f"{pod.uid}-secret.crt", self.folder / f"{pod.uid}-secret.key")
            with self._lock:
                self._pods[pod.uid] = watched
            return Issuance(self.certs.traefik_default, watched.from_secret, flag)
        with self._lock:
            disk = self._disk(pod)
            if disk is not None:
                disk.prepare_volumes()
                # a failing init container would keep the pod from starting: the lab cannot, so it says so
                self.errors += [f"{pod.name}: {e}" for e in disk.run_init_containers()]
            watched.resolvers = self._init_resolvers(pod, disk)
            stored = self._stored_certificate(watched.resolvers)
            if stored is not None:
                resolver, entry = stored
                leaf, served = self._servable(pod.uid, entry)
                if leaf is None or _expires_within(leaf, resolver.renew_period_s):
                    watched.renew = resolver.name  # renewCertificates runs as the provider starts
                if served is not None:
                    issued = served
                    flag.touch()
                watched.done = watched.renew is None
            self._pods[pod.uid] = watched
        return Issuance(self.certs.traefik_default, issued, flag)

    def forget(self, pod: PodOnNode) -> None:
        with self._lock:
            self._pods.pop(pod.uid, None)

    def _init_resolvers(self, pod: PodOnNode, disk: PodDisk | None) -> dict[str, _Resolver]:
        """cmd/traefik initACMEProvider: one LocalStore per storage path, each resolver's Init reads it;
        an error skips the resolver (logged), as `The ACME resolve is skipped from the resolvers list`."""
        args = _args(pod.obj)
        options: dict[str, dict[str, str]] = {}
        for a in args:
            if m := re.match(r"--certificatesresolvers\.([^.]+)\.acme\.([^=]+)=(.*)$", a, re.IGNORECASE):
                options.setdefault(m.group(1), {})[m.group(2).lower()] = m.group(3)
        traefik = disk.container("traefik") if disk is not None else None
        stores: dict[str, acmestore.LocalStore | str] = {}  # storage path -> store, or why it is unusable
        kept: dict[str, _Resolver] = {}
        for name in sorted(options):
            opts = options[name]
            storage = opts.get("storage", "acme.json")
            if storage not in stores:
                host = disk.host_file(traefik, storage) if disk is not None and traefik is not None else None
                try:
                    data = acmestore.check_and_load(storage, host) if host is not None else {}
                    stores[storage] = acmestore.LocalStore(storage, host, data)
                except acmestore.StoreError as exc:
                    stores[storage] = str(exc)
            store = stores[storage]
            if isinstance(store, str):
                self.emu.append_log(pod.namespace, pod.name,
                                    f'{_STAMP} ERR The ACME resolve is skipped from the resolvers list '
                                    f'error={_go_quote("unable to get ACME account: " + store)} resolver={name}')
                continue
            ca = opts.get("caserver", PRODUCTION_CA)
            account = (store.data.get(name) or {}).get("Account")
            if account and not acmestore.account_matches(account, ca):
                self.emu.append_log(pod.namespace, pod.name,
                                    f"{_STAMP} INF Account URI does not match the current CAServer. The account "
                                    f"will be reset. providerName={name}.acme")
                store.data[name]["Account"] = None
            hours = int(opts.get("certificatesduration", "2160") or 2160)
            kept[name] = _Resolver(name, store, opts.get("email", ""), ca, _renew_period_s(hours))
        return kept

    def _stored_certificate(self, resolvers: dict[str, _Resolver]) -> tuple[_Resolver, dict[str, Any]] | None:
        for name in sorted(resolvers):
            resolver = resolvers[name]
            for entry in (resolver.store.data.get(name) or {}).get("Certificates") or []:
                if entry and self.domain in acmestore.entry_names(entry):
                    return resolver, entry
        return None

    def _servable(self, uid: str, entry: dict[str, Any]) -> tuple[x509.Certificate | None, Issued | None]:
        """The stored leaf (None: unreadable, so renewCertificates renews it at start) and the pair as
        the stand-in's files (None: Traefik's TLS manager cannot load chain and key together, and
        serves its default certificate; a readable leaf that is not expiring is not renewed)."""
        chain, key_pem = acmestore.entry_bytes(entry, "certificate"), acmestore.entry_bytes(entry, "key")
        try:
            leaf = x509.load_pem_x509_certificates(chain)[0]
        except (ValueError, IndexError):
            return None, None
        try:
            key = serialization.load_pem_private_key(key_pem, password=None)
        except (ValueError, TypeError):
            return leaf, None
        if key.public_key() != leaf.public_key():
            return leaf, None
        cert_path, key_path = self.folder / f"{uid}-stored.crt", self.folder / f"{uid}-stored.key"
        cert_path.write_bytes(chain)
        key_path.write_bytes(key_pem)
        key_path.chmod(0o600)
        return leaf, Issued(leaf, cast(Any, key), cert_path, key_path)

    # -- Traefik watching -----------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            with self._lock:
                watched = [w for w in self._pods.values() if not w.done]
            for w in watched:
                try:
                    self._step(w)
                except Exception as exc:  # reported through .errors: the lab's close() asserts it is empty
                    w.done = True
                    self.errors.append(f"{w.pod.name}: {exc!r}")

    def _step(self, w: _Watched) -> None:
        if w.from_secret is not None:
            self._serve_secret(w, w.from_secret)
            return
        args = _args(w.pod.obj)
        requester = "s"
        if w.renew is not None:
            resolver = w.resolvers[w.renew]
        else:
            for name in sorted(w.resolvers):
                names, requester = self.requested(args, {name})
                if self.domain in names:
                    resolver = w.resolvers[name]
                    break
            else:
                return  # Traefik has nothing to ask for (yet): it keeps serving its default certificate
        now = time.monotonic()
        if w.requested_at is None:
            w.requested_at = now
        if now - w.requested_at < self.delay_s:
            return
        self._key()  # made outside the lock: pod hooks (API requests) wait on it
        with self._lock:
            if self._pods.get(w.pod.uid) is not w:
                return  # the pod went meanwhile
            w.done = True
            self.orders.append((w.pod.node, self.domain, time.time()))
            if self.failure is None:
                self._save(resolver, certificate=True)
                w.flag.touch()
                self.issued.append(w.pod.name)
                return
            if self.failure != "contact":  # the account was registered before the order failed
                self._save(resolver, certificate=False)
        error = FAILURES[self.failure].format(d=self.domain)
        self.emu.append_log(w.pod.namespace, w.pod.name,
                            f"{_STAMP} ERR Unable to obtain ACME certificate for domain{requester} {error} "
                            f"ACME CA={resolver.ca} acmeCA={resolver.ca} domains=[\"{self.domain}\"] "
                            f"providerName={resolver.name}.acme")

    def _serve_secret(self, w: _Watched, files: Issued) -> None:
        """Traefik's kubernetesCRD provider: the TLSStore "default" names a Secret (defaultCertificate);
        once that Secret holds tls.crt and tls.key, they are what Traefik serves."""
        import base64

        tlsstores = self.emu.registry.lookup("traefik.io", "v1alpha1", "tlsstores")
        store = self.emu.store.find(tlsstores, w.pod.namespace, "default") if tlsstores else None
        name = (((store or {}).get("spec") or {}).get("defaultCertificate") or {}).get("secretName")
        secret = self.emu.find("v1", "Secret", name, w.pod.namespace) if name else None
        data = (secret or {}).get("data") or {}
        if "tls.crt" not in data or "tls.key" not in data:
            return
        files.cert_path.write_bytes(base64.b64decode(data["tls.crt"]))
        files.key_path.write_bytes(base64.b64decode(data["tls.key"]))
        files.key_path.chmod(0o600)
        w.flag.touch()
        w.done = True
        self.issued.append(w.pod.name)

    def _save(self, resolver: _Resolver, *, certificate: bool) -> None:
        """SaveAccount / SaveCertificates: the resolver's data replaced, the whole file rewritten."""
        data = resolver.store.data
        stored = data.get(resolver.name) or {"Account": None, "Certificates": None}
        if not stored.get("Account"):
            stored["Account"] = acmestore.new_account(resolver.email, resolver.ca, self._key())
        if certificate:
            # addCertificateForDomain: the entry for the same domains is replaced, others kept
            kept = [c for c in stored.get("Certificates") or [] if acmestore.entry_names(c) != [self.domain]]
            stored["Certificates"] = [*kept, acmestore.certificate_entry(self.domain, self.certs.good,
                                                                         [self.certs.ca])]
        data[resolver.name] = stored
        if resolver.store.disk is not None:
            acmestore.write(resolver.store.disk, data)

    def _key(self) -> rsa.RSAPrivateKey:
        """The account key: Traefik makes an RSA 4096 one per new account; one 2048-bit key per lab
        here (generating 4096-bit keys costs seconds on a loaded machine)."""
        if self._account_key is None:
            self._account_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return self._account_key

    def requested(self, args: list[str], resolvers: set[str]) -> tuple[set[str], str]:
        """The names Traefik asks ACME for, and the wording of its log line for them."""
        names: set[str] = set()
        requester = "s"
        tlsstores = self.emu.registry.lookup("traefik.io", "v1alpha1", "tlsstores")
        for store in self.emu.store.list(tlsstores)[0] if tlsstores else []:
            generated = (store.get("spec") or {}).get("defaultGeneratedCert") or {}
            domain = generated.get("domain") or {}
            if store["metadata"]["name"] == "default" and generated.get("resolver") in resolvers and domain.get("main"):
                names |= {domain["main"], *(domain.get("sans") or [])}
                requester = ""  # the default-store path logs "for domain" (provider.go resolveDefaultCertificate)
        entry_resolver = {m.group(1): m.group(2) for a in args
                          if (m := re.match(r"--entryPoints\.([^.]+)\.http\.tls\.certResolver=(.+)$", a))}
        ingresses = self.emu.registry.lookup("networking.k8s.io", "v1", "ingresses")
        if entry_resolver.get("websecure") in resolvers:
            for ing in self.emu.store.list(ingresses)[0] if ingresses else []:
                names |= {r["host"] for r in (ing.get("spec") or {}).get("rules") or [] if r.get("host")}
        return names, requester


def _resolver_args(pod: dict[str, Any]) -> list[str]:
    return [a for a in _args(pod) if a.lower().startswith("--certificatesresolvers.")]


def _args(pod: dict[str, Any]) -> list[str]:
    containers = (pod.get("spec") or {}).get("containers") or []
    return [str(a) for c in containers if c.get("name") == "traefik" for a in c.get("args") or []]


def _renew_period_s(hours: int) -> float:
    """provider.go getCertificateRenewDurations: how long before notAfter a certificate is renewed."""
    day = 86400.0
    for at_least_h, period in ((365 * 24, 120 * day), (90 * 24, 30 * day), (30 * 24, 10 * day),
                               (6 * 24, 2 * day), (24, 0.25 * day)):
        if hours >= at_least_h:
            return period
    return 20 * 60.0


def _expires_within(leaf: x509.Certificate, seconds: float) -> bool:
    return leaf.not_valid_after_utc.timestamp() < time.time() + seconds


def _go_quote(text: str) -> str:
    """zerolog's console writer quotes a field value as strconv.Quote does (close enough: JSON's)."""
    return json.dumps(text, ensure_ascii=False)
