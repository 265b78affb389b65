"""What each command does, behind the command line: load the lab, lock, run, report, exit code."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from labup.errors import (
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_OK,
    ConfigError,
    LabupError,
    NotBuilt,
    UsageError,
)
from labup.options import Options, emit_json
from labup.phases import PHASE_NAMES


def _reporter(opts: Options) -> Any:
    from labup.ui import Reporter

    # the result on stdout (a plan can be saved: `> plan.txt`), unless stdout carries the JSON document
    return Reporter(color=opts.color, quiet=opts.quiet, verbose=opts.verbose, diff=opts.diff,
                    out=sys.stderr if opts.json else sys.stdout)


def guarded(opts: Options, command: str, body: Callable[[], int]) -> int:
    """Turn labup's errors into a message and their exit code; never a traceback (unless -v).

    The command runs with a private temporary folder (engine/scratch.py) removed on every exit path;
    SIGTERM and SIGHUP end it through that path too (a run's own guard takes over while it runs)."""
    from labup.engine.scratch import Scratch

    with Scratch() as scratch, _ending_signals():
        if scratch.swept:
            _reporter(opts).note("removed the temporary files of labup run(s) that were killed "
                                 f"(pid {', '.join(scratch.swept)}): they may have held credentials")
        return _guarded(opts, command, body)


@contextlib.contextmanager
def _ending_signals() -> Iterator[None]:
    """SIGTERM/SIGHUP raise Interrupted (so clean-up runs) instead of ending the process on the spot."""
    import signal
    import threading

    from labup.errors import Interrupted

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        from labup.adapters import kubeexec

        kubeexec.end_all()
        raise Interrupted(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _guarded(opts: Options, command: str, body: Callable[[], int]) -> int:
    try:
        return body()
    except LabupError as exc:
        _reporter(opts).error(exc.message, exc.hint)
        if exc.exit_code == EXIT_INVALID:
            _reporter(opts).error("nothing was touched")
        emit_json(opts, {"command": command, "ok": False, "exit_code": exc.exit_code,
                          "error": exc.message, "hint": exc.hint})
        return exc.exit_code
    except Exception as exc:
        if opts.verbose:
            traceback.print_exc()
        _reporter(opts).error(f"internal error: {type(exc).__name__}: {exc}",
                              "this is a labup bug; run again with -v for the traceback")
        emit_json(opts, {"command": command, "ok": False, "exit_code": EXIT_FAILED,
                          "error": f"internal error: {type(exc).__name__}"})
        return EXIT_FAILED


def load_lab(opts: Options) -> Any:
    from labup.config import load

    return load(opts.config)


def split_names(values: list[str]) -> list[str]:
    """`--only vip,helm --only traefik` -> [vip, helm, traefik] (kubectl and helm users write both)."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _select(names: list[str], only: list[str], skip: list[str], what: str) -> list[str]:
    import difflib

    if any(not value.strip(" ,") for value in [*only, *skip]):  # `--only "$UNSET"` must not mean "all"
        raise UsageError(f"--only/--skip: an empty {what} name", hint=f"valid {what}s: {', '.join(names)}")
    only, skip = split_names(only), split_names(skip)
    for name in [*only, *skip]:
        if name not in names:
            close = difflib.get_close_matches(name.lower(), names, n=1, cutoff=0.6)
            hint = (f"did you mean '{close[0]}'? " if close else "") + f"valid {what}s, in order: {', '.join(names)}"
            raise UsageError(f"unknown {what} '{name}'", hint=hint)
    both = [n for n in only if n in skip]
    if both:
        raise UsageError(f"--only and --skip both name {what} '{both[0]}'", hint="name it in one of them")
    return [n for n in names if (not only or n in only) and n not in skip]


# -- commands -------------------------------------------------------------------------------------


def init(opts: Options, directory: str, flags: dict[str, Any]) -> int:
    """Write the user's lab.yaml (or `-`: print it). Facts come from the flags, then from questions on a
    terminal; without a terminal, what is missing becomes a CHANGE-ME placeholder that fails validation."""
    def body() -> int:
        from labup import initlab
        from labup.resources import example_lab

        facts = initlab.from_flags(**flags)

        facts_in = initlab.ask_missing(facts) if sys.stdin.isatty() and directory != "-" else facts
        text = initlab.render(example_lab().read_text(), facts_in)
        if directory == "-":
            sys.stdout.write(text)
            return EXIT_OK
        folder = Path(directory)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"DIR: cannot create '{folder}': {exc.strerror}") from None
        target = folder / "lab.yaml"
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            raise UsageError(f"{target} already exists: labup init never overwrites it",
                             hint="edit it, or pass another folder") from None
        except OSError as exc:  # /proc, a read-only folder, a full disk...
            raise UsageError(f"DIR: cannot write {target}: {exc.strerror or exc}") from None
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        schema = _write_schema_beside(target)
        todo = "replace each CHANGE-ME, then " if initlab.PLACEHOLDER in text else ""
        # the next step in plain weight on stderr: it is what the user reads next, not a side note
        from labup.ui import clean

        sys.stderr.write(clean(f"wrote {target}: {todo}run `labup -c {target} apply --dry-run`") + "\n")
        emit_json(opts, {"command": "init", "ok": True, "exit_code": 0, "path": str(target),
                          "placeholders": initlab.PLACEHOLDER in text, "schema": schema})
        return EXIT_OK

    return guarded(opts, "init", body)


def _write_schema_beside(lab_file: Path) -> str | None:
    """lab.schema.json beside a new lab.yaml, for its modeline. A file of that name already there is
    kept (the user's, or an older labup's: `labup schema > lab.schema.json` refreshes it)."""
    from labup.resources import SCHEMA_NAME, lab_schema
    from labup.ui import clean

    target = lab_file.with_name(SCHEMA_NAME)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        if target.is_file() and target.read_bytes() != lab_schema().read_bytes():
            sys.stderr.write(clean(f"kept {target} (not this labup's schema: `labup schema > {target}` "
                                   "refreshes it)") + "\n")
        return str(target)
    except OSError as exc:  # the lab is written; an editor aid must not fail init
        sys.stderr.write(clean(f"could not write {target}: {exc.strerror or exc}") + "\n")
        return None
    with os.fdopen(fd, "wb") as fh:
        fh.write(lab_schema().read_bytes())
    return str(target)


def schema(opts: Options) -> int:
    """Print lab.yaml's JSON Schema (the file shipped in the package) on stdout."""
    from labup.resources import lab_schema

    sys.stdout.write(lab_schema().read_text())
    return EXIT_OK


def apply(opts: Options, *, dry_run: bool, only: list[str], skip: list[str], single: bool = False,
          detailed_exitcode: bool = False) -> int:
    command = f"phase {only[0]}" if single else "apply"

    def body() -> int:
        names = _select(list(PHASE_NAMES), only, skip, "phase")
        lab = load_lab(opts)
        from labup.phases import load_phase, phases_for

        runs_here = phases_for(lab.topology)
        other = [n for n in split_names(only) if n not in runs_here]
        if other:
            raise ConfigError("topology", f"phase {other[0]} runs only in topology: ha; this lab is "
                              f"topology: {lab.topology}", hint=f"its phases, in order: {', '.join(runs_here)}")
        phases = [load_phase(n) for n in names if n in runs_here]
        return run_phases(opts, lab, phases, command + (" --dry-run" if dry_run else ""), dry_run,
                          detailed_exitcode=detailed_exitcode)

    return guarded(opts, command, body)


def _vip_far(lab: Any) -> str | None:
    from labup.validators import vip_far_from

    return vip_far_from(lab.vip.address, [n.address for n in lab.control_planes])


KUBE_PHASES = {"namespace", "cert-manager", "traefik", "verify"}  # the phases that talk to the Kubernetes API


def run_phases(opts: Options, lab: Any, phases: list[Any], command: str, dry_run: bool, *,
               detailed_exitcode: bool = False) -> int:
    """Run phases under the lab's lock and journal (dry runs take neither: they change nothing)."""
    from labup.engine.context import Context
    from labup.engine.journal import Journal, ensure_state_dir
    from labup.engine.lock import LabLock
    from labup.engine.runner import Runner
    from labup.targets import describe

    reporter = _reporter(opts)
    reporter.header(describe(lab))
    if "vip" in {p.name for p in phases} and (far := _vip_far(lab)):
        reporter.note(f"warning: {far}")
    if not dry_run and {p.name for p in phases} & KUBE_PHASES:
        from labup import warmup

        warmup.start(warmup.KUBERNETES + (warmup.SCHEMA if "traefik" in {p.name for p in phases} else ()))
    ctx = Context(lab=lab, dry_run=dry_run, reporter=reporter)
    if dry_run:
        report = Runner(ctx, phases, command, journal=None).run()
    else:
        journal = Journal(ensure_state_dir(lab.state_dir), lab_id=lab.identity)
        with LabLock(lab.state_dir, journal.run_id) as lock:
            lock.set_command(command)
            _fresh_journal_if_untrusted(journal, reporter)
            if lock.recovered_from:
                reporter.note(f"recovered a stale lock left by pid {lock.recovered_from.get('pid')} "
                              f"(since {lock.recovered_from.get('since')}): that process is gone")
            report = Runner(ctx, phases, command, journal=journal).run()
    reporter.summary(report)
    emit_json(opts, report.as_dict())
    return report.detailed_exit_code() if detailed_exitcode else report.exit_code


def _fresh_journal_if_untrusted(journal: Any, reporter: Any) -> None:
    """A journal with lines labup cannot use, or entries of another lab, is set aside (renamed,
    kept) rather than appended to: this run's entries must be provably this lab's."""
    reading = journal.read()
    if not reading.unusable and not journal.foreign(reading):  # one read of the file for both
        return
    kept = journal.set_aside()
    why = (f"{len(reading.unusable)} line(s) it cannot use" if reading.unusable
           else "entries that are not this lab's (copied from another lab?)")
    reporter.note(f"the journal had {why}: kept it as {kept}, starting a new one")


def verify(opts: Options, *, only: list[str], skip: list[str]) -> int:
    def body() -> int:
        from labup.checks import CHECK_NAMES

        names = _select(list(CHECK_NAMES), only, skip, "check")
        lab = load_lab(opts)
        from labup import verify_command

        return verify_command.run_command(opts, lab, names)

    return guarded(opts, "verify", body)


def backup(opts: Options, out: Path | None) -> int:
    def body() -> int:
        lab = load_lab(opts)
        from labup import backup_command

        return backup_command.run_command(opts, lab, out)

    return guarded(opts, "backup", body)


def restore(opts: Options, path: Path, *, dry_run: bool, force: bool, yes: bool) -> int:
    def body() -> int:
        lab = load_lab(opts)
        from labup import restore_command

        return restore_command.run_command(opts, lab, path, dry_run=dry_run, force=force, yes=yes)

    return guarded(opts, "restore", body)


def render(opts: Options, what: str) -> int:
    def body() -> int:
        if what not in ("vip", "traefik", "cert-manager"):
            raise UsageError(f"WHAT: unknown '{what}'", hint="render vip, render traefik or render cert-manager")
        lab = load_lab(opts)
        import importlib

        if what == "vip" and (far := _vip_far(lab)):
            sys.stderr.write(f"labup: warning: {far}\n")
        module = importlib.import_module(f"labup.phases.{what.replace('-', '_')}")
        renderer = getattr(module, "render", None)
        if renderer is None:
            raise NotBuilt(f"labup render {what} is not built yet: its phase issue is open")
        text = renderer(lab)
        if opts.json:  # the same text, as a JSON document like every other command's
            emit_json(opts, {"command": f"render {what}", "ok": True, "exit_code": EXIT_OK, "text": text})
        else:
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return EXIT_OK

    return guarded(opts, f"render {what}", body)


def rollback(opts: Options, phase: str | None, *, dry_run: bool = False, yes: bool = False) -> int:
    def body() -> int:
        if phase is not None:
            _select(list(PHASE_NAMES), [phase], [], "phase")
        lab = load_lab(opts)
        if dry_run:
            return _rollback_plan(opts, lab, phase)
        if not yes:
            if not sys.stdin.isatty():
                raise UsageError("a rollback without a terminal to confirm on needs --yes",
                                 hint="`labup rollback --dry-run` shows what it would undo")
            _rollback_plan(opts, lab, phase)
            sys.stderr.write("Undo these changes? [y/N] ")
            sys.stderr.flush()
            if sys.stdin.readline().strip().lower() not in ("y", "yes"):
                _reporter(opts).note("nothing was undone")
                return EXIT_OK
        return _rollback(opts, lab, phase)

    return guarded(opts, "rollback" + (" --dry-run" if dry_run else ""), body)


def _rollback_plan(opts: Options, lab: Any, phase: str | None) -> int:
    """What `labup rollback` would undo, newest first, and what it would refuse; nothing is changed."""
    from labup.engine.journal import Journal

    if lab.state_dir.is_symlink():  # a preview reads nothing through a link either
        raise ConfigError("", f"{lab.state_dir}: is a symbolic link; labup's state folder must be a real folder",
                          hint="remove the link (labup never follows it)")
    journal = Journal(lab.state_dir, lab_id=lab.identity)
    items = journal.pending_undos(phase) if lab.state_dir.is_dir() else []
    reporter = _reporter(opts)
    if not items:
        reporter.note("nothing to roll back: the journal has no change labup still owns")
    for item in items:
        verdict = f"refused: {item.foreign}" if item.foreign else "would undo"
        reporter.note(f"{verdict}  {item.phase}/{item.step} (applied {item.at}, run {item.run}): "
                      f"{json.dumps(item.undo, sort_keys=True)[:300]}")
    emit_json(opts, {"command": "rollback --dry-run", "ok": True, "exit_code": EXIT_OK,
                      "would_undo": [{"phase": i.phase, "step": i.step, "run": i.run, "at": i.at,
                                      "refused": i.foreign, "undo": i.undo} for i in items]})
    return EXIT_OK


def version(opts: Options) -> int:
    """labup's version, what it pins and what it supports: the answer to "which labup is this?"."""
    def body() -> int:
        from labup import __version__
        from labup.config import Helm
        from labup.traefik.pin import load_pin
        from labup.vip.forms import SUPPORTED_TALOS

        pin = load_pin()
        info = {"labup": __version__, "traefik_chart": f"{pin.name} {pin.version}",
                "traefik": pin.app_version, "helm_default": Helm.version, "helm_supported": "3.x and 4.x",
                "talos_supported": SUPPORTED_TALOS}
        if opts.json:
            emit_json(opts, {"command": "version", "ok": True, "exit_code": EXIT_OK, **info})
        else:
            sys.stdout.write(f"labup {__version__}\n  Traefik chart {pin.name} {pin.version} (Traefik "
                             f"{pin.app_version})\n  helm: installs {Helm.version} by default; drives 3.x and 4.x\n"
                             f"  Talos: {SUPPORTED_TALOS}\n")
        return EXIT_OK

    return guarded(opts, "version", body)


def _rollback(opts: Options, lab: Any, phase: str | None) -> int:
    from labup.engine import model as m
    from labup.engine import results as res
    from labup.engine.context import Context
    from labup.engine.journal import Journal, ensure_state_dir
    from labup.engine.lock import LabLock
    from labup.engine.runner import undo_all
    from labup.engine.signals import SignalGuard
    from labup.phases import load_phase

    reporter = _reporter(opts)
    journal = Journal(ensure_state_dir(lab.state_dir), lab_id=lab.identity)
    report = res.RunReport(command="rollback" + (f" {phase}" if phase else ""), dry_run=False)
    with LabLock(lab.state_dir, journal.run_id) as lock:
        lock.set_command(report.command)
        reading = journal.read()
        unusable = reading.unusable
        if unusable:
            lines = ", ".join(str(n) for n in unusable[:10]) + (" ..." if len(unusable) > 10 else "")
            reporter.note(f"{journal.path}: skipped {len(unusable)} line(s) labup cannot use (line {lines})")
        pending = journal.pending_undos(phase, reading)
        if not pending:
            reporter.note("nothing to roll back: the journal has no change labup still owns")
        else:
            journal.start(report.command, sorted({p.phase for p in pending}))
            ctx = Context(lab=lab, dry_run=False, reporter=reporter)
            steps: dict[tuple[str, str], m.Step] = {}
            for name in dict.fromkeys(p.phase for p in pending):
                if name not in PHASE_NAMES:  # not a phase of labup: its entries are refused below
                    continue
                built = load_phase(name)
                for step in built.steps(ctx) if built.steps else []:
                    steps[(name, step.name)] = step
            reporter.phase("rollback")
            guard = SignalGuard(reporter.note)
            with guard, guard.shield():
                report.undone = undo_all(ctx, pending, steps, journal)
            left = [r for r in report.undone if r.status == res.UNDO_FAILED]
            if left:
                from labup.errors import EXIT_ROLLBACK_INCOMPLETE

                report.exit_code = EXIT_ROLLBACK_INCOMPLETE
                report.error = f"{len(left)} change(s) could not be undone"
                shown = "; ".join(f"{r.phase}/{r.step}: {r.error}" for r in left[:5])
                report.hint = shown + (f"; and {len(left) - 5} more (see above)" if len(left) > 5 else "")
            journal.write("run-end", exit_code=report.exit_code)
    reporter.summary(report)
    emit_json(opts, report.as_dict())
    return report.exit_code
