"""acme-backup: the certificates Traefik serves are in a local backup (`labup backup`).

Only Traefik's node holds acme.json (wall 7): losing that node means asking Let's Encrypt again, and
its production rate limit is 5 duplicate certificates a week. A warning (never a failure) when a
production certificate is served that no backup holds; it judges what https-cert saw on the VIP
(no extra request) against the newest file in .labup/backups/.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from labup.checks.model import PASS, SKIP, WARN, CheckContext, CheckResult

SLACK = timedelta(minutes=1)  # clocks: the served certificate and the backed-up one are the same issue


def acme_backup(ctx: CheckContext) -> CheckResult:
    if ctx.lab.ha:
        return CheckResult("acme-backup", SKIP, "topology ha keeps the certificate in a Secret (cert-manager), not in "
                           "acme.json on one node: nothing of it lives only on a node")
    cert = ctx.result_of("https-cert")
    if cert is None:
        return CheckResult("acme-backup", SKIP, "needs https-cert's view of the served certificates",
                           hint="run it with https-cert (not --skip https-cert)")
    served = _production(cert.data.get("domains") or {})
    if not served:
        return CheckResult("acme-backup", PASS, "no production certificate is served yet: nothing to back up")
    from labup.certbackup import backups
    from labup.certbackup.store import MAX_BYTES, InvalidStore, parse

    found = backups.existing(backups.backup_dir(ctx.lab.state_dir))
    how = "`labup backup` keeps acme.json off the node (it is the only copy)"
    if not found:
        return CheckResult("acme-backup", WARN, f"no backup of the certificates for {', '.join(served)}: only "
                           "Traefik's node has them", hint=how, data={"backup": None})
    newest = found[-1]
    try:
        store = parse(backups.read(newest, MAX_BYTES), resolver=ctx.lab.traefik.acme.resolver)
    except (InvalidStore, OSError) as exc:
        return CheckResult("acme-backup", WARN, f"the newest backup {newest.name} is not usable ({exc})",
                           hint=how, data={"backup": str(newest)})
    missing = [d for d, issued in served.items()
               if not any(d in c.domains and c.not_before >= issued - SLACK for c in store.certificates)]
    data: dict[str, Any] = {"backup": str(newest), "missing": missing}
    if missing:
        return CheckResult("acme-backup", WARN, f"the certificate served for {', '.join(missing)} is newer than "
                           f"the newest backup ({newest.name})", hint=how, data=data)
    return CheckResult("acme-backup", PASS, f"{newest.name} holds the certificates served for "
                       f"{', '.join(served)}", data=data)


def _production(domains: dict[str, Any]) -> dict[str, datetime]:
    """domain -> when its served certificate was issued, for trusted, non-staging, non-default ones."""
    out = {}
    for domain, facts in domains.items():
        if facts.get("verified") and not facts.get("staging") and not facts.get("traefik_default") \
                and facts.get("not_before"):
            out[domain] = datetime.fromisoformat(facts["not_before"])
    return out
