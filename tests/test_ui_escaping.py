"""Text from outside never drives the terminal nor reads as rich markup (issue 11; kubectl's
CVE-2021-25743 was exactly this): on a terminal (rich) and in plain output alike."""

from __future__ import annotations

import io
import time

import pytest

from labup.checks.model import CheckResult
from labup.engine.results import RunReport, StepResult
from labup.ui import Reporter, clean

HOSTILE = "path [/x] [link=http://evil.example]click[/link] \x1b]0;owned\x07 \x1b[2J \x9b31m end"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("tty", [True, False])
def test_hostile_text_is_shown_not_obeyed(tty: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    stream = Terminal() if tty else io.StringIO()
    ui = Reporter(stream=stream, color=tty)
    assert ui.rich is tty
    result = StepResult("traefik", "release", "failed", summary=HOSTILE, error=HOSTILE, hint=HOSTILE)
    ui.phase("traefik")
    with ui.step("traefik", HOSTILE, spinner=True):
        time.sleep(0.01)
    ui.result(result)
    ui.note(HOSTILE)
    ui.error(HOSTILE, HOSTILE)
    ui.summary(RunReport(command=f"apply {HOSTILE}", dry_run=False, results=[result], error=HOSTILE))
    ui.checks([CheckResult("https-cert", "fail", HOSTILE, hint=HOSTILE)], title=HOSTILE)
    with ui.progress(HOSTILE, 10) as advance:
        advance(10)
    out = stream.getvalue()
    # the words are there, literally, brackets included; the control bytes are shown escaped
    assert "[/x]" in out and "[link=http://evil.example]" in out
    assert "\\x1b]0;owned\\x07" in out
    # the only escape sequences are rich's own styling (CSI ... m), never an OSC title or a clear screen
    assert "\x1b]" not in out and "\x07" not in out and "\x1b[2J" not in out and "\x9b" not in out


def test_clean_keeps_tabs_escapes_line_breaks_and_masks_secrets() -> None:
    # one message, one line: a newline from outside could forge a line of labup's own
    assert clean("a\tb\nc\u2028d") == "a\tb\\x0ac\\u2028d"
    assert clean("token: abcdefghijkl\x00") == "token: <redacted>"
    assert clean("\x7f") == "\\x7f"
