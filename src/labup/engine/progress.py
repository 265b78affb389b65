"""What the engine and the steps tell the user while a run goes, as an interface: the engine knows
nothing of the terminal. labup.ui.Reporter is the implementation; tests may pass their own."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from labup.engine.results import StepResult


class Progress(Protocol):
    def phase(self, name: str) -> None: ...

    def step(self, phase: str, step: str, spinner: bool = False) -> AbstractContextManager[None]: ...

    def result(self, r: StepResult) -> None: ...

    def note(self, text: str) -> None: ...

    def progress(self, description: str, total: int | None) -> AbstractContextManager[Callable[[int], None]]: ...
