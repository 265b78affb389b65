"""The few facts https-cert needs from a certificate, parsed from DER with `cryptography`.

Parsing is needed precisely when the certificate does NOT verify (Traefik's default cert, a staging
cert): the stdlib only decodes verified peers (or through a private API), hence the dependency.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass

TRAEFIK_DEFAULT_CN = "TRAEFIK DEFAULT CERT"
TRAEFIK_DEFAULT_SUFFIX = ".traefik.default"  # the SANs of Traefik's generated default certificate
STAGING_MARK = "(STAGING)"  # Let's Encrypt staging issuers: "(STAGING) Let's Encrypt", "(STAGING) ... R11"


@dataclass(frozen=True)
class CertInfo:
    subject: str  # RFC 4514 string
    subject_cn: str | None
    issuer: str
    issuer_cn: str | None
    names: tuple[str, ...]  # DNS and IP subjectAltNames (the CN when there are none)
    not_after: dt.datetime  # UTC
    self_signed: bool
    not_before: dt.datetime | None = None  # UTC: when it was issued

    def days_left(self, now: dt.datetime | None = None) -> float:
        now = now or dt.datetime.now(dt.UTC)
        return (self.not_after - now).total_seconds() / 86_400

    @property
    def is_traefik_default(self) -> bool:
        return self.subject_cn == TRAEFIK_DEFAULT_CN or any(n.endswith(TRAEFIK_DEFAULT_SUFFIX) for n in self.names)

    @property
    def is_staging(self) -> bool:
        return STAGING_MARK in self.issuer

    def covers(self, domain: str) -> bool:
        return any(_name_matches(pattern, domain) for pattern in self.names)


def parse_der(der: bytes) -> CertInfo:
    from cryptography import x509
    from cryptography.x509.oid import ExtensionOID, NameOID

    cert = x509.load_der_x509_certificate(der)

    def cn(name: x509.Name) -> str | None:
        attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(attrs[0].value) if attrs else None

    names: list[str] = []
    try:
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
        assert isinstance(san, x509.SubjectAlternativeName)
        names += [str(n) for n in san.get_values_for_type(x509.DNSName)]
        names += [str(n) for n in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        pass
    subject_cn = cn(cert.subject)
    if not names and subject_cn:
        names.append(subject_cn)
    return CertInfo(subject=cert.subject.rfc4514_string(), subject_cn=subject_cn,
                    issuer=cert.issuer.rfc4514_string(), issuer_cn=cn(cert.issuer), names=tuple(names),
                    not_after=cert.not_valid_after_utc, self_signed=cert.subject == cert.issuer,
                    not_before=cert.not_valid_before_utc)


def _name_matches(pattern: str, domain: str) -> bool:
    """RFC 6125 matching: exact (case-insensitive), or a wildcard for exactly one left-most label."""
    pattern, domain = pattern.lower().rstrip("."), domain.lower().rstrip(".")
    try:
        return ipaddress.ip_address(pattern) == ipaddress.ip_address(domain)
    except ValueError:
        pass
    if pattern == domain:
        return True
    if pattern.startswith("*.") and "." in domain:
        return domain.split(".", 1)[1] == pattern[2:]
    return False


def first_der_sha256(chain_pem: bytes) -> str | None:
    """sha256 of the leaf (first certificate) of a PEM chain, None when there is none: compared with
    the sha256 of what a server presents."""
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        leaf = x509.load_pem_x509_certificates(chain_pem)[0]
    except (ValueError, IndexError):
        return None
    return hashlib.sha256(leaf.public_bytes(Encoding.DER)).hexdigest()
