"""https-cert: TLS on the VIP with SNI <domain> presents a certificate that verifies, covers the domain,
and is not about to expire. Recognises Traefik's self-signed default certificate (ACME has not
succeeded) and Let's Encrypt staging certificates."""

from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING, Any

from labup.checks.model import FAIL, PASS, WARN, CheckContext, CheckResult

if TYPE_CHECKING:
    from labup.adapters.net import TlsAnswer
    from labup.checks.certinfo import CertInfo
    from labup.config import Lab

WARN_DAYS = 14  # Traefik renews 30 days before expiry: under 14 days left, renewal has been failing
_RANK = {PASS: 0, WARN: 1, FAIL: 2}


def https_cert(ctx: CheckContext) -> CheckResult:
    """Every domain in traefik.domains, one after the other, within the check's deadline."""
    verdicts: list[tuple[str, str, str | None]] = []
    data: dict[str, Any] = {"domains": {}}
    for domain in ctx.lab.traefik.domains:
        status, summary, hint, facts = _one_domain(ctx, domain)
        if facts.get("refused"):  # nothing listens on :443: the paradox, named once for the whole check
            from labup.checks.http import paradox

            return paradox(ctx, 443, "https-cert", data | {"domain": domain})
        if facts.get("silent"):
            from labup.checks.http import silence

            return silence(ctx, 443, "https-cert", data | {"domain": domain})
        data["domains"][domain] = facts
        verdicts.append((status, summary, hint))
    status = max((v[0] for v in verdicts), key=_RANK.__getitem__)
    summary = "; ".join(v[1] for v in verdicts)
    hints = list(dict.fromkeys(v[2] for v in verdicts if v[2] and v[0] != PASS))
    if ctx.lab.ha:
        status, summary = _from_secret(ctx, status, summary, data)
    if any(facts.get("acme_missing") for facts in data["domains"].values()):
        reason, hint, data["acme"] = certificate_reason(ctx) if ctx.lab.ha else acme_reason(ctx)
        summary += f"; {reason}"
        hints = [hint]
    return CheckResult("https-cert", status, summary, hint=" | ".join(hints) or None, data=data)


def _from_secret(ctx: CheckContext, status: str, summary: str, data: dict[str, Any]) -> tuple[str, str]:
    """Topology ha: the served certificate should be the one cert-manager keeps in its Secret (what
    every Traefik serves from its default TLS store). Says which Secret, or that it is not that one."""
    from labup.checks.kube import kube_facts
    from labup.errors import LabupError
    from labup.traefik.values import TLS_SECRET

    where = f"{ctx.lab.traefik.namespace}/{TLS_SECRET}"
    data["secret"] = where
    served = [f for f in data["domains"].values() if f.get("der_sha256") and not f.get("traefik_default")]
    if not served:
        return status, summary
    try:
        chain = kube_facts(ctx).tls_secret_chain()
    except LabupError as exc:
        return status, f"{summary}; Secret {where} could not be read ({exc.message})"
    if chain is None:
        return _worse(status, WARN), f"{summary}; Secret {where} does not exist: this certificate is not cert-manager's"
    from labup.checks.certinfo import first_der_sha256

    stored = first_der_sha256(chain)
    if all(f["der_sha256"] == stored for f in served):
        return status, f"{summary} (from Secret {where}, issued by cert-manager)"
    return _worse(status, WARN), (f"{summary}; the served certificate is not the one in Secret {where} (Traefik "
                                  "may not have loaded a renewal yet)")


def _worse(a: str, b: str) -> str:
    return max(a, b, key=_RANK.__getitem__)


def certificate_reason(ctx: CheckContext) -> tuple[str, str, dict[str, Any]]:
    """Topology ha: why there is no certificate yet, from cert-manager's Certificate: (summary part,
    hint, data); data["kind"] None while it is still being issued (apply waits), "failed" once
    cert-manager says issuance failed."""
    from labup.checks.kube import kube_facts
    from labup.errors import LabupError
    from labup.traefik.values import TLS_SECRET

    t = ctx.lab.traefik
    name = f"Certificate {t.namespace}/{TLS_SECRET}"
    hint = (f"`kubectl -n {t.namespace} describe certificate {TLS_SECRET}` and `kubectl -n {t.namespace} get "
            f"challenges` (cert-manager's account of the order); {_acme_hint(ctx.lab, ', '.join(t.domains))}")
    try:
        cert = kube_facts(ctx).certificate()
    except LabupError as exc:
        return f"{name} could not be read ({exc.message})", hint, {"certificate": "unreadable", "kind": "unreadable"}
    if cert is None:
        return (f"{name} does not exist: cert-manager has nothing to issue", "run `labup phase cert-manager` (it "
                "creates the Issuer and the Certificate)", {"certificate": None, "kind": "missing"})
    status = cert.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or [] if isinstance(c, dict)}
    issuing, ready = conditions.get("Issuing") or {}, conditions.get("Ready") or {}
    failed = bool(status.get("lastFailureTime")) or issuing.get("reason") == "Failed"
    said = (issuing if failed else ready).get("message") or ready.get("reason") or "no status yet"
    data = {"certificate": name, "kind": "failed" if failed else None, "message": said}
    if failed:
        return f"cert-manager failed to issue {name}: {said}", hint, data
    return f"cert-manager is still issuing {name}: {said}", hint, data


def acme_reason(ctx: CheckContext) -> tuple[str, str, dict[str, Any]]:
    """Why ACME has no certificate, from the Traefik pod's log: (summary part, hint, data)."""
    from labup.checks.acmelog import classify
    from labup.checks.kube import kube_facts
    from labup.errors import LabupError

    lab = ctx.lab
    try:
        found = kube_facts(ctx).traefik_log()
    except LabupError as exc:
        return (f"Traefik's log could not be read ({exc.message})", _acme_hint(lab, ", ".join(lab.traefik.domains)),
                {"log": "unreadable"})
    if found is None:
        return ("no Traefik pod to ask", "see traefik-placement", {"log": "no pod"})
    pod, log = found
    finding = classify(log, lab)
    if finding is None:
        return (f"pod {pod} logged no ACME error: Traefik has not asked yet, or has nothing to ask for (no "
                "router names the domain and the default TLS store generates no certificate)",
                "labup's values make the default TLS store request the certificate "
                "(tlsStore.default.defaultGeneratedCert); check that traefik.values does not remove it",
                {"pod": pod, "kind": None})
    return (f"pod {pod}: {finding.summary}", f"{finding.hint}. Traefik's log: {finding.line}",
            {"pod": pod, "kind": finding.kind, "ca": finding.ca, "line": finding.line})


def _one_domain(ctx: CheckContext, domain: str) -> tuple[str, str, str | None, dict[str, Any]]:
    import ssl

    from labup.adapters import net
    from labup.checks.certinfo import parse_der

    vip = ctx.lab.vip.address
    try:
        answer = net.tls_certificate(vip, domain, ctx.remaining(), ca_file=ctx.lab.verify.ca_file)
    except ConnectionRefusedError:
        return FAIL, "", None, {"refused": True}
    except TimeoutError:
        return FAIL, "", None, {"silent": True}
    except ssl.SSLError as exc:
        return (FAIL, f"{domain}: TLS handshake with {vip}:443 failed: {exc.reason or exc}",
                "something other than Traefik's websecure entry point may be listening on port 443", {})
    except OSError as exc:
        return (FAIL, f"{domain}: cannot reach {vip}:443: {exc.strerror or exc}",
                "nobody answers for the VIP (see vip-arp)", {})
    try:
        info = parse_der(answer.der)
    except ValueError as exc:
        return FAIL, f"{domain}: the server's certificate cannot be parsed: {exc}", None, {}
    return judge_cert(ctx.lab, domain, answer, info)


def judge_cert(lab: Lab, domain: str, answer: TlsAnswer, info: CertInfo,
               days_left: float | None = None) -> tuple[str, str, str | None, dict[str, Any]]:
    """(status, summary, hint, data) for the certificate served for one domain."""
    days = info.days_left() if days_left is None else days_left
    whole = math.floor(days)
    data: dict[str, Any] = {"subject": info.subject, "issuer": info.issuer, "names": list(info.names),
                            "not_after": info.not_after.isoformat(), "days_left": round(days, 2),
                            "not_before": info.not_before.isoformat() if info.not_before else None,
                            "staging": info.is_staging, "traefik_default": info.is_traefik_default,
                            "verified": answer.verified, "verify_error": answer.verify_error,
                            "der_sha256": hashlib.sha256(answer.der).hexdigest(),
                            "tls_version": answer.tls_version}
    issuer = info.issuer_cn or info.issuer
    acme = _acme_hint(lab, domain)
    if info.is_traefik_default:
        return (FAIL, f"{domain}: Traefik serves its self-signed '{info.subject_cn}': ACME has not obtained a "
                      "certificate", acme, data | {"acme_missing": True})
    if days < 0:
        return FAIL, f"{domain}: the certificate expired {-whole} day(s) ago (issuer {issuer})", acme, data
    if info.is_staging:
        return WARN, f"{domain}: a Let's Encrypt staging certificate ({issuer}): browsers do not trust it", \
            _staging_hint(lab), data
    if not answer.verified:
        if not info.covers(domain):
            names = ", ".join(info.names) or "none"
            return (FAIL, f"{domain}: the certificate's names ({names}) do not cover {domain}",
                    f"check traefik.domains and the routers' Host rules; {acme}", data)
        return (FAIL, f"{domain}: the certificate does not verify: {answer.verify_error} (issuer {issuer})",
                f"a private or test CA? name it in verify.ca_file. Otherwise {acme}", data)
    if days < WARN_DAYS:
        return (WARN, f"{domain}: valid, but expires in {whole} day(s) ({info.not_after:%Y-%m-%d}): Traefik renews "
                      "30 days ahead, so renewal is failing", acme, data)
    return PASS, f"{domain}: valid certificate from {issuer}, {whole} days left", None, data


def _acme_hint(lab: Lab, domain: str) -> str:
    t = lab.traefik
    port = 80 if t.acme.challenge == "http" else 443
    return (f"read Traefik's log: `kubectl -n {t.namespace} logs deploy/{t.release}` (look for acme errors); the "
            f"{t.acme.challenge} challenge needs port {port} of {domain} reachable from the internet (forwarded to "
            f"{lab.vip.address}:{port}) and {domain}'s DNS pointing there")


def _staging_hint(lab: Lab) -> str:
    acme_json = f"{lab.traefik.acme.storage_dir}/acme.json on the VIP's node"
    if lab.traefik.acme.staging:
        return ("traefik.acme.staging is true: once issuance works, set it to false and run `labup phase traefik`; "
                f"Traefik keeps the certificates it has in {acme_json}: move that file aside to get production ones")
    return (f"traefik.acme.staging is false, yet a staging certificate is served: it comes from an old {acme_json} "
            "(Traefik keeps what it has): move that file aside and restart Traefik")
