"""Which talosconfig talosctl will use, and what it says about the client's identity (never its key).

Discovery follows talosctl (pkg/machinery/client/config/path.go): the first of `$TALOSCONFIG`,
`<talos dir>/config`, `/var/run/secrets/talos.dev/config` that exists. The talos dir is `$TALOS_HOME`
when that is an absolute path (talosctl >= 1.12, `GetTalosDirectory`), else `~/.talos`. A
`$TALOSCONFIG` naming a missing file falls through to the next path, as in talosctl. labup then
passes the file it found with `--talosconfig`, so it and talosctl can never disagree.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SERVICE_ACCOUNT_PATH = Path("/var/run/secrets/talos.dev/config")


@dataclass(frozen=True)
class Found:
    path: Path | None  # None: none exists
    source: str  # how it was found, for messages: "talos.talosconfig", "$TALOSCONFIG", ...
    looked_at: tuple[Path, ...]


def discover(configured: Path | None, env: Mapping[str, str] | None = None) -> Found:
    """The talosconfig talosctl would read (lab.yaml's `talos.talosconfig` first)."""
    env = os.environ if env is None else env
    if configured is not None:
        return Found(configured if configured.is_file() else None, "talos.talosconfig", (configured,))
    candidates: list[tuple[Path, str]] = []
    if env.get("TALOSCONFIG"):
        candidates.append((Path(env["TALOSCONFIG"]).expanduser(), "$TALOSCONFIG"))
    home = env.get("TALOS_HOME", "")
    if home and os.path.isabs(home):
        candidates.append((Path(home) / "config", "$TALOS_HOME/config"))
    else:
        candidates.append((Path(env.get("HOME") or "~").expanduser() / ".talos" / "config", "~/.talos/config"))
    candidates.append((SERVICE_ACCOUNT_PATH, str(SERVICE_ACCOUNT_PATH)))
    for path, source in candidates:
        if path.is_file():
            return Found(path, source, tuple(p for p, _ in candidates))
    return Found(None, "", tuple(p for p, _ in candidates))


@dataclass(frozen=True)
class Identity:
    """What a talosconfig context says about the client, for a hint. No key material."""

    path: Path
    context: str | None
    endpoints: tuple[str, ...]
    not_after: dt.datetime | None  # the client certificate's expiry
    problem: str | None = None  # the file could not be read as a talosconfig

    def describe(self, now: dt.datetime | None = None) -> str:
        where = f"talosconfig {self.path}" + (f", context {self.context}" if self.context else "")
        if self.problem:
            return f"{where}: {self.problem}"
        if self.not_after is None:
            return f"{where}: no client certificate found in the context"
        now = now or dt.datetime.now(dt.UTC)
        when = self.not_after.strftime("%Y-%m-%d %H:%M UTC")
        if self.not_after <= now:
            return f"{where}: its client certificate EXPIRED on {when}"
        return f"{where}: client certificate valid until {when}"

    def expired(self, now: dt.datetime | None = None) -> bool:
        return self.not_after is not None and self.not_after <= (now or dt.datetime.now(dt.UTC))


def identity(path: Path, context: str | None) -> Identity:
    """Read the context (lab.yaml's talos.context, else the file's own `context:`) and its client
    certificate's NotAfter. The key (`key:`) is never decoded."""
    import yaml

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8", errors="replace")[:1 << 20])
    except (OSError, yaml.YAMLError) as exc:
        return Identity(path, context, (), None, f"cannot be read ({type(exc).__name__})")
    if not isinstance(doc, dict):
        return Identity(path, context, (), None, "is not a talosconfig (not a mapping)")
    name = context or doc.get("context")
    contexts = doc.get("contexts") if isinstance(doc.get("contexts"), dict) else {}
    entry = contexts.get(name) if isinstance(name, str) else None
    if not isinstance(entry, dict):
        known = ", ".join(str(k) for k in contexts) or "none"
        return Identity(path, str(name) if name else None, (), None, f"has no context '{name}' (contexts: {known})")
    endpoints = tuple(str(e) for e in entry.get("endpoints") or [])
    return Identity(path, str(name), endpoints, _not_after(entry.get("crt")))


def _not_after(crt: object) -> dt.datetime | None:
    if not isinstance(crt, str):
        return None
    try:
        from cryptography import x509

        cert = x509.load_pem_x509_certificate(base64.b64decode(crt, validate=False))
    except (ValueError, TypeError):
        return None
    return cert.not_valid_after_utc
