"""Test certificates for the https-cert check: a test CA, leaves it signs, and look-alikes of what a
real Traefik serves (its self-signed default cert, a Let's Encrypt staging cert, one about to expire)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

TEST_DOMAIN = "tazlab.example"
TRAEFIK_DEFAULT_CN = "TRAEFIK DEFAULT CERT"
STAGING_ORG = "(STAGING) Let's Encrypt"
STAGING_ISSUER_CN = "(STAGING) Wannabe Watercress R11"

Key = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class Issued:
    """A certificate with its key, both also on disk as PEM."""

    cert: x509.Certificate
    key: Key
    cert_path: Path
    key_path: Path


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _write(directory: Path, stem: str, cert: x509.Certificate, key: Key) -> Issued:
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return Issued(cert, key, cert_path, key_path)


def make_ca(directory: Path, cn: str = "labup test CA", org: str | None = None, stem: str = "ca") -> Issued:
    """A self-signed CA (EC P-256: fast to generate, so every test run makes fresh ones)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = _name(cn, org)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _write(directory, stem, cert, key)


def make_leaf(
    directory: Path,
    stem: str,
    cn: str,
    sans: list[str] | None = None,
    ca: Issued | None = None,
    days: float = 90,
    rsa_bits: int | None = None,
) -> Issued:
    """A server certificate for ``cn`` (+ DNS/IP ``sans``), signed by ``ca`` or self-signed when None.

    ``days`` is the time left until notAfter, so ``days=5`` gives a certificate about to expire.
    ``rsa_bits``: an RSA key of that size (Traefik's ACME default is RSA 4096), else ECDSA P-256.
    """
    key: Any = rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits) if rsa_bits \
        else ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    alt_names: list[x509.GeneralName] = []
    for san in sans if sans is not None else [cn]:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(san)))
        except ValueError:
            alt_names.append(x509.DNSName(san))
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca.cert.subject if ca else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    )
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    if ca:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    cert = builder.sign(ca.key if ca else key, hashes.SHA256())
    return _write(directory, stem, cert, key)


@dataclass(frozen=True)
class CertSet:
    """Everything the stand-in server can present; ``ca`` is what a client trusts."""

    ca: Issued
    good: Issued  # test CA -> CN + SAN tazlab.example
    traefik_default: Issued  # self-signed, CN "TRAEFIK DEFAULT CERT", like Traefik without a cert
    staging: Issued  # issuer "(STAGING) ..." like a Let's Encrypt staging certificate
    expiring: Issued  # test CA, tazlab.example, notAfter in 5 days

    def mode(self, name: str) -> Issued:
        """The certificate for a server mode: good, traefik-default, staging, expiring."""
        return {
            "good": self.good,
            "traefik-default": self.traefik_default,
            "staging": self.staging,
            "expiring": self.expiring,
        }[name]


def make_cert_set(directory: Path, domain: str = TEST_DOMAIN, rsa_bits: int | None = None) -> CertSet:
    ca = make_ca(directory)
    staging_ca = make_ca(directory, cn=STAGING_ISSUER_CN, org=STAGING_ORG, stem="staging-ca")
    # Traefik's generated default cert has SANs like <hex>.<hex>.traefik.default
    traefik_san = f"{secrets.token_hex(16)}.{secrets.token_hex(16)}.traefik.default"
    return CertSet(
        ca=ca,
        good=make_leaf(directory, "good", domain, [domain], ca=ca, rsa_bits=rsa_bits),
        traefik_default=make_leaf(directory, "traefik-default", TRAEFIK_DEFAULT_CN, [traefik_san], days=365),
        staging=make_leaf(directory, "staging", domain, [domain], ca=staging_ca),
        expiring=make_leaf(directory, "expiring", domain, [domain], ca=ca, days=5),
    )
