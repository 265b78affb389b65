"""Retries for transient failures only: exponential backoff with jitter, bounded in attempts and time."""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from typing import TypeVar

from labup.config import Retry
from labup.errors import Interrupted, LabupError, TransientError

T = TypeVar("T")

_TRANSIENT_ERRNOS = {errno.ECONNREFUSED, errno.ECONNRESET, errno.ETIMEDOUT, errno.EHOSTUNREACH,
                     errno.ENETUNREACH, errno.ECONNABORTED, errno.EPIPE}


def is_transient(exc: BaseException) -> bool:
    """Connection refused/reset, timeouts, HTTP 5xx/429 and Talos Unavailable are worth a retry."""
    if isinstance(exc, Interrupted | KeyboardInterrupt):
        return False
    if isinstance(exc, TransientError):
        return True
    if isinstance(exc, LabupError):
        return False
    if isinstance(exc, TimeoutError | socket.timeout | ConnectionError):
        return True
    if isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS:
        return True
    status = getattr(exc, "status", None)  # kubernetes ApiException, without importing it
    if isinstance(status, int):
        return status == 429 or 500 <= status < 600 or status == 0
    # urllib3 errors arrive wrapped; their class names are stable
    return type(exc).__name__ in {"MaxRetryError", "NewConnectionError", "ProtocolError",
                                  "ReadTimeoutError", "ConnectTimeoutError"}


def call_with_retry(policy: Retry, fn: Callable[[], T], *,
                    on_retry: Callable[[int, BaseException, float], None] | None = None) -> T:
    """Call fn, retrying transient failures per the lab's policy; permanent ones raise at once."""
    import tenacity

    def before_sleep(state: tenacity.RetryCallState) -> None:
        if on_retry and state.outcome is not None and state.next_action is not None:
            on_retry(state.attempt_number, state.outcome.exception(), state.next_action.sleep)

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_transient),
        wait=tenacity.wait_random_exponential(multiplier=policy.initial_s, max=policy.max_s),
        stop=tenacity.stop_after_attempt(policy.attempts) | tenacity.stop_after_delay(policy.total_s),
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(fn)
