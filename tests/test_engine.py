"""The phase engine with in-memory steps: convergence, dry-run, retries, rollback, journal, lock,
signals. The lock and signal cases run a real labup process (tests/engine_child.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labup.config import Retry, load
from labup.engine import results as res
from labup.engine.context import Context
from labup.engine.journal import Journal, ensure_state_dir
from labup.engine.runner import Runner
from labup.ui import Reporter

from memsteps import FileStep, phase

HERE = Path(__file__).parent
FAST = Retry(attempts=3, initial_s=0.01, max_s=0.02, total_s=5)


@pytest.fixture
def lab(write_lab, tmp_path: Path):
    return load(write_lab())


@pytest.fixture
def state(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    path.mkdir()
    return path


def run(lab, phases, *, dry_run: bool = False, journal: bool = True) -> tuple[res.RunReport, Journal | None]:
    from dataclasses import replace

    lab = replace(lab, retry=FAST)
    j = Journal(ensure_state_dir(lab.state_dir)) if journal and not dry_run else None
    ctx = Context(lab=lab, dry_run=dry_run, reporter=Reporter(quiet=True))
    return Runner(ctx, phases, "apply", j).run(), j


def calls(state: Path) -> list[str]:
    log = state / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def test_converged_steps_make_no_write(lab, state: Path) -> None:
    (state / "a").touch()
    (state / "b").touch()
    report, _ = run(lab, [phase("p", FileStep(state, "a"), FileStep(state, "b"))])
    assert report.exit_code == 0
    assert [r.status for r in report.results] == [res.OK, res.OK]
    assert not [c for c in calls(state) if c.startswith("apply")]


def test_apply_then_second_run_changes_nothing(lab, state: Path) -> None:
    steps = lambda: [phase("p", FileStep(state, "a"), FileStep(state, "b"))]  # noqa: E731
    first, _ = run(lab, steps())
    assert [r.status for r in first.results] == [res.CHANGED, res.CHANGED]
    (state / "calls.log").unlink()
    second, _ = run(lab, steps())
    assert [r.status for r in second.results] == [res.OK, res.OK]
    assert calls(state) == ["observe a", "observe b"]


def test_dry_run_never_reaches_a_write_path(lab, state: Path) -> None:
    steps = [FileStep(state, "a", apply_forbidden=True), FileStep(state, "b", apply_forbidden=True)]
    report, _ = run(lab, [phase("p", *steps)], dry_run=True)
    assert report.exit_code == 0
    assert [r.status for r in report.results] == [res.PLANNED, res.PLANNED]
    assert report.results[0].diff == "+ a"
    assert not (state / "a").exists() and not lab.state_dir.exists()  # no journal, no lock


def test_failure_rolls_back_earlier_steps_newest_first(lab, state: Path) -> None:
    steps = [phase("one", FileStep(state, "a"), FileStep(state, "b")),
             phase("two", FileStep(state, "c"), FileStep(state, "d", fail_apply="permanent"))]
    report, journal = run(lab, steps)
    assert report.exit_code == 1
    assert "d: refused" in (report.error or "")
    assert [(r.step, r.status) for r in report.undone] == [("c", res.UNDONE), ("b", res.UNDONE),
                                                           ("a", res.UNDONE)]
    assert not any((state / n).exists() for n in "abcd")
    assert [c for c in calls(state) if c.startswith("undo")] == ["undo c", "undo b", "undo a"]
    assert journal is not None and journal.pending_undos() == []


def test_transient_errors_are_retried_permanent_ones_are_not(lab, state: Path) -> None:
    report, _ = run(lab, [phase("p", FileStep(state, "flaky", transient_failures=2))])
    assert report.exit_code == 0
    assert calls(state).count("apply flaky") == 3

    report, _ = run(lab, [phase("p", FileStep(state, "bad", fail_apply="permanent"))])
    assert report.exit_code == 1
    assert calls(state).count("apply bad") == 1

    report, _ = run(lab, [phase("p", FileStep(state, "down", fail_apply="transient"))])
    assert report.exit_code == 1
    assert calls(state).count("apply down") == FAST.attempts  # bounded


def test_undo_failure_exits_3_and_says_what_is_left(lab, state: Path) -> None:
    class StuckUndo(FileStep):
        def undo(self, ctx, data):
            raise RuntimeError("API gone")

    report, _ = run(lab, [phase("p", StuckUndo(state, "a"), FileStep(state, "b", fail_apply="permanent"))])
    assert report.exit_code == 3
    assert report.undone[0].status == res.UNDO_FAILED
    assert "p/a: API gone" in (report.hint or "")


def test_journal_records_each_event(lab, state: Path) -> None:
    steps = [phase("p", FileStep(state, "a"), FileStep(state, "b", fail_apply="permanent"))]
    _, journal = run(lab, steps)
    assert journal is not None
    events = [(e["event"], e.get("step")) for e in journal.events()]
    assert events == [("run-start", None), ("applied", "a"), ("step", "a"), ("step", "b"),
                      ("failed", None), ("undone", "a"), ("run-end", None)]
    failed = next(e for e in journal.events() if e["event"] == "step" and e["step"] == "b")
    assert failed["status"] == res.FAILED and failed["error"] == "b: refused"
    assert oct(journal.path.stat().st_mode & 0o777) == "0o600"
    assert oct(lab.state_dir.stat().st_mode & 0o777) == "0o700"


def test_pending_undos_survive_into_labup_rollback(lab, state: Path) -> None:
    _, journal = run(lab, [phase("p", FileStep(state, "a"), FileStep(state, "b"))])
    assert journal is not None
    pending = journal.pending_undos()
    assert [(p.phase, p.step) for p in pending] == [("p", "b"), ("p", "a")]


def _child(lab_path: Path, state: Path, sleep_s: float) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(HERE / "engine_child.py"), str(lab_path), str(state),
                             str(sleep_s)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "NO_COLOR": "1"})


def _wait_for(path: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_concurrent_run_exits_4_naming_the_holder(write_lab, state: Path) -> None:
    lab_path = write_lab()
    holder = _child(lab_path, state, sleep_s=30)
    try:
        _wait_for(state / "slow.started")
        second = _child(lab_path, state / "other", sleep_s=0)
        out, err = second.communicate(timeout=30)
        assert second.returncode == 4, err
        assert f"pid {holder.pid}" in err and "since" in err
        assert json.loads(out)["exit_code"] == 4
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_signal_during_a_step_rolls_back_and_releases_the_lock(write_lab, state: Path,
                                                              sig: signal.Signals) -> None:
    lab_path = write_lab()
    child = _child(lab_path, state, sleep_s=30)
    _wait_for(state / "slow.started")
    assert (state / "a").exists() and (state / "b").exists()
    child.send_signal(sig)
    out, err = child.communicate(timeout=30)
    assert child.returncode == 1, err
    assert f"interrupted by {sig.name}" in err
    assert not (state / "a").exists() and not (state / "b").exists()
    doc = json.loads(out)
    assert [u["step"] for u in doc["undone"]] == ["b", "a"]
    journal = [json.loads(line) for line in (lab_path.parent / ".labup" / "journal.jsonl").open()]
    assert [e["event"] for e in journal][-3:] == ["undone", "undone", "run-end"]
    # the lock is free again: a new run gets it at once and converges
    (state / "slow.started").unlink()
    again = _child(lab_path, state, sleep_s=0)
    _, err2 = again.communicate(timeout=30)
    assert again.returncode == 0, err2


def test_stale_lock_from_a_killed_run_is_recovered(write_lab, state: Path) -> None:
    lab_path = write_lab()
    child = _child(lab_path, state, sleep_s=30)
    _wait_for(state / "slow.started")
    child.kill()  # SIGKILL: no cleanup at all
    child.wait()
    lock = json.loads((lab_path.parent / ".labup" / "lock").read_text())
    assert lock["pid"] == child.pid
    again = _child(lab_path, state, sleep_s=0)
    _, err = again.communicate(timeout=30)
    assert again.returncode == 0, err
    assert f"recovered a stale lock left by pid {child.pid}" in err


def test_a_dry_run_gives_up_on_an_unreachable_system_quickly(lab, state: Path) -> None:
    from dataclasses import replace

    from labup.errors import TransientError

    class Unreachable(FileStep):
        def observe(self, ctx):  # how phases read: ctx.read retries, then says Unreadable
            return ctx.read(self._refused, "read x")

        def _refused(self):
            self._log("observe")
            raise TransientError("connection refused")

    patient = replace(lab, retry=Retry(attempts=6, initial_s=0.01, max_s=0.02, total_s=60))
    ctx = Context(lab=patient, dry_run=True, reporter=Reporter(quiet=True))
    report = Runner(ctx, [phase("p", Unreachable(state, "x"))], "apply", None).run()
    assert report.exit_code == 0 and report.results[0].status == res.UNKNOWN
    assert "connection refused (gave up after retrying)" in report.results[0].summary
    assert calls(state).count("observe x") == 2  # not the lab's 6: a plan should come quickly
