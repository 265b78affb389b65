"""`labup restore PATH [--dry-run] [--force] [--yes]`: a backed-up acme.json back onto the node that
runs Traefik, then Traefik restarted so it loads it.

The file is judged exactly like a backup (a Traefik store for traefik.acme.resolver, holding a
certificate for one of traefik.domains: another lab's store is refused unless --force), the plan says
what it restores and what it replaces, and nothing changes in a dry run. The file it replaces is backed
up first; if putting the new one in place fails, the old one is put back.

Exit 0 done (or planned); 1 failed (the message says whether the old file is back); 2 bad input
(nothing changed anywhere); 4 another labup run holds the lab.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labup.errors import EXIT_OK, ConfigError, LabupError, PermanentError
from labup.options import emit_json

if TYPE_CHECKING:
    from labup.certbackup.store import AcmeStore
    from labup.config import Lab
    from labup.options import Options


def load_backup(lab: Lab, path: Path, force: bool) -> tuple[bytes, AcmeStore]:
    """The file's bytes and what it holds; ConfigError (exit 2) naming the problem otherwise."""
    from labup.certbackup.store import MAX_BYTES, InvalidStore, parse

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigError("PATH", f"{path}: cannot open it ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):  # a FIFO or a device would never end
            raise ConfigError("PATH", f"{path}: is not a regular file")
        data = fh.read(MAX_BYTES + 1)
    try:
        store = parse(data, resolver=None if force else lab.traefik.acme.resolver)
    except InvalidStore as exc:
        raise ConfigError("PATH", f"{path} is not a Traefik ACME store labup can restore: {exc}") from None
    if store.empty:
        raise ConfigError("PATH", f"{path} holds no certificate: nothing to restore")
    wanted = set(lab.traefik.domains)
    if not force and not any(wanted & set(c.domains) for c in store.certificates):
        held = ", ".join(sorted({d for c in store.certificates for d in c.domains}))
        raise ConfigError("PATH", f"{path} holds certificates for {held}, none of traefik.domains "
                                  f"({', '.join(lab.traefik.domains)}): another lab's store?",
                          hint="--force restores it anyway")
    return data, store


def run_command(opts: Options, lab: Lab, path: Path, *, dry_run: bool, force: bool, yes: bool) -> int:
    from labup.certbackup.node import acme_path, read_store, traefik_node
    from labup.certbackup.store import InvalidStore, describe, parse

    data, store = load_backup(lab, path, force)
    node = traefik_node(lab)
    try:
        current: bytes | None = read_store(lab, node)
    except PermanentError as exc:
        if "has no" not in exc.message:
            raise
        current = None
    try:
        replaced = parse(current or b"").certificates
        replaced_text = describe(replaced) if replaced else "an acme.json without certificates"
    except InvalidStore as exc:
        replaced, replaced_text = (), f"a file that is not a valid store ({exc})"
    if current is None:
        replaced_text = "nothing: the node has no acme.json"
    doc: dict[str, Any] = {"command": "restore", "dry_run": dry_run, "node": node.name, "target": acme_path(lab),
                           "restores": [c.as_dict() for c in store.certificates],
                           "replaces": [c.as_dict() for c in replaced]}
    from labup.ui import clean

    write = sys.stderr.write if opts.json else sys.stdout.write

    def say(text: str) -> None:  # names and issuers come from files: no control character printed
        for line in text.splitlines():
            write(clean(line) + "\n")

    say(f"restore {path} onto {node.name}:{acme_path(lab)}, then restart Traefik\n"
        f"  it holds: {describe(store.certificates)}\n  it replaces: {replaced_text}\n")
    if current == data:
        say("  the node already has exactly this file: nothing to do\n")
        emit_json(opts, doc | {"ok": True, "exit_code": EXIT_OK, "changed": False})
        return EXIT_OK
    if dry_run:
        say("dry run: nothing was changed\n")
        emit_json(opts, doc | {"ok": True, "exit_code": EXIT_OK, "changed": False})
        return EXIT_OK
    if not yes and not sys.stdin.isatty():
        raise ConfigError("--yes", "a restore replaces the node's certificates: without a terminal to confirm "
                                   "on, it needs --yes", hint="`--dry-run` shows the plan")
    if not yes and input("restore it? [y/N] ").strip().lower() not in ("y", "yes"):
        say("nothing was changed\n")
        return EXIT_OK
    kept = _restore(lab, node, data, current, say)
    emit_json(opts, doc | {"ok": True, "exit_code": EXIT_OK, "changed": True, "replaced_backup": kept})
    return EXIT_OK


def _restore(lab: Lab, node: Any, data: bytes, current: bytes | None, say: Any) -> str | None:
    """Back up what is there, put `data` in place, restart Traefik, read it back; put the old file
    back if any of that fails. Returns the backup of the replaced file."""
    from labup.adapters.kube import KubeAdapter
    from labup.certbackup import backups, restore
    from labup.certbackup.node import read_store
    from labup.engine.journal import Journal
    from labup.engine.lock import LabLock

    timeout = lab.traefik.wait_timeout_s
    kube = KubeAdapter.from_lab(lab)
    folder = backups.ensure_backup_dir(lab.state_dir)
    with LabLock(lab.state_dir, Journal(lab.state_dir, lab_id=lab.identity).run_id) as lock:
        lock.set_command("restore")
        kept = str(backups.write_new(folder, current)) if current and current.strip() else None
        if kept:
            say(f"  backed up the replaced file to {kept}\n")
        try:
            restore.place(lab, kube, node, data, timeout)
            on = restore.restart_traefik(lab, kube, timeout)
            if read_store(lab, node) != data:
                raise PermanentError(f"after the restore, {node.name}'s acme.json is not the restored file "
                                     "(did Traefik rewrite it?)")
        except (LabupError, KeyboardInterrupt) as exc:
            if kept is None:  # the node had no certificate to put back
                raise
            say("  the restore failed: putting the replaced file back\n")
            try:
                restore.place(lab, kube, node, current or b"", timeout)
                restore.restart_traefik(lab, kube, timeout)
            except LabupError as again:
                raise PermanentError(f"the restore failed ({_message(exc)}) and so did putting the old file back "
                                     f"({again.message})",
                                     hint=f"the old file is kept in {kept}: `labup restore {kept} --yes` once the "
                                          "cluster answers") from None
            raise PermanentError(f"the restore failed ({_message(exc)}); the replaced file is back in place",
                                 hint=getattr(exc, "hint", None)) from None
    say(f"restored: Traefik restarted on {on} with the restored certificates\n")
    return kept


def _message(exc: BaseException) -> str:
    return getattr(exc, "message", None) or str(exc) or type(exc).__name__
