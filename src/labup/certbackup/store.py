"""Traefik's ACME store (acme.json), read and judged without ever showing a key.

The layout, as Traefik v3 writes it (pkg/provider/acme/store.go, account.go, provider.go): one entry per
resolver, `{"<resolver>": {"Account": {"Email", "Registration", "PrivateKey"}, "Certificates": [{"domain":
{"main", "sans"}, "certificate": base64(PEM chain, leaf first), "key": base64(PEM key), "Store"}]}}`.
An empty file or `{}` is a store without data (Traefik registers a new account). Let's Encrypt's staging
certificates are issued by intermediates named "(STAGING) ..." (letsencrypt.org staging environment).

Every failure names the resolver and the certificate by position, never quotes the file: it holds the
account's private key and every certificate's key.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from labup.checks.certinfo import STAGING_MARK

MAX_BYTES = 1024 * 1024  # a Kubernetes Secret holds at most 1 MiB: a bigger store could not be carried over


class InvalidStore(ValueError):
    """Not a Traefik ACME store labup can use; the message says why, never what the file holds."""


@dataclass(frozen=True)
class CertInfo:
    resolver: str
    main: str
    sans: tuple[str, ...]
    issuer: str  # the issuing CA's common name (or organisation)
    staging: bool
    not_before: datetime
    not_after: datetime
    store: str

    @property
    def domains(self) -> tuple[str, ...]:
        return (self.main, *[s for s in self.sans if s != self.main])

    def days_left(self, now: datetime | None = None) -> int:
        return int((self.not_after - (now or datetime.now(UTC))).total_seconds() // 86400)

    def as_dict(self, now: datetime | None = None) -> dict[str, Any]:
        return {"resolver": self.resolver, "domains": list(self.domains), "issuer": self.issuer,
                "staging": self.staging, "not_before": self.not_before.isoformat(),
                "not_after": self.not_after.isoformat(), "days_left": self.days_left(now), "store": self.store}


@dataclass(frozen=True)
class AcmeStore:
    resolvers: dict[str, str | None] = field(default_factory=dict)  # name -> the account's email
    certificates: tuple[CertInfo, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.certificates


def describe(certs: tuple[CertInfo, ...] | list[CertInfo]) -> str:
    """One line for people: each certificate's names, issuer, staging or production, days left (the
    names come from a file: print it through ui.clean)."""
    parts = [f"{', '.join(c.domains)} ({c.issuer}, {'staging' if c.staging else 'production'}, "
             f"{c.days_left()} days left)" for c in certs]
    return "; ".join(parts) if parts else "no certificate"


def parse(data: bytes, *, resolver: str | None = None) -> AcmeStore:
    """Judge `data` as an acme.json. resolver: the one lab.yaml configures; it must be in the store
    (an empty store has none yet and passes)."""
    if len(data) > MAX_BYTES:
        raise InvalidStore(f"it is {len(data)} bytes; an ACME store over {MAX_BYTES} bytes (1 MiB, a Kubernetes "
                           "Secret's limit) is not one Traefik wrote for a homelab")
    if not data.strip():
        return AcmeStore()
    try:
        doc = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidStore("it is not text (UTF-8): not an acme.json") from None
    except (json.JSONDecodeError, RecursionError) as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise InvalidStore(f"it is not JSON{where}: truncated, or not an acme.json") from None
    if not isinstance(doc, dict):
        raise InvalidStore("its top level is not a JSON object of resolvers")
    resolvers: dict[str, str | None] = {}
    certs: list[CertInfo] = []
    for name, entry in doc.items():
        if not isinstance(entry, dict) or not ({"Account", "Certificates"} & set(entry)):
            raise InvalidStore(f"its entry {name!r} is not a resolver's (no Account or Certificates)")
        resolvers[name] = _email(entry.get("Account"), name)
        for index, cert in enumerate(entry.get("Certificates") or []):
            certs.append(_certificate(cert, name, index))
    if resolver is not None and resolvers and resolver not in resolvers:
        raise InvalidStore(f"it holds resolver(s) {', '.join(sorted(resolvers))}, not {resolver!r} "
                           "(traefik.acme.resolver): another lab's store, or the resolver was renamed")
    return AcmeStore(resolvers, tuple(certs))


def _email(account: Any, resolver: str) -> str | None:
    if account is None:
        return None
    if not isinstance(account, dict):
        raise InvalidStore(f"resolver {resolver!r}: its Account is not an object")
    key = account.get("PrivateKey")
    if key is not None and not _is_base64(key):
        raise InvalidStore(f"resolver {resolver!r}: its account's PrivateKey is not base64")
    email = account.get("Email")
    return str(email) if isinstance(email, str) else None


def _certificate(entry: Any, resolver: str, index: int) -> CertInfo:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import NameOID

    where = f"resolver {resolver!r}, certificate #{index + 1}"
    if not isinstance(entry, dict):
        raise InvalidStore(f"{where}: not an object")
    domain = entry.get("domain")
    if not isinstance(domain, dict) or not isinstance(domain.get("main"), str) or not domain["main"]:
        raise InvalidStore(f"{where}: no domain.main")
    sans = domain.get("sans") or []
    if not isinstance(sans, list) or not all(isinstance(s, str) for s in sans):
        raise InvalidStore(f"{where} ({domain['main']}): domain.sans is not a list of names")
    where = f"{where} ({domain['main']})"
    chain = _pem(entry.get("certificate"), f"{where}: its certificate")
    key_pem = _pem(entry.get("key"), f"{where}: its key")
    try:
        leaf = x509.load_pem_x509_certificates(chain)[0]
    except ValueError:
        raise InvalidStore(f"{where}: its certificate is not a PEM certificate chain") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise InvalidStore(f"{where}: its key is not an unencrypted PEM private key") from None
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(serialization.Encoding.DER, public) != \
            leaf.public_key().public_bytes(serialization.Encoding.DER, public):
        raise InvalidStore(f"{where}: its key does not belong to its certificate")
    issuer = _name(leaf.issuer, NameOID.COMMON_NAME) or _name(leaf.issuer, NameOID.ORGANIZATION_NAME) or "?"
    staging = any(STAGING_MARK in (_name(leaf.issuer, oid) or "")
                  for oid in (NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME))
    return CertInfo(resolver, domain["main"], tuple(sans), issuer, staging, leaf.not_valid_before_utc,
                    leaf.not_valid_after_utc, str(entry.get("Store") or "default"))


def _pem(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise InvalidStore(f"{what} is missing")
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidStore(f"{what} is not base64") from None
    if b"-----BEGIN " not in decoded:
        raise InvalidStore(f"{what} is not PEM")
    return decoded


def _is_base64(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _name(name: Any, oid: Any) -> str | None:
    found = name.get_attributes_for_oid(oid)
    return str(found[0].value) if found else None


def certificate_pair(data: bytes, resolver: str, domains: tuple[str, ...],
                     staging: bool) -> tuple[CertInfo, bytes, bytes] | None:
    """From an acme.json: the newest certificate of `resolver` naming exactly `domains` (staging or
    production as asked), with its PEM chain and key, or None. `data` must have passed parse()."""
    doc = json.loads(data.decode("utf-8")) if data.strip() else {}
    found: list[tuple[CertInfo, bytes, bytes]] = []
    for index, entry in enumerate((doc.get(resolver) or {}).get("Certificates") or []):
        info = _certificate(entry, resolver, index)
        if set(info.domains) == set(domains) and info.staging == staging:
            found.append((info, _pem(entry.get("certificate"), "certificate"), _pem(entry.get("key"), "key")))
    return max(found, key=lambda f: f[0].not_before) if found else None
