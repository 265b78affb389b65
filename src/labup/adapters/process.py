"""Run an outside tool (talosctl, helm) through `sh`: explicit argv, never a shell, always a timeout.

Output is returned, never logged: talosctl's stdout can be the machine config (the cluster's CA keys).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labup.errors import Interrupted, LabupError, TransientError
from labup.redact import redact


@dataclass(frozen=True)
class ToolResult:
    argv: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str


KILL_GRACE_S = 60.0  # how long an interrupted tool may take to clean up after itself


class ToolFailed(LabupError):
    """A tool exited non-zero; `stderr` is its own (redacted) message."""

    def __init__(self, tool: str, exit_code: int, stderr: str, hint: str | None = None) -> None:
        text = redact(stderr.strip()) or f"{tool} exited {exit_code} without a message"
        super().__init__(f"{tool} failed (exit {exit_code}): {text}", hint)
        self.tool = tool
        self.exit_code_of_tool = exit_code
        self.stderr = redact(stderr)


class ToolTimeout(TransientError):
    pass


class ToolKilled(Interrupted):
    """labup was interrupted, and the tool it was running did not stop within `grace_s` of being told
    to: it was killed, mid-operation. Still an interruption (the run stops and rolls back)."""

    def __init__(self, signame: str, tool: str, grace_s: float) -> None:
        super().__init__(signame)
        self.tool = tool
        self.grace_s = grace_s
        self.message = f"interrupted by {signame}; {tool} did not stop within {grace_s:g}s and was killed"


def find_tool(name: str, extra_dirs: Sequence[Path] = ()) -> Path | None:
    """The tool on PATH, else in one of extra_dirs (e.g. helm.install_dir)."""
    found = shutil.which(name)
    if found:
        return Path(found)
    for folder in extra_dirs:
        candidate = Path(folder).expanduser() / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def run_tool(binary: Path | str, args: Sequence[str], *, timeout: float,
             env: Mapping[str, str] | None = None, stdin: str | None = None,
             check: bool = True, grace_s: float = KILL_GRACE_S) -> ToolResult:
    """Run binary with args; raise ToolFailed on a non-zero exit (if check), ToolTimeout on timeout.

    If labup is interrupted while waiting, the child gets SIGINT and `grace_s` to finish its own
    clean-up, then is killed (ToolKilled), so no orphan keeps writing.
    """
    import sh

    name = Path(str(binary)).name
    argv = (str(binary), *args)
    full_env = dict(os.environ) | dict(env or {})
    command = sh.Command(str(binary))
    # Ctrl-C held off while the child is made: between fork and exec the child runs Python (labup's
    # handlers), and a signal there printed its traceback on labup's stderr. The parent gets the
    # signal as soon as the spawn returns; the child gets default handlers, then the signals.
    held = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
    try:
        # no `_timeout`: sh's is a non-daemon Timer thread, and one left behind (a Ctrl-C during the
        # spawn, before labup holds the command) kept labup alive for the whole timeout after it ended
        running = command(*args, _bg=True, _env=full_env, _in=stdin, _tty_out=False, _return_cmd=True,
                          _ok_code=list(range(256)), _bg_exc=False, _encoding="utf-8", _decode_errors="replace",
                          _preexec_fn=_child_signals)
    except sh.CommandNotFound:
        raise LabupError(f"{name}: not found at {binary}") from None
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        _signal(running, signal.SIGKILL)

    killer = threading.Timer(timeout, expire)
    killer.daemon = True  # never keeps labup alive
    killer.start()
    try:
        running.wait()
    except BaseException as exc:
        if expired.is_set():
            raise ToolTimeout(f"{name} {' '.join(args[:3])}: no answer within {timeout:g}s") from None
        if _kill(running, grace_s) and isinstance(exc, KeyboardInterrupt):
            signame = exc.signame if isinstance(exc, Interrupted) else "SIGINT"
            raise ToolKilled(signame, name, grace_s) from exc
        raise
    finally:
        killer.cancel()
    result = ToolResult(argv, running.exit_code, _text(running.stdout), _text(running.stderr))
    if check and result.exit_code != 0:
        raise ToolFailed(name, result.exit_code, result.stderr)
    return result


_HELD = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def _child_signals() -> None:
    """In the child, before exec: the default action for Ctrl-C and SIGTERM (SIGHUP stays as sh set
    it: ignored, a tool outlives a closed terminal), then let the held signals in."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _HELD)


def _signal(running: Any, signum: int) -> None:
    process = getattr(running, "process", None)
    with contextlib.suppress(Exception):  # already gone
        if process is not None:
            process.signal(signum)


def _text(data: str | bytes | None) -> str:
    if data is None:
        return ""
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else data


def _kill(running: Any, grace_s: float = KILL_GRACE_S) -> bool:
    """Stop the child and wait for it: a helm told to stop still undoes its own half-done install
    (--atomic/--rollback-on-failure); labup's rollback must not start before it has finished.
    True when it had to be killed (it outlived `grace_s`)."""
    import sh

    process = getattr(running, "process", None)
    try:
        if process is None or not process.is_alive()[0]:
            return False
        process.signal(signal.SIGINT)  # what a terminal's Ctrl-C would send: helm cleans up on it
        try:
            running.wait(timeout=grace_s)
        except sh.TimeoutException:
            process.kill()
            return True
    except Exception:  # already gone: nothing to clean up
        pass
    return False
