"""The process adapter: explicit argv (no shell), timeouts, and an interrupted tool is given time
to clean up (helm undoing its half-done install) before labup's own rollback starts."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from labup.adapters.process import ToolFailed, ToolTimeout, find_tool, run_tool


def test_arguments_reach_the_tool_verbatim_never_through_a_shell(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    result = run_tool("/bin/echo", [f"$(touch {marker})", ";", "ls", "|", "x"], timeout=5)
    assert result.stdout == f"$(touch {marker}) ; ls | x\n"
    assert not marker.exists()


def test_failure_carries_the_tools_own_message_redacted() -> None:
    script = "import sys; sys.stderr.write('boom\\ntoken: abcdefghijkl\\n'); sys.exit(3)"
    with pytest.raises(ToolFailed) as exc:
        run_tool(sys.executable, ["-c", script], timeout=10)
    assert exc.value.exit_code_of_tool == 3
    assert "boom" in exc.value.message and "abcdefghijkl" not in exc.value.message


def test_timeout_is_transient_and_bounded() -> None:
    started = time.monotonic()
    with pytest.raises(ToolTimeout):
        run_tool("/bin/sleep", ["10"], timeout=0.5)
    assert time.monotonic() - started < 5


def test_interrupt_waits_for_the_tool_to_clean_up(tmp_path: Path) -> None:
    marker = tmp_path / "cleaned"
    child = ("import signal, sys, time\n"
             "def stop(*_):\n"
             "    time.sleep(1)\n"  # like helm uninstalling its interrupted release
             f"    open({str(marker)!r}, 'w').write('done'); sys.exit(1)\n"
             "signal.signal(signal.SIGINT, stop)\n"
             "time.sleep(30)\n")
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        run_tool(sys.executable, ["-c", child], timeout=20)
    assert marker.read_text() == "done"  # labup returned only after the tool finished its clean-up


def test_find_tool_looks_on_path_then_in_extra_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    tool = tmp_path / "extra" / "helm"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\n")
    assert find_tool("helm") is None
    assert find_tool("helm", [tool.parent]) is None  # not executable
    tool.chmod(0o755)
    assert find_tool("helm", [tool.parent]) == tool
