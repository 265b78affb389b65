"""What a step can use: the lab, the run mode, facts shared between phases, and the adapters."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

from labup.config import Lab
from labup.engine.retry import call_with_retry
from labup.engine.shared import RunShared
from labup.errors import TransientError, Unreadable

if TYPE_CHECKING:
    from collections.abc import Callable

    from labup.engine.progress import Progress


T = TypeVar("T")


@dataclass
class Context:
    lab: Lab
    dry_run: bool
    reporter: Progress  # labup.ui.Reporter
    facts: dict[str, Any] = field(default_factory=dict)  # e.g. "vip_holder" set by vip, read by traefik
    shared: RunShared = field(default_factory=RunShared)  # adapters and fact snapshots of this run

    def retry(self, fn: Callable[[], Any], what: str) -> Any:
        """Run a read or write with the lab's retry policy, telling the user about each retry."""

        def on_retry(attempt: int, exc: BaseException, sleep: float) -> None:
            self.reporter.note(f"{what}: attempt {attempt} failed ({_one_line(exc)}); "
                               f"retrying in {sleep:.1f}s")

        policy = self.lab.retry
        if self.dry_run:  # a plan should come quickly: an unreachable system is soon shown `unknown`
            policy = replace(policy, attempts=min(policy.attempts, 2), total_s=min(policy.total_s, 15.0))
        return call_with_retry(policy, fn, on_retry=on_retry)

    def read(self, fn: Callable[[], T], what: str, hint: str | None = None) -> T:
        """A read with the retry policy; still unanswered after it, the state is unknown
        (Unreadable: a dry run shows `unknown` and goes on, an apply stops before writing)."""
        try:
            return self.retry(fn, what)  # type: ignore[no-any-return]
        except TransientError as exc:
            raise Unreadable(f"{what}: {exc.message} (gave up after retrying)",
                             hint=exc.hint or hint) from exc

    def adapter(self, name: str, factory: Callable[[Context], Any]) -> Any:
        """One adapter instance per system per run, created on first use (imports stay lazy)."""
        return self.shared.get(name, lambda: factory(self))


def _one_line(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return text.strip().splitlines()[0][:200] if text.strip() else type(exc).__name__
