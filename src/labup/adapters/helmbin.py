"""The helm binary on this machine: where it is, which version it says it is, and the files of an
install (the release archive's layout, an atomic swap with a backup of what it replaces).

Helm publishes one archive per platform, `helm-v<ver>-<os>-<arch>.tar.gz`, holding `<os>-<arch>/helm`.
"""

from __future__ import annotations

import os
import platform
import posixpath
import re
import shutil
import tarfile
import tempfile
import time
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, NamedTuple

from labup.adapters.process import find_tool, run_tool
from labup.errors import LabupError, PermanentError, Unreadable
from labup.validators import semver, version_tuple

if TYPE_CHECKING:
    from labup.config import Lab
    from labup.engine.context import Context

HELM = "helm"
VERSION_TIMEOUT_S = 20.0
MAX_BINARY = 512 * 1024 * 1024
_CHUNK = 1024 * 1024

# platform.system()/machine() -> helm's names; helm's Windows archives are zips: not supported here
_OS = {"Linux": "linux", "Darwin": "darwin"}
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm",
         "armv6l": "arm", "i386": "386", "i686": "386", "ppc64le": "ppc64le", "s390x": "s390x",
         "riscv64": "riscv64"}


class HelmBinary(NamedTuple):
    path: Path
    version: str  # as configured: "4.1.4", no leading v


@dataclass(frozen=True)
class Seen:
    """One helm found on this machine, and what it said (or why it said nothing)."""

    path: Path
    version: str | None
    problem: str | None = None

    def describe(self) -> str:
        return f"helm v{self.version} at {self.path}" if self.version else \
            f"{self.path} (not a working helm: {self.problem})"


# -- platform and versions -------------------------------------------------------------------------


def platform_tag(system: str | None = None, machine: str | None = None) -> str | None:
    """'linux-amd64' for this machine, or None when helm publishes no tar.gz for it."""
    os_name = _OS.get(system or platform.system())
    arch = _ARCH.get((machine or platform.machine()).lower())
    return f"{os_name}-{arch}" if os_name and arch else None


def archive_name(version: str, tag: str) -> str:
    return f"helm-v{version}-{tag}.tar.gz"


def version_key(version: str) -> tuple[tuple[int, int, int], int]:
    """Sort key: 4.1.4-rc.1 comes before 4.1.4 (semver: a pre-release is older than its release)."""
    pre = "-" in version.split("+", 1)[0]
    return version_tuple(version), 0 if pre else 1


def new_enough(version: str, minimum: str) -> bool:
    return version_key(version) >= version_key(minimum)


_VERSIONS: dict[tuple[int, int, int, int], str] = {}  # (device, inode, size, mtime) -> version


def read_version(binary: Path) -> str:
    """What `helm version --template '{{.Version}}'` prints, without the v (e.g. '4.1.4').

    Asked once per file per run: the phases and checks each need it, and a replaced binary is a new
    (inode, size, mtime), so the cache never answers for a file it did not run."""
    info = os.stat(binary)
    key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
    if key in _VERSIONS:
        return _VERSIONS[key]
    out = run_tool(binary, ["version", "--template", "{{.Version}}"], timeout=VERSION_TIMEOUT_S).stdout
    text = out.strip()
    if semver(text):
        raise PermanentError(f"{binary} version: printed {text[:80]!r}, not a version")
    _VERSIONS[key] = text.lstrip("v")
    return _VERSIONS[key]


def probe(binary: Path) -> Seen:
    try:
        return Seen(binary, read_version(binary))
    except LabupError as exc:
        return Seen(binary, None, exc.message)
    except Exception as exc:  # exec format error, a directory, a dangling link: not a usable helm
        return Seen(binary, None, str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)


# -- finding helm ----------------------------------------------------------------------------------


def candidates(install_dir: Path) -> list[Path]:
    """helm on PATH first (the user's own choice), then the one in install_dir; each file once."""
    found: list[Path] = []
    on_path = find_tool(HELM)
    if on_path:
        found.append(on_path)
    local = install_dir / HELM
    if local.is_file() and os.access(local, os.X_OK) and not any(same_file(local, p) for p in found):
        found.append(local)
    return found


def find(install_dir: Path, minimum: str) -> tuple[HelmBinary | None, list[Seen]]:
    """The first helm of at least `minimum`, and everything looked at (to explain a miss)."""
    seen: list[Seen] = []
    for path in candidates(install_dir):
        item = probe(path)
        seen.append(item)
        if item.version and new_enough(item.version, minimum):
            return HelmBinary(path, item.version), seen
    return None, seen


def locate_helm(lab: Lab) -> HelmBinary | None:
    """The helm labup uses: the first of PATH's and helm.install_dir's that is at least helm.version."""
    found, _ = find(lab.helm.install_dir, lab.helm.version)
    return found


def require_helm(ctx: Context) -> HelmBinary:
    """The helm this run found or installed (the helm phase's ctx.facts); else located now (e.g.
    `labup phase traefik` alone). Raises Unreadable, so a dry run shows `unknown` instead of failing."""
    if "helm_binary" in ctx.facts:
        return HelmBinary(Path(ctx.facts["helm_binary"]), ctx.facts["helm_version"])
    found = locate_helm(ctx.lab)
    if found is None:
        raise Unreadable(f"no helm of at least v{ctx.lab.helm.version} on PATH or in "
                         f"{ctx.lab.helm.install_dir}: run `labup phase helm` first")
    remember(ctx, found)
    return found


def remember(ctx: Context, found: HelmBinary) -> None:
    """Later phases of the run use this helm (ctx.facts["helm_binary"], ["helm_version"])."""
    ctx.facts["helm_binary"] = str(found.path)
    ctx.facts["helm_version"] = found.version


def same_file(a: Path, b: Path) -> bool:
    """True when both name one file (PATH may reach install_dir through another spelling)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


# -- the install folder ----------------------------------------------------------------------------


def folder_problem(folder: Path) -> str | None:
    """Why labup could not install into folder (None: it can). Read-only: nothing is created.

    os.access also answers EROFS (a read-only mount), which a mode check alone would miss."""
    probe_at = folder
    while not probe_at.exists() and not probe_at.is_symlink() and probe_at != probe_at.parent:
        probe_at = probe_at.parent
    if not probe_at.is_dir():
        return (f"helm.install_dir {folder} cannot be used: {probe_at} is not a folder"
                if probe_at != folder else f"helm.install_dir {folder} is not a folder")
    if not os.access(probe_at, os.W_OK | os.X_OK):
        if probe_at == folder:
            return f"helm.install_dir {folder} is not writable by this user"
        return f"helm.install_dir {folder} does not exist and cannot be created: {probe_at} is not writable"
    target = folder / HELM
    if target.is_dir():
        return f"helm.install_dir {folder}: {target} is a folder, not a helm binary"
    return None


def make_folder(folder: Path) -> list[Path]:
    """Create folder (and missing parents, 0755); return what was created, outermost first."""
    missing: list[Path] = []
    at = folder
    while not at.exists():
        missing.append(at)
        at = at.parent
    for path in reversed(missing):
        path.mkdir(mode=0o755)
    return list(reversed(missing))


def remove_folders(created: list[Path]) -> None:
    """Remove the folders make_folder created, innermost first, only while they are empty."""
    for path in reversed(created):
        try:
            path.rmdir()
        except OSError:  # not empty (someone put something there) or already gone: leave it
            return


# -- the archive -----------------------------------------------------------------------------------


def extract_helm(archive: IO[bytes], tag: str, folder: Path) -> Path:
    """Copy `<tag>/helm` out of the (already verified) tar.gz into a new temporary file in folder:
    fsynced, mode 0755. No extractall: only that one regular file is read, and an archive with an
    odd member path (absolute, '..', outside `<tag>/`) or two helm members is refused outright, with
    nothing left behind. One streaming pass: the archive is decompressed once."""
    wanted = f"{tag}/{HELM}"
    new: Path | None = None
    try:
        with tarfile.open(fileobj=archive, mode="r|gz") as tar:
            for member in tar:
                if _member_path(member, tag) != wanted:
                    continue
                if new is not None:
                    raise PermanentError(f"the helm archive holds {wanted} twice: refused")
                if not member.isreg():
                    raise PermanentError(f"the helm archive's {wanted} is not a regular file: refused")
                if member.size > MAX_BINARY:
                    raise PermanentError(f"the helm archive's {wanted} is {member.size} bytes: refused")
                source = tar.extractfile(member)
                if source is None:
                    raise PermanentError(f"the helm archive's {wanted} cannot be read")
                new = _write_temp(source, folder)
        if new is None:
            raise PermanentError(f"the helm archive has no {wanted}",
                                 hint="is helm.download_url serving official helm release archives?")
        return new
    except BaseException as exc:
        if new is not None:
            new.unlink(missing_ok=True)
        if isinstance(exc, tarfile.TarError | EOFError | zlib.error | OSError):  # gzip's are OSErrors
            raise PermanentError(f"the helm archive is not a readable tar.gz: {exc}") from exc
        raise


def _member_path(member: tarfile.TarInfo, tag: str) -> str:
    """The member's path (without a leading ./); an odd one is refused outright."""
    name = member.name[2:] if member.name.startswith("./") else member.name
    norm = posixpath.normpath(name) if name else ""
    if (not name or name.startswith("/") or "\\" in name or "\0" in name or norm != name.rstrip("/")
            or ".." in norm.split("/") or (norm != tag and not norm.startswith(tag + "/"))):
        raise PermanentError(f"the helm archive holds an unexpected path {member.name!r}: refused",
                             hint=f"an official helm archive holds only {tag}/...")
    return norm


def _write_temp(source: IO[bytes], folder: Path) -> Path:
    """Copy source into a new temp file in folder. Errors writing it (the local disk, not the
    archive) are reported naming the folder."""
    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=f".{HELM}-", suffix=".labup-tmp")
    except OSError as exc:
        raise _write_error(folder, exc) from exc
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := source.read(_CHUNK):
                try:
                    out.write(chunk)
                except OSError as exc:
                    raise _write_error(folder, exc) from exc
            try:
                out.flush()
                os.fsync(out.fileno())  # a rename must never publish a file whose data is not on disk
                os.fchmod(out.fileno(), 0o755)
            except OSError as exc:
                raise _write_error(folder, exc) from exc
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def _write_error(folder: Path, exc: OSError) -> PermanentError:
    return PermanentError(f"could not write into helm.install_dir {folder}: {exc.strerror or exc}")


# -- swapping the binary ---------------------------------------------------------------------------


BACKUP_NAME = re.compile(r"\.helm\.labup-backup-\d{8}T\d{6}-[0-9a-f]{6}")


def fingerprint(path: Path) -> tuple[int | None, str | None]:
    """(size, sha256) of a regular file, without following a symlink; (None, None) otherwise."""
    import hashlib
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None, None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None, None
        digest = hashlib.sha256()
        while chunk := os.read(fd, 1 << 20):
            digest.update(chunk)
        return info.st_size, digest.hexdigest()
    finally:
        os.close(fd)


def install(new: Path, target: Path) -> Path | None:
    """Atomically make `new` the file at target. A file already there is first kept as a hidden
    backup beside it (a hard link where possible, so target is never missing, not even for a moment);
    returns that backup's path, or None when there was nothing to replace."""
    backup: Path | None = None
    if target.exists() or target.is_symlink():
        backup = target.with_name(f".{target.name}.labup-backup-{time.strftime('%Y%m%dT%H%M%S')}-"
                                  f"{uuid.uuid4().hex[:6]}")
        try:
            os.link(target, backup, follow_symlinks=False)
        except OSError:  # a filesystem without hard links
            shutil.copy2(target, backup, follow_symlinks=False)
    try:
        os.replace(new, target)
    except BaseException:
        if backup is not None:
            backup.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)
    return backup


def restore(backup: Path, target: Path) -> None:
    """Put the backup back at target, atomically."""
    os.replace(backup, target)
    _fsync_dir(target.parent)


def remove(target: Path) -> None:
    target.unlink()
    _fsync_dir(target.parent)


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable (the directory entry itself)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on a directory: the rename still happened
        pass
    finally:
        os.close(fd)
