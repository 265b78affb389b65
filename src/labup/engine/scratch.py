"""One private temporary folder per labup process, for everything that may hold a credential.

The kubernetes client writes the kubeconfig's client key and certificates to temp files, helm gets its
values through a temp file, talosctl its patch: all of them go through `tempfile` (and TMPDIR, which
the child tools inherit), so pointing both at a 0700 folder of this run puts every such file in one
place that is removed on every exit path (return, exception, SIGTERM, SIGHUP, SIGINT). Only SIGKILL
escapes: the next labup start removes the folders of runs that no longer exist, and says so.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

PREFIX = "labup-run-"
_NAME = re.compile(rf"^{re.escape(PREFIX)}(\d+)-")


class Scratch:
    def __init__(self) -> None:
        self.base = Path(tempfile.gettempdir())
        self.folder: Path | None = None
        self.swept: list[str] = []
        self._saved: tuple[str | None, str | None] = (None, None)

    def __enter__(self) -> Scratch:
        self.swept = sweep(self.base)
        self.folder = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=self.base))  # mode 0700
        self._saved = (tempfile.tempdir, os.environ.get("TMPDIR"))
        tempfile.tempdir = str(self.folder)
        os.environ["TMPDIR"] = str(self.folder)
        return self

    def __exit__(self, *exc: object) -> None:
        old_tempdir, old_env = self._saved
        tempfile.tempdir = old_tempdir
        if old_env is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = old_env
        _forget_kubernetes_temp_files()
        if self.folder is not None:
            remove(self.folder)
            self.folder = None


def remove(folder: Path) -> None:
    """Remove the folder though threads of the run may still write into it (a check blocked in a
    credential plugin when a signal ends the run): renamed first, so a file made by its old path fails
    instead of landing in it, then removed, again while a late file keeps it from going."""
    doomed = folder.with_name(folder.name + ".gone")  # still this pid's scratch name: a later sweep finds it
    try:
        os.rename(folder, doomed)
    except OSError:
        doomed = folder
    for _ in range(5):
        shutil.rmtree(doomed, ignore_errors=True)
        if not os.path.lexists(doomed):
            return


def sweep(base: Path) -> list[str]:
    """Remove this user's scratch folders whose labup process is gone; the pids they belonged to."""
    removed = []
    try:
        entries = list(os.scandir(base))
    except OSError:
        return removed
    for entry in entries:
        match = _NAME.match(entry.name)
        if not match or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            if entry.stat(follow_symlinks=False).st_uid != os.getuid():
                continue
        except OSError:
            continue
        pid = int(match.group(1))
        if pid != os.getpid() and not _alive(pid):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(str(pid))
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _forget_kubernetes_temp_files() -> None:
    """The client caches the names of the files it wrote (to reuse them): they are gone with the folder."""
    import sys

    module = sys.modules.get("kubernetes.config.kube_config")
    if module is not None and isinstance(getattr(module, "_temp_files", None), dict):
        module._temp_files.clear()
