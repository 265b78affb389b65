"""Traefik v3's ACME store (acme.json) as Traefik reads and writes it (pkg/provider/acme, v3.7.9):

- `{"<resolver>": {"Account": {"Email", "Registration": {"body", "uri"}, "PrivateKey"}, "Certificates":
  [{"domain": {"main", "sans"}, "certificate", "key", "Store"}]}}`; []byte fields are base64 (the
  account key DER PKCS#1, the certificate the PEM chain leaf first, the key PEM).
- local_store.go `get`: CheckFile first (local_store_unix.go: a missing file is created 0600; any
  group/other bit is refused; an empty file holds nothing), then json.Unmarshal, then certificates
  without certificate or key are dropped (and the file rewritten).
- listenSaveAction: json.MarshalIndent(map, "", "  ") written with os.WriteFile(name, data, 0o600):
  the mode is set only when the file is created; an existing file keeps its own.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from netlab import Issued

MODE = 0o600
DEFAULT_STORE = "default"  # CertAndStore.Store: the TLS store the certificate goes to


class StoreError(Exception):
    """Why Traefik cannot use the file: the text its error carries (after `unable to get ACME account: `)."""


@dataclass
class LocalStore:
    """One storage file as one Traefik process holds it (LocalStore.storedData): every resolver's data.
    `disk` is the host file on the node's disk; None when the storage is in the container (it dies
    with the pod)."""

    storage: str  # the path Traefik was given (--certificatesresolvers.R.acme.storage)
    disk: Path | None
    data: dict[str, Any]


def check_and_load(storage: str, disk: Path) -> dict[str, Any]:
    """CheckFile + json.Unmarshal + dropping empty certificates, on the node's file. Raises StoreError."""
    try:
        st = disk.stat()
    except FileNotFoundError:
        # CheckFile: os.Create then Chmod(0o600); the hostPath folder exists (DirectoryOrCreate)
        disk.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(disk, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, MODE)
        os.close(fd)
        disk.chmod(MODE)
        return {}
    perm = stat.S_IMODE(st.st_mode) & 0o777  # Go's FileMode.Perm()
    if perm & 0o077:
        raise StoreError(f"permissions {perm:o} for {storage} are too open, please use 600")
    if not stat.S_ISREG(st.st_mode):
        raise StoreError(f"read {storage}: is a directory")  # os.ReadAll of a directory
    raw = disk.read_bytes()
    if not raw:
        return {}
    data = decode(raw)
    if _drop_empty(data):
        write(disk, data)  # Traefik saves what it kept at once
    return data


def decode(raw: bytes) -> dict[str, Any]:
    """json.Unmarshal into map[string]*StoredData: syntax and type errors worded as Go's (the common
    cases: the exact context words of a syntax error are approximated)."""
    text = raw.decode("utf-8", errors="replace")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StoreError(_syntax_error(text, exc)) from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise StoreError(f"json: cannot unmarshal {_kind(doc)} into Go value of type map[string]*acme.StoredData")
    out: dict[str, Any] = {}
    for resolver, stored in doc.items():
        if stored is not None and not isinstance(stored, dict):
            raise StoreError(f"json: cannot unmarshal {_kind(stored)} into Go value of type acme.StoredData")
        out[resolver] = _stored_data(stored or {})
    return out


def encode(data: dict[str, Any]) -> bytes:
    """json.MarshalIndent(storedData, "", "  "): map keys sorted, struct fields in declaration order,
    HTML characters escaped, no trailing newline."""
    text = json.dumps({k: data[k] for k in sorted(data)}, indent=2, ensure_ascii=False)
    for char, esc in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"),
                      ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, esc)
    return text.encode()


def write(disk: Path, data: dict[str, Any]) -> None:
    """os.WriteFile(name, data, 0o600): truncated in place, the mode set only on creation."""
    disk.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(disk, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, MODE)
    with os.fdopen(fd, "wb") as handle:
        handle.write(encode(data))


# -- the parts of a store -------------------------------------------------------------------------


def new_account(email: str, ca_server: str, key: rsa.RSAPrivateKey) -> dict[str, Any]:
    """What Traefik stores once Let's Encrypt registered the account (lego's acme.Account as body)."""
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    host = urlsplit(ca_server).hostname or "acme-v02.api.letsencrypt.org"
    return {
        "Email": email,
        "Registration": {"body": {"status": "valid", "contact": [f"mailto:{email}"]},
                         "uri": f"https://{host}/acme/acct/{secrets.randbelow(10**10) + 10**9}"},
        "PrivateKey": base64.b64encode(der).decode(),
    }


def account_matches(account: dict[str, Any], ca_server: str) -> bool:
    """provider.go isAccountMatchingCaServer: the registration URI's host is the CA server's."""
    registration = field(account, "Registration") or {}
    uri = field(registration, "uri") or ""
    return not uri or urlsplit(uri).hostname == urlsplit(ca_server).hostname


def certificate_entry(domain: str, issued: Issued, chain: list[Issued] | None = None,
                      sans: list[str] | None = None) -> dict[str, Any]:
    """One CertAndStore: the PEM chain (leaf first, then `chain`) and the key as lego encodes it
    (SEC1 "EC PRIVATE KEY" / PKCS#1 "RSA PRIVATE KEY"), both base64 as Go marshals []byte."""
    pem = b"".join(c.cert.public_bytes(serialization.Encoding.PEM) for c in [issued, *(chain or [])])
    key = issued.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                   serialization.NoEncryption())
    names: dict[str, Any] = {"main": domain}
    if sans:
        names["sans"] = list(sans)
    return {"domain": names, "certificate": base64.b64encode(pem).decode(),
            "key": base64.b64encode(key).decode(), "Store": DEFAULT_STORE}


def entry_names(entry: dict[str, Any]) -> list[str]:
    """Domain.ToStrArray: main then the SANs."""
    domain = field(entry, "domain") or {}
    return [n for n in [field(domain, "main") or "", *(field(domain, "sans") or [])] if n]


def entry_bytes(entry: dict[str, Any], name: str) -> bytes:
    value = field(entry, name)
    return base64.b64decode(value) if value else b""


def field(obj: dict[str, Any], name: str) -> Any:
    """encoding/json matches keys to struct fields case-insensitively (an exact match first)."""
    if name in obj:
        return obj[name]
    return next((v for k, v in obj.items() if k.lower() == name.lower()), None)


# -- json.Unmarshal's checks ----------------------------------------------------------------------


def _stored_data(stored: dict[str, Any]) -> dict[str, Any]:
    """One StoredData, checked as json.Unmarshal would and normalised as Go would write it back
    (canonical key names, unknown keys gone, omitempty fields left out)."""
    account = field(stored, "Account")
    if account is not None and not isinstance(account, dict):
        raise StoreError(_type_error(account, "StoredData.Account", "acme.Account"))
    certificates = field(stored, "Certificates")
    if certificates is not None and not isinstance(certificates, list):
        raise StoreError(_type_error(certificates, "StoredData.Certificates", "[]*acme.CertAndStore"))
    entries = [_entry(e) for e in certificates] if certificates is not None else None
    return {"Account": _account(account) if account is not None else None, "Certificates": entries}


def _account(account: dict[str, Any]) -> dict[str, Any]:
    registration = field(account, "Registration")
    if registration is not None and not isinstance(registration, dict):
        raise StoreError(_type_error(registration, "Account.Registration", "acme.Resource"))
    out: dict[str, Any] = {"Email": field(account, "Email") or ""}
    if registration is not None:
        resource: dict[str, Any] = {"body": field(registration, "body") or {}}
        if field(registration, "uri"):
            resource["uri"] = field(registration, "uri")
        out["Registration"] = resource
    else:
        out["Registration"] = None
    out["PrivateKey"] = _bytes(field(account, "PrivateKey"), "Account.PrivateKey")
    return out


def _entry(entry: Any) -> dict[str, Any] | None:
    if entry is None:
        return None
    if not isinstance(entry, dict):
        raise StoreError(_type_error(entry, "StoredData.Certificates", "acme.CertAndStore"))
    out: dict[str, Any] = {}
    domain = field(entry, "domain")
    if domain is not None and not isinstance(domain, dict):
        raise StoreError(_type_error(domain, "CertAndStore.Certificate.domain", "types.Domain"))
    names = {k: v for k in ("main", "sans") if (v := field(domain or {}, k))}
    out["domain"] = names  # a struct: omitempty never leaves it out
    for name in ("certificate", "key"):
        value = _bytes(field(entry, name), f"CertAndStore.Certificate.{name}")
        if value:
            out[name] = value
    out["Store"] = field(entry, "Store") or ""
    return out


def _bytes(value: Any, where: str) -> str | None:
    """A []byte field: a base64 string (Go's decoder skips \\r and \\n in it)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise StoreError(_type_error(value, where, "[]uint8"))
    clean = value.replace("\r", "").replace("\n", "")
    try:
        base64.b64decode(clean, validate=True)
    except binascii.Error:
        raise StoreError(f"illegal base64 data at input byte {_bad_base64_at(clean)}") from None
    return clean


def _type_error(value: Any, where: str, go_type: str) -> str:
    return f"json: cannot unmarshal {_kind(value)} into Go struct field {where} of type {go_type}"


def _drop_empty(data: dict[str, Any]) -> bool:
    """local_store.go: certificates with no certificate or no key are deleted."""
    dropped = False
    for stored in data.values():
        certificates = stored.get("Certificates") or []
        kept = [c for c in certificates if c and c.get("certificate") and c.get("key")]
        if len(kept) < len(certificates):
            stored["Certificates"] = kept or None
            dropped = True
    return dropped


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), "value")


_CONTEXTS = {
    "Expecting value": "looking for beginning of value",
    "Expecting property name enclosed in double quotes": "looking for beginning of object key string",
    "Expecting ':' delimiter": "after object key",
    "Expecting ',' delimiter": "after object key:value pair",
    "Extra data": "after top-level value",
}


def _syntax_error(text: str, exc: json.JSONDecodeError) -> str:
    if exc.pos >= len(text.rstrip()):
        return "unexpected end of JSON input"
    char = text[exc.pos]
    quoted = "'\\''" if char == "'" else f"'{char}'"
    return f"invalid character {quoted} {_CONTEXTS.get(exc.msg, 'looking for beginning of value')}"


def _bad_base64_at(value: str) -> int:
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
    for i, char in enumerate(value):
        if char not in alphabet and char != "=":
            return i
    return len(value.rstrip("=")) if value else 0
