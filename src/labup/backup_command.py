"""`labup backup [--out PATH]`: Traefik's acme.json, read from the node where Traefik runs, judged, and
kept locally (0600 in a 0700 folder). It prints what it holds (domains, issuer, staging or
production, days left), never a key.

Exit 0 with a backup written; 1 when there is nothing worth keeping (no Traefik pod, no file yet,
a store without certificate, or a file that is not a valid store); 2 for bad input (--out).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labup.certbackup.node import acme_path, keep_in_cluster, read_store, traefik_node
from labup.errors import EXIT_FAILED, EXIT_OK, PermanentError
from labup.options import emit_json

if TYPE_CHECKING:
    from labup.certbackup.store import AcmeStore
    from labup.config import Lab
    from labup.options import Options


def run_command(opts: Options, lab: Lab, out: Path | None) -> int:
    from labup.certbackup import backups
    from labup.certbackup.store import InvalidStore, parse

    node = traefik_node(lab)
    data = read_store(lab, node)
    try:
        store = parse(data, resolver=lab.traefik.acme.resolver)
    except InvalidStore as exc:
        raise PermanentError(f"{acme_path(lab)} on {node.name} is not a valid ACME store: {exc}; nothing was "
                             "written", hint="Traefik rewrites it on its next certificate; `labup verify` "
                                             "names what Traefik logs") from None
    doc: dict[str, Any] = {"command": "backup", "node": node.name, "source": acme_path(lab),
                           "certificates": [c.as_dict() for c in store.certificates]}
    if store.empty:
        sys.stderr.write(f"labup: {acme_path(lab)} on {node.name} holds no certificate yet: nothing to back up\n")
        emit_json(opts, doc | {"ok": False, "exit_code": EXIT_FAILED, "file": None})
        return EXIT_FAILED
    if out is not None:
        written, removed = backups.write_to(out, data), []
    else:
        folder = backups.ensure_backup_dir(lab.state_dir)
        written = backups.write_new(folder, data)
        removed = backups.prune(folder, lab.backup.keep)
    doc |= {"ok": True, "exit_code": EXIT_OK, "file": str(written), "removed": [str(p) for p in removed],
            "secret": keep_in_cluster(lab, data) if lab.backup.in_cluster else None}
    if opts.json:
        emit_json(opts, doc)
    else:
        _table(store, f"backed up {acme_path(lab)} from {node.name} to {written} (0600)")
        if doc["secret"]:
            sys.stderr.write(f"labup: also kept as the Secret {doc['secret']}: a Traefik pod that starts with an "
                             "empty acme.json (on another node) is seeded from it\n")
        for path in removed:
            sys.stderr.write(f"labup: removed the old backup {path} (backup.keep: {lab.backup.keep})\n")
    return EXIT_OK


def _table(store: AcmeStore, title: str) -> None:
    from labup.ui import clean  # the names come from a file on the node: no control character printed

    now = datetime.now(UTC)
    rows = [(clean(", ".join(c.domains)), clean(c.issuer), "staging" if c.staging else "production",
             str(c.days_left(now))) for c in store.certificates]
    head = ("domains", "issuer", "CA", "days left")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = [clean(title), *("  " + "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
                      for r in [head, *rows])]
    sys.stdout.write("\n".join(lines) + "\n")
