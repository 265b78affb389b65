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
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .background import Background
from kubeemu.cluster import PodOnNode
from kubeemu.server import KubeEmulator
from netlab import CertSet, Issued

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
class _Watched:
    pod: PodOnNode
    flag: Path
    requested_at: float | None = None
    done: bool = False


class AcmeSim(Background):
    def __init__(self, emu: KubeEmulator, certs: CertSet, domain: str, folder: Path) -> None:
        self.emu, self.certs, self.domain, self.folder = emu, certs, domain, folder
        self.failure: str | None = None  # a key of FAILURES: Let's Encrypt refuses instead of issuing
        self.delay_s = 0.5  # how long an order takes
        self.issued: list[str] = []  # pods that got their certificate, in order
        self._pods: dict[str, _Watched] = {}
        # acme.json files on the nodes' disks: (node, hostPath folder) -> domains with a certificate
        self._disk: dict[tuple[str, str], set[str]] = {}
        self._lock = threading.Lock()
        super().__init__("acme-sim")

    def start(self) -> AcmeSim:
        self.folder.mkdir(parents=True, exist_ok=True)
        super().start()
        return self

    def decide(self, pod: PodOnNode) -> Issuance:
        """Called when a Traefik pod starts: it serves the default certificate until its order succeeds."""
        flag = self.folder / f"{pod.uid}.issued"
        self.emu.append_log(pod.namespace, pod.name, f"{_STAMP} INF Traefik version 3.7.11 built on unknown")
        watched = _Watched(pod, flag)
        with self._lock:
            if self.domain in self._disk.get(_storage(pod.obj) or ("", ""), set()):
                # wall 7: acme.json on the node's disk already holds it; Traefik loads it at start
                flag.touch()
                watched.done = True
            self._pods[pod.uid] = watched
        return Issuance(self.certs.traefik_default, self.certs.good, flag)

    def forget(self, pod: PodOnNode) -> None:
        with self._lock:
            self._pods.pop(pod.uid, None)

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            with self._lock:
                watched = [w for w in self._pods.values() if not w.done]
            for w in watched:
                self._step(w)

    def _step(self, w: _Watched) -> None:
        args = _args(w.pod.obj)
        resolvers = {m.group(1) for a in args if (m := re.match(r"--certificatesresolvers\.([^.]+)\.acme\.", a))}
        names, requester = self.requested(args, resolvers)
        if self.domain not in names:
            return  # Traefik has nothing to ask for (yet): it keeps serving its default certificate
        now = time.monotonic()
        if w.requested_at is None:
            w.requested_at = now
        if now - w.requested_at < self.delay_s:
            return
        w.done = True
        if self.failure is None:
            where = _storage(w.pod.obj)
            if where is not None:  # an emptyDir (or no storage) forgets it with the pod
                with self._lock:
                    self._disk.setdefault(where, set()).add(self.domain)
            w.flag.touch()
            self.issued.append(w.pod.name)
            return
        ca = STAGING_CA if any(a.lower().endswith(f"caserver={STAGING_CA}") for a in args) else PRODUCTION_CA
        error = FAILURES[self.failure].format(d=self.domain)
        self.emu.append_log(w.pod.namespace, w.pod.name,
                            f"{_STAMP} ERR Unable to obtain ACME certificate for domain{requester} {error} "
                            f"ACME CA={ca} acmeCA={ca} domains=[\"{self.domain}\"] "
                            f"providerName={sorted(resolvers)[0]}.acme")

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


def _args(pod: dict[str, Any]) -> list[str]:
    containers = (pod.get("spec") or {}).get("containers") or []
    return [str(a) for c in containers if c.get("name") == "traefik" for a in c.get("args") or []]


def _storage(pod: dict[str, Any]) -> tuple[str, str] | None:
    """(node, hostPath folder) where the resolver's acme.json lives, or None when it is not on the
    node's disk (the chart's default emptyDir, or no storage argument)."""
    spec = pod.get("spec") or {}
    storage = next((a.split("=", 1)[1] for a in _args(pod)
                    if re.match(r"--certificatesresolvers\.[^.]+\.acme\.storage=", a)), None)
    if storage is None or not spec.get("nodeName"):
        return None
    folder = storage.rsplit("/", 1)[0] or "/"
    mounts = [m for c in spec.get("containers") or [] if c.get("name") == "traefik"
              for m in c.get("volumeMounts") or []]
    volume = next((m["name"] for m in mounts if m.get("mountPath") == folder), None)
    for v in spec.get("volumes") or []:
        if v.get("name") == volume and v.get("hostPath"):
            return str(spec["nodeName"]), str(v["hostPath"]["path"])
    return None
