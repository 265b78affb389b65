"""The error kinds labup reports, each tied to a documented exit code (DESIGN.md §1)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_ROLLBACK_INCOMPLETE = 3
EXIT_LOCKED = 4


class LabupError(Exception):
    """Base error: a message for the user, an optional hint, an exit code."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class ConfigError(LabupError):
    """lab.yaml is invalid; `path` is the dotted field path (e.g. `vip.address`)."""

    exit_code = EXIT_INVALID

    def __init__(self, path: str, message: str, hint: str | None = None) -> None:
        super().__init__(f"{path}: {message}" if path else message, hint)
        self.path = path


class UsageError(LabupError):
    """A command-line argument is invalid."""

    exit_code = EXIT_INVALID


class LockHeld(LabupError):
    """Another labup run holds this lab's lock."""

    exit_code = EXIT_LOCKED


class TransientError(LabupError):
    """A failure worth retrying: connection refused/reset, timeout, HTTP 5xx/429, Talos Unavailable."""


class PermanentError(LabupError):
    """A failure that retrying cannot fix: validation, 4xx, a refused VIP."""


class Unreadable(LabupError):
    """Live state could not be read (tool missing, no kubeconfig, node unreachable).

    A dry run shows the step as `unknown` with this reason and goes on; an apply stops before any write.
    """


class PreflightError(PermanentError):
    """A pre-flight check failed: nothing was written."""


class NotBuilt(LabupError):
    """A phase or check that does not exist yet: said honestly, never reported as success."""


class Interrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM arrived during a run. A BaseException, so no library's `except Exception`
    can swallow it on its way to the runner, which rolls back."""

    exit_code = EXIT_FAILED

    def __init__(self, signame: str) -> None:
        super().__init__(f"interrupted by {signame}")
        self.signame = signame
        self.message = f"interrupted by {signame}"
        self.hint: str | None = None


class DryRunViolation(AssertionError):
    """A write was attempted during a dry run: a bug in labup, never swallowed."""
