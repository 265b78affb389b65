"""Why Traefik has no certificate, in its own words: the ACME error in the Traefik pod's log, named.

Traefik v3 logs a failed order as `ERR Unable to obtain ACME certificate for domain(s)` with lego's
error, `acme: error: <status> :: <method> :: <url> :: <urn> :: <detail>` (go-acme/lego acme/errors.go;
traefik pkg/provider/acme/provider.go). The URN says what went wrong; the CA's detail text is quoted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from labup.config import Lab

STAGING_MARK = "acme-staging"
_ERROR_LINE = re.compile(r"(\bERR\b|\"level\"\s*:\s*\"error\"|level=error)", re.IGNORECASE)
_ACME_WORD = re.compile(r"acme", re.IGNORECASE)
_RETRY_AFTER = re.compile(r"retry after ([0-9][0-9:\- ]+(?:UTC)?)")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
MAX_LINE = 600  # shown in the hint; the whole line is classified


@dataclass(frozen=True)
class AcmeFinding:
    kind: str  # rate-limit, dns, connection, unauthorized, tls, contact, permissions, other
    summary: str
    hint: str
    line: str  # the log line it comes from, trimmed
    ca: str | None  # "staging" or "production" when the line names the CA


def classify(log: str, lab: Lab) -> AcmeFinding | None:
    """The last ACME error in the log, named; None when Traefik logged none."""
    for raw in reversed(log.splitlines()):
        if _ERROR_LINE.search(raw) and _ACME_WORD.search(raw):
            return _finding(_clean(raw), lab)
    return None


def _clean(line: str) -> str:
    from labup.redact import redact

    return redact(_CONTROL.sub("", line)).strip()


def _finding(line: str, lab: Lab) -> AcmeFinding:
    t = lab.traefik
    domains = ", ".join(t.domains)
    port = 80 if t.acme.challenge == "http" else 443
    vip = lab.vip.address
    ca = "staging" if STAGING_MARK in line else ("production" if "letsencrypt.org" in line else None)
    where = f" (Let's Encrypt {ca})" if ca else ""
    forward = (f"the {t.acme.challenge} challenge needs port {port} of {domains} reachable from the internet: "
               f"forward port {port} on your router to {vip}:{port}")
    lowered = line.lower()

    def found(kind: str, summary: str, hint: str) -> AcmeFinding:
        shown = line if len(line) <= MAX_LINE else line[:MAX_LINE] + "..."
        return AcmeFinding(kind, summary + where, hint, shown, ca)

    if "ratelimited" in lowered or "too many certificates" in lowered or "too many failed" in lowered:
        retry = _RETRY_AFTER.search(line)
        when = f" until {retry.group(1).strip()}" if retry else ""
        staging = ("" if t.acme.staging else "; while testing, set traefik.acme.staging: true (its limits are "
                   "far higher)")
        return found("rate-limit", f"Let's Encrypt refuses to issue: rate limit reached{when}",
                     f"wait{when or ' (see the limit in the log line)'}; Traefik keeps what it obtained in "
                     f"{t.acme.storage_dir}/acme.json on the node, so keep that file instead of starting afresh"
                     + staging)
    if "invalidcontact" in lowered or "forbidden domain" in lowered:
        return found("contact", f"Let's Encrypt refuses the account email {t.acme.email}",
                     "set traefik.acme.email to a real address you read (Let's Encrypt refuses reserved domains "
                     "such as example.com), then `labup phase traefik`")
    if ":dns" in lowered or "nxdomain" in lowered or "no valid a records" in lowered \
            or "no valid ip addresses" in lowered or "dns problem" in lowered:
        return found("dns", f"Let's Encrypt cannot resolve {domains}: DNS does not point at the lab",
                     f"create a public DNS A/AAAA record for {domains} with your public address; {forward}")
    if ":connection" in lowered or "timeout during connect" in lowered or "connection refused" in lowered:
        return found("connection", f"Let's Encrypt could not connect to {domains} on port {port}: the "
                                   f"{t.acme.challenge} challenge failed", forward)
    if ":unauthorized" in lowered or "invalid response from" in lowered:
        return found("unauthorized", f"the {t.acme.challenge} challenge for {domains} was answered by something "
                                     "other than this Traefik",
                     f"the public DNS record or the router's port forward leads elsewhere (another proxy or an old "
                     f"address); {forward}")
    if ":tls" in lowered:
        return found("tls", f"the TLS-ALPN challenge for {domains} failed", forward)
    if "permissions" in lowered and "too open" in lowered:
        return found("permissions", "Traefik ignores its ACME storage: acme.json is not mode 0600",
                     f"the init container makes {t.acme.storage_dir}/acme.json 0600; check that traefik.values "
                     "does not replace deployment.initContainers")
    return found("other", "Traefik logged an ACME error", "read the line below and Traefik's log: "
                 f"`kubectl -n {t.namespace} logs deploy/{t.release}`")
