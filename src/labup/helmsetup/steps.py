"""The helm phase's step: find a helm of at least helm.version, or install the official one,
checksum-verified (see labup.phases.helm for the phase's story)."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from labup.adapters import helmbin
from labup.adapters.helmbin import remember
from labup.engine.context import Context
from labup.engine.model import Observation, Step
from labup.errors import PermanentError, PreflightError, TransientError

_MIRROR_HINT = ("check the network, or set helm.download_url to a reachable mirror serving "
                "helm-v<version>-<os>-<arch>.tar.gz and its .sha256sum")


class HelmBinaryStep(Step):
    name = "binary"
    long_running = False  # the download shows its own progress bar; a spinner would fight it

    def __init__(self, ctx: Context) -> None:
        self.cfg = ctx.lab.helm  # no I/O here: `labup rollback` builds this step just to undo

    @property
    def target(self) -> Path:
        return self.cfg.install_dir / helmbin.HELM

    def _url(self, tag: str) -> str:
        return f"{self.cfg.download_url}/{helmbin.archive_name(self.cfg.version, tag)}"

    # -- read -------------------------------------------------------------------------------------

    def preflight(self, ctx: Context) -> None:
        """Whatever would stop an install is found before any download: the platform, the folder."""
        found, _ = helmbin.find(self.cfg.install_dir, self.cfg.version)
        if found:
            return
        if helmbin.platform_tag() is None:
            import platform

            raise PreflightError(f"helm publishes no .tar.gz for {platform.system()} "
                                 f"{platform.machine()}: labup cannot install it here",
                                 hint=f"install helm v{self.cfg.version} or newer yourself, on PATH")
        problem = helmbin.folder_problem(self.cfg.install_dir)
        if problem:
            raise PreflightError(problem, hint="set helm.install_dir to a folder this user can write "
                                               "(e.g. ~/.local/bin), or put a new-enough helm on PATH")

    def observe(self, ctx: Context) -> Observation:
        found, seen = helmbin.find(self.cfg.install_dir, self.cfg.version)
        if found:
            remember(ctx, found)
            return Observation(True, f"helm v{found.version} at {found.path} "
                                     f"(at least v{self.cfg.version})")
        tag = helmbin.platform_tag()
        if tag is None:
            raise PermanentError("helm publishes no .tar.gz for this platform")
        url = self._url(tag)
        why = "; ".join(f"{s.describe()} is older than v{self.cfg.version}" if s.version else s.describe()
                        for s in seen) or f"no helm on PATH or in {self.cfg.install_dir}"
        here = next((s for s in seen if helmbin.same_file(s.path, self.target)), None)
        diff = f"- {self.target} ({here.describe()})\n" if here else ""
        diff += f"+ {self.target} (helm v{self.cfg.version} from {url}, sha256-checked)"
        return Observation(False, f"{why}; install helm v{self.cfg.version} from {url} as {self.target}",
                           diff=diff, data={"tag": tag, "url": url,
                                            "replaced_version": here.version if here else None})

    # -- write ------------------------------------------------------------------------------------

    def apply(self, ctx: Context, seen: Observation) -> dict[str, Any]:
        from labup.adapters import download  # http.client and friends: only when downloading

        tag, url = seen.data["tag"], seen.data["url"]
        name = helmbin.archive_name(self.cfg.version, tag)
        folder = self.cfg.install_dir
        created = _local(folder, lambda: helmbin.make_folder(folder))
        try:
            checksum_url = f"{url}.sha256sum"
            expected = download.parse_sha256sum(
                _download(ctx, lambda: download.fetch_text(checksum_url), f"helm: GET {checksum_url}"),
                name, checksum_url)
            # an unnamed temp file: whatever happens (mismatch, crash), no partial archive is left
            with tempfile.TemporaryFile(prefix="labup-helm-") as archive:
                deadline = time.monotonic() + ctx.lab.retry.total_s  # every attempt together
                actual = _download(ctx, lambda: _fetch_archive(ctx, url, name, archive, deadline),
                                   f"helm: GET {url}")
                if actual != expected:
                    raise download.ChecksumMismatch(
                        f"checksum mismatch for {name}: {checksum_url} says {expected}, the download "
                        f"is {actual}; nothing was installed",
                        hint="the mirror served a corrupt or altered file; try again, or another mirror")
                archive.seek(0)
                new = helmbin.extract_helm(archive, tag, folder)
            try:
                reported = helmbin.read_version(new)
                if reported != self.cfg.version:
                    raise PermanentError(f"the downloaded {name} says it is helm v{reported}, "
                                         f"not v{self.cfg.version}: not installed")
                backup = _local(folder, lambda: helmbin.install(new, self.target))
            finally:
                new.unlink(missing_ok=True)  # already renamed into place, unless something failed
        except BaseException:
            helmbin.remove_folders(created)
            raise
        if not _on_path(folder):
            ctx.reporter.note(f"{folder} is not on PATH: labup uses {self.target} directly; "
                              "add the folder to PATH to run this helm yourself")
        # journaled: paths and versions only
        size, digest = helmbin.fingerprint(self.target)
        return {"path": str(self.target), "version": self.cfg.version, "size": size, "sha256": digest,
                "backup": str(backup) if backup else None,
                "replaced_version": seen.data.get("replaced_version") if backup else None,
                "created_dirs": [str(p) for p in created]}

    def owns(self, ctx: Context, data: dict[str, Any]) -> str | None:
        """Only the lab's own install_dir/helm, its own backup beside it, and folders on the way to it."""
        folder = self.cfg.install_dir
        if str(data.get("path")) != str(self.target):
            return f"it names {data.get('path')!r}, not this lab's helm {self.target} (helm.install_dir)"
        backup = data.get("backup")
        if backup is not None and not (isinstance(backup, str) and Path(backup).parent == folder
                                       and helmbin.BACKUP_NAME.fullmatch(Path(backup).name)):
            return f"its backup {backup!r} is not a labup backup in {folder}"
        for made in data.get("created_dirs") or []:
            if not isinstance(made, str) or not (folder == Path(made) or Path(made) in folder.parents):
                return f"it would remove the folder {made!r}, which is not {folder} or a parent of it"
        if not isinstance(data.get("version"), str) or not isinstance(data.get("sha256"), str) \
                or not isinstance(data.get("size"), int):
            # without the installed file's checksum nothing proves the file there is labup's: it would be
            # run (to read its version) and removed on the journal's word alone
            return "it records no checksum of the file labup installed, so that file cannot be recognised"
        return None

    def undo(self, ctx: Context, data: dict[str, Any]) -> str:
        target, version = Path(data["path"]), data["version"]
        backup = Path(data["backup"]) if data.get("backup") else None
        old = f"helm v{data['replaced_version']}" if data.get("replaced_version") else "the helm"
        if backup and not (backup.exists() or backup.is_symlink()):
            raise PermanentError(f"cannot restore {old} that labup replaced at {target}: its backup "
                                 f"{backup} is gone", hint=f"{target} is still helm v{version}; "
                                 "reinstall the helm you had by hand")
        if target.exists() or target.is_symlink():
            if helmbin.fingerprint(target) != (data.get("size"), data.get("sha256")):
                # not the file labup installed (checked before running it: it could be anything)
                kept = f"; the helm it replaced is still kept at {backup}" if backup else ""
                return f"left {target} alone: it is no longer the helm v{version} labup installed{kept}"
            now = helmbin.probe(target)
            if now.version != version:  # replaced since: it is not labup's any more
                kept = f"; the helm it replaced is still kept at {backup}" if backup else ""
                return f"left {target} alone: it is now {now.describe()}, not the v{version} labup installed{kept}"
        if backup:
            helmbin.restore(backup, target)
            done = f"restored {old} at {target} (removed helm v{version})"
        elif target.exists() or target.is_symlink():
            helmbin.remove(target)
            done = f"removed helm v{version} from {target}"
        else:
            done = f"{target} was already gone"
        helmbin.remove_folders([Path(p) for p in data.get("created_dirs") or []])
        return done


def _fetch_archive(ctx: Context, url: str, name: str, archive: Any, deadline: float) -> str:
    """One attempt: start the file over, stream the archive into it with a progress bar."""
    from labup.adapters import download

    archive.seek(0)
    archive.truncate()
    with download.open_url(url) as got, ctx.reporter.progress(f"downloading {name}", got.length) as advance:
        return got.copy_to(archive, advance, deadline=deadline)


def _download(ctx: Context, fn: Any, what: str) -> Any:
    """Retry transient failures with the lab's policy; once they are exhausted, stop for good (the
    runner must not retry the whole install on top of these retries)."""
    try:
        return ctx.retry(fn, what)
    except TransientError as exc:
        raise PermanentError(f"{what}: {exc.message} (gave up after retrying)", hint=_MIRROR_HINT) from exc


def _local(folder: Path, fn: Any) -> Any:
    """A file operation in install_dir: its failure is the user's to fix, said naming the folder."""
    try:
        return fn()
    except OSError as exc:
        raise PermanentError(f"could not install helm into helm.install_dir {folder}: {exc}",
                             hint="check the folder's permissions and free space") from exc


def _on_path(folder: Path) -> bool:
    return any(p and Path(p) == folder for p in os.environ.get("PATH", "").split(os.pathsep))

