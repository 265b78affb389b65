"""State you can trust (issue 12): the journal, the lock and signals under hostile or broken conditions.

Each test reproduces one attack or breakage in a temporary folder through the real `labup` command and
checks that nothing outside the lab is touched, the exit code, and what is said. No test here sends a
packet: the lab's addresses are documentation ones and every command fails or ends before the network.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from labup.config import lab_identity, load

from conftest import LABUP, example_data, run_labup, shown


@pytest.fixture
def lab_path(tmp_path: Path) -> Path:
    data = example_data()
    data["helm"] = {**data.get("helm", {}), "install_dir": str(tmp_path / "bin")}
    path = tmp_path / "lab" / "lab.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(data))
    return path


def journal_lines(lab_path: Path, *entries: dict[str, Any], lab_id: str | None = "own") -> Path:
    lab = load(lab_path)
    state = lab_path.parent / ".labup"
    state.mkdir(mode=0o700, exist_ok=True)
    ident = lab.identity if lab_id == "own" else lab_id
    journal = state / "journal.jsonl"
    with journal.open("a") as fh:
        for i, entry in enumerate(entries):
            record = {"ts": "2026-12-01T10:00:00+0000", "run": f"r{i}-{os.urandom(3).hex()}", "event": "applied",
                      **entry}
            if ident is not None:
                record["lab"] = ident
            fh.write(json.dumps(record) + "\n")
    return journal


def helm_entry(path: Path, **extra: Any) -> dict[str, Any]:
    return {"phase": "helm", "step": "binary", "undo": {"path": str(path), "version": "4.1.4", "backup": None,
                                                     "created_dirs": [], **extra}}


# -- 1. rollback acts only on what it can prove is labup's, for this lab -----------------------------


def test_rollback_never_deletes_or_moves_a_file_outside_the_lab(lab_path: Path, tmp_path: Path) -> None:
    victim, other = tmp_path / "precious.txt", tmp_path / "other.txt"
    victim.write_text("keep me")
    other.write_text("and me")
    journal_lines(lab_path, helm_entry(victim), helm_entry(tmp_path / "bin" / "helm", backup=str(other)))
    run = run_labup("-c", str(lab_path), "rollback", "--yes")
    assert run.returncode == 3, run.stderr
    assert "refused to undo this journal entry" in shown(run)
    assert f"not this lab's helm {tmp_path / 'bin' / 'helm'}" in shown(run)
    assert "is not a labup backup" in shown(run)
    assert victim.read_text() == "keep me" and other.read_text() == "and me"


def test_rollback_never_runs_an_executable_it_did_not_install(lab_path: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    fake = tmp_path / "bin" / "helm"  # the lab's own path: only the recorded checksum tells it apart
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\ntouch {marker}\necho v4.1.4\n")
    fake.chmod(0o755)
    journal_lines(lab_path, helm_entry(fake, size=12, sha256="0" * 64))
    run = run_labup("-c", str(lab_path), "rollback", "--yes")
    assert run.returncode == 0, run.stderr
    assert "no longer the helm v4.1.4 labup installed" in shown(run)
    assert not marker.exists() and fake.exists()  # never executed, never removed


def test_rollback_never_touches_a_release_in_another_namespace(lab_path: Path) -> None:
    entry = {"phase": "traefik", "step": "release",
             "undo": {"release": "prometheus", "namespace": "monitoring", "revision": 3, "previous": 2}}
    journal_lines(lab_path, entry)
    run = run_labup("-c", str(lab_path), "rollback", "--yes", env={"PATH": "/nonexistent"})
    assert run.returncode == 3, run.stderr
    assert "release 'prometheus' in namespace 'monitoring', not this lab's traefik in traefik" in shown(run)


def test_a_journal_copied_from_another_lab_is_recognised(lab_path: Path, tmp_path: Path) -> None:
    mine = tmp_path / "bin" / "helm"
    journal_lines(lab_path, helm_entry(mine), lab_id=lab_identity(Path("/elsewhere/lab.yaml"), "other"))
    journal_lines(lab_path, helm_entry(mine), lab_id=None)  # written before entries named their lab
    run = run_labup("-c", str(lab_path), "rollback", "--yes")
    assert run.returncode == 3
    assert "written for another lab" in shown(run) and "not marked with this lab's identity" in shown(run)


def test_the_valid_entries_are_still_undone_around_corrupt_lines(lab_path: Path, tmp_path: Path) -> None:
    helm = tmp_path / "bin" / "helm"
    helm.parent.mkdir()
    helm.write_bytes(b"#!/bin/sh\necho v4.1.4\n")
    helm.chmod(0o755)
    import hashlib

    digest = hashlib.sha256(helm.read_bytes()).hexdigest()
    journal = journal_lines(lab_path, helm_entry(helm, size=helm.stat().st_size, sha256=digest),
                            {"phase": "nonsense", "step": "x", "undo": {"a": 1}})
    with journal.open("ab") as fh:
        fh.write(b"1\n[]\n\xff\xfe not utf-8\n" + b"[" * 100_000 + b"\n{\"event\": 5}\n")
    run = run_labup("-c", str(lab_path), "rollback", "--yes")
    assert "Traceback" not in shown(run) and "internal error" not in shown(run)
    assert "skipped 5 line(s) labup cannot use" in shown(run)
    assert "labup no longer knows step nonsense/x" in shown(run)
    assert run.returncode == 3  # the unknown phase's entry is left, and said
    assert not helm.exists()  # the valid, provably labup's entry was undone


# -- 2. state files: never through a symlink; one lock per lab, however its path is spelled ----------


def test_a_symlinked_state_folder_is_refused(lab_path: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o755)
    (lab_path.parent / ".labup").symlink_to(elsewhere)
    run = run_labup("-c", str(lab_path), "rollback", "--yes")
    assert run.returncode == 2 and "is a symbolic link" in shown(run)
    assert elsewhere.stat().st_mode & 0o777 == 0o755 and not list(elsewhere.iterdir())


@pytest.mark.parametrize("name", ["lock", "journal.jsonl"])
def test_a_symlinked_lock_or_journal_is_refused(lab_path: Path, tmp_path: Path, name: str) -> None:
    state = lab_path.parent / ".labup"
    state.mkdir(mode=0o700)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (state / name).symlink_to(victim)
    if name == "lock":
        (state / "journal.jsonl").write_text("")
    run = run_labup("-c", str(lab_path), "rollback", "--yes")
    assert run.returncode == 2, run.stderr
    assert f"{state / name}: is a symbolic link" in shown(run)
    assert victim.read_text() == "precious\n"


def test_the_lock_is_one_per_lab_whatever_the_path(lab_path: Path, tmp_path: Path) -> None:
    link_dir = tmp_path / "via-link"
    link_dir.mkdir()
    (link_dir / "lab.yaml").symlink_to(lab_path)
    assert load(link_dir / "lab.yaml").state_dir == load(lab_path).state_dir == lab_path.parent / ".labup"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from labup.engine.journal import ensure_state_dir
        from labup.engine.lock import LabLock
        with LabLock(ensure_state_dir(Path({str(lab_path.parent / ".labup")!r})), "holder"):
            print("held", flush=True)
            time.sleep(30)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        run = run_labup("-c", str(link_dir / "lab.yaml"), "rollback", "--yes")
        assert run.returncode == 4, run.stderr
    finally:
        holder.kill()
        holder.wait()


# -- 4/5. credentials never outlive the run; exec plugins are bounded, ended and redacted -------------


def exec_kubeconfig(tmp_path: Path, script: str) -> Path:
    plugin = tmp_path / "plugin.sh"
    plugin.write_text("#!/bin/sh\n" + script)
    plugin.chmod(0o755)
    import base64

    cert = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").decode()
    config = {"apiVersion": "v1", "kind": "Config", "current-context": "c",
              "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1",
                                                     "certificate-authority-data": cert}}],
              "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
              "users": [{"name": "u", "user": {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1",
                                                         "command": str(plugin), "interactiveMode": "Never"}}}]}
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def with_kubeconfig(lab_path: Path, kubeconfig: Path, timeout_s: float = 2) -> None:
    data = yaml.safe_load(lab_path.read_text())
    data["kubernetes"] = {"kubeconfig": str(kubeconfig), "timeout_s": timeout_s}
    lab_path.write_text(yaml.safe_dump(data))


def test_a_hanging_exec_plugin_is_bounded_ended_and_its_stderr_redacted(lab_path: Path, tmp_path: Path) -> None:
    pidfile = tmp_path / "plugin.pid"
    kubeconfig = exec_kubeconfig(tmp_path, f"echo $$ > {pidfile}\necho 'token: s3cr3t-t0ken-value' >&2\nsleep 300\n")
    with_kubeconfig(lab_path, kubeconfig, timeout_s=2)
    start = time.monotonic()
    run = run_labup("-c", str(lab_path), "--json", "verify", "--only", "psa-label", timeout=60)
    assert time.monotonic() - start < 15, "the plugin was waited for without a bound"
    assert run.returncode == 1
    assert "gave no credential within 2s" in shown(run)
    pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # ended with its deadline, not left running
    failing = exec_kubeconfig(tmp_path, "echo 'token: s3cr3t-t0ken-value' >&2\nexit 1\n")
    with_kubeconfig(lab_path, failing)
    run = run_labup("-c", str(lab_path), "--json", "verify", "--only", "psa-label", timeout=60)
    assert "s3cr3t-t0ken-value" not in shown(run) and "<redacted>" in shown(run)


def _scratch(tmp: Path) -> list[Path]:
    return sorted(tmp.glob("labup-run-*"))


def verify_stuck_on_a_plugin(lab_path: Path, tmp_path: Path) -> tuple[subprocess.Popen[str], Path, Path,
                                                                       dict[str, str]]:
    """`labup verify` whose kubeconfig exec plugin never answers: (process, TMPDIR, plugin pid file, env)."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    pidfile = tmp_path / "plugin.pid"
    with_kubeconfig(lab_path, exec_kubeconfig(tmp_path, f"echo $$ > {pidfile}\nsleep 300\n"), timeout_s=60)
    env = {**os.environ, "TMPDIR": str(tmp), "NO_COLOR": "1"}
    proc = subprocess.Popen([LABUP, "-c", str(lab_path), "verify", "--only", "psa-label"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pidfile.exists() and _scratch(tmp), "the run never reached its credentials"
    return proc, tmp, pidfile, env


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_signalled_verify_leaves_no_temp_file(lab_path: Path, tmp_path: Path, sig: signal.Signals) -> None:
    proc, tmp, pidfile, _ = verify_stuck_on_a_plugin(lab_path, tmp_path)
    proc.send_signal(sig)
    proc.communicate(timeout=30)
    assert _scratch(tmp) == []
    with pytest.raises(ProcessLookupError):
        os.kill(int(pidfile.read_text()), 0)


def test_a_killed_runs_temp_files_are_removed_by_the_next_run(lab_path: Path, tmp_path: Path) -> None:
    proc, tmp, pidfile, env = verify_stuck_on_a_plugin(lab_path, tmp_path)
    proc.kill()  # SIGKILL: nothing can clean up
    proc.communicate(timeout=30)
    os.kill(int(pidfile.read_text()), signal.SIGKILL)
    left = _scratch(tmp)
    assert len(left) == 1 and f"labup-run-{proc.pid}-" in left[0].name
    again = subprocess.run([LABUP, "-c", str(lab_path), "render", "traefik"], env=env, capture_output=True,
                           text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    assert f"removed the temporary files of labup run(s) that were killed (pid {proc.pid})" in shown(again)
    assert _scratch(tmp) == []


@pytest.mark.parametrize("text, secret", [
    ('{"kind": "ExecCredential", "status": {"token": "eyJhbGciOi.x.y"}}', "eyJhbGciOi"),
    ("GET https://api/x?token=abc123def&watch=1", "abc123def"),
    ("{user: admin, password: hunter2}", "hunter2"),
    ("client-key-data=LS0tLS1CRUdJTi", "LS0tLS1CRUdJTi"),
    ("token: s3cr3t", "s3cr3t"),
])
def test_redaction_covers_json_assignments_and_flow_yaml(text: str, secret: str) -> None:
    from labup.redact import redact

    shown = redact(text)
    assert secret not in shown and "<redacted>" in shown


@pytest.mark.parametrize("text, secret", [
    ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA"),
    ("fetching https://me:hunter2@git.example.net/repo", "hunter2"),
    ("{'token': 'abc123def'}", "abc123def"),
    ("token eyJhbGciOiJIUzI1.eyJzdWIiOiIxMjM0.SflKxwRJSMeKKF2QT4", "SflKxwRJSMeKKF2QT4"),
    ("key id AKIAABCDEFGHIJKLMNOP", "AKIAABCDEFGHIJKLMNOP"),
    ('{"client_secret": "s3cr3tvalue"}', "s3cr3tvalue"),
    ("x-api-key: k123456", "k123456"),
])
def test_redaction_covers_what_exec_plugins_print(text: str, secret: str) -> None:
    from labup.redact import redact

    assert secret not in redact(text)


# -- found by a red-team pass ---------------------------------------------------------------------------


def test_a_helm_entry_without_a_checksum_is_refused_and_never_run(lab_path: Path, tmp_path: Path) -> None:
    """A hand-written entry for the lab's own install_dir/helm: without the installed file's checksum
    nothing proves the file there is labup's, so it is neither run (to ask its version) nor removed."""
    marker = tmp_path / "ran"
    helm = tmp_path / "bin" / "helm"
    helm.parent.mkdir()
    helm.write_text(f"#!/bin/sh\ntouch {marker}\necho v3.14.0\n")
    helm.chmod(0o755)
    journal_lines(lab_path, {"phase": "helm", "step": "binary", "undo": {
        "path": str(helm), "version": "3.14.0", "backup": None, "created_dirs": [str(helm.parent)]}})
    run = run_labup("-c", str(lab_path), "rollback", "--yes")
    assert run.returncode == 3 and "records no checksum" in shown(run)
    assert helm.exists() and not marker.exists()


@pytest.mark.parametrize("kind", ["directory", "fifo", "device"])
def test_a_journal_that_is_not_a_regular_file_is_refused_without_hanging(lab_path: Path, kind: str) -> None:
    state = lab_path.parent / ".labup"
    state.mkdir(mode=0o700)
    journal = state / "journal.jsonl"
    if kind == "directory":
        journal.mkdir()
    elif kind == "fifo":
        os.mkfifo(journal)
    else:
        if os.geteuid() != 0:
            pytest.skip("mknod of a device needs root")
        os.mknod(journal, 0o600 | 0o020000, os.makedev(1, 5))  # /dev/zero's numbers
    for args in (("rollback", "--dry-run"), ("rollback", "--yes")):
        start = time.monotonic()
        run = run_labup("-c", str(lab_path), *args, timeout=30)
        assert time.monotonic() - start < 5
        assert run.returncode == 2 and "is not a regular file" in shown(run), run.stderr


def test_an_endless_journal_line_is_read_in_bounded_pieces(lab_path: Path) -> None:
    state = lab_path.parent / ".labup"
    state.mkdir(mode=0o700)
    with (state / "journal.jsonl").open("wb") as fh:
        chunk = b"x" * (1 << 20)
        for _ in range(64):  # 64 MiB without a newline
            fh.write(chunk)
    import resource

    # in a child of its own, so RUSAGE_CHILDREN is this run's peak alone
    probe = textwrap.dedent(f"""
        import resource, subprocess
        proc = subprocess.run([{LABUP!r}, "-c", {str(lab_path)!r}, "rollback", "--dry-run"], capture_output=True)
        print(proc.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    """)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120).stdout.split()
    assert resource is not None and out[0] == "0"
    assert int(out[1]) < 50_000, f"{out[1]} KiB: the 64 MiB line was read whole"


def test_outside_text_cannot_forge_a_line_of_labups_own(tmp_path: Path) -> None:
    lab = tmp_path / "lab.yaml"
    lab.write_text('"a\\nlabup: error: forged": 1\nname: x\n')
    run = run_labup("-c", str(lab), "render", "vip")
    assert run.returncode == 2
    assert not any(line.startswith("labup: error: forged") for line in shown(run).splitlines())
    assert "\\x0alabup: error: forged" in shown(run)
