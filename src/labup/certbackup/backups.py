"""The local copies of acme.json: `.labup/backups/acme-<UTC time>.json`, folder 0700, files 0600.

They hold the ACME account's private key and every certificate's key: written with O_EXCL and 0600 from
the first byte (never a moment readable by others), never through a symlink, and only the newest
`backup.keep` of labup's own files are kept (a file of another name is never touched).
"""

from __future__ import annotations

import os
import re
import stat
from datetime import UTC, datetime
from pathlib import Path

from labup.engine.journal import ensure_state_dir, open_state_file
from labup.errors import ConfigError

_NAME = re.compile(r"^acme-(\d{8}T\d{6}(?:\d{6})?Z)\.json$")


def backup_dir(state_dir: Path) -> Path:
    return state_dir / "backups"


def ensure_backup_dir(state_dir: Path) -> Path:
    """.labup/ and .labup/backups/, both 0700 and real folders (never a symlink)."""
    ensure_state_dir(state_dir)
    return ensure_state_dir(backup_dir(state_dir))


def write_new(folder: Path, data: bytes, now: datetime | None = None) -> Path:
    """A new backup file in `folder`, named by the UTC time (microseconds when a second is taken)."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    for name in (f"acme-{moment:%Y%m%dT%H%M%SZ}.json", f"acme-{moment:%Y%m%dT%H%M%S%fZ}.json"):
        path = folder / name
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        return path
    raise ConfigError("", f"{folder}: a backup of this very moment exists already", hint="try again")


def write_to(path: Path, data: bytes) -> Path:
    """`--out PATH`: a new file (never overwritten: a backup must not replace another), 0600."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        raise ConfigError("--out", f"{path} exists; a backup never replaces a file", hint="name a new file") from None
    except OSError as exc:
        raise ConfigError("--out", f"{path}: cannot create it ({exc.strerror})") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return path


def existing(folder: Path) -> list[Path]:
    """labup's backups in `folder`, oldest first (regular files with labup's names only)."""
    if not folder.is_dir():
        return []
    found = []
    for entry in os.scandir(folder):
        if _NAME.match(entry.name) and stat.S_ISREG(entry.stat(follow_symlinks=False).st_mode):
            found.append(folder / entry.name)
    # by time taken; in one moment the plain name was written before the one with microseconds
    return sorted(found, key=lambda p: (taken_at(p) or datetime.min.replace(tzinfo=UTC), len(p.name)))


def prune(folder: Path, keep: int) -> list[Path]:
    """Remove all but the newest `keep` of labup's backups; returns what was removed."""
    old = existing(folder)[:-keep] if keep > 0 else []
    for path in old:
        path.unlink(missing_ok=True)
    return old


def taken_at(path: Path) -> datetime | None:
    match = _NAME.match(path.name)
    if not match:
        return None
    stamp = match.group(1)
    fmt = "%Y%m%dT%H%M%S%fZ" if len(stamp) > 16 else "%Y%m%dT%H%M%SZ"
    return datetime.strptime(stamp, fmt).replace(tzinfo=UTC)


def read(path: Path, limit: int) -> bytes:
    """A backup's bytes (a regular file, never through a symlink, at most `limit` + 1 read)."""
    fd = open_state_file(path, os.O_RDONLY)
    with os.fdopen(fd, "rb") as fh:
        return fh.read(limit + 1)
