"""Phase helm through the real `labup` command, against a real HTTP mirror on 127.0.0.1 serving a real
helm archive (built here from .tools/helm/4.1.4/helm) and its .sha256sum."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import stat
import subprocess
import tarfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from labup.adapters import download, helmbin
from labup.adapters import helmbin as helm_lookup
from labup.config import load
from labup.engine.context import Context
from labup.engine.runner import Runner
from labup.errors import PermanentError, TransientError, Unreadable
from labup.phases import helm as helm_phase
from labup.ui import Reporter

from conftest import EXAMPLE, LABUP, REPO, example_data, run_labup, shown
from helmdist import Mirror, build_archive, real_helm, serving, sha256sum

VERSION = "4.1.4"
OLD_HELM = "#!/bin/sh\n# a stand-in for an old helm: answers `helm version` only\necho v3.0.0\n"
SETPRIV = shutil.which("setpriv")  # looked up now: the tests' PATH holds no system tools
PROXY_VARS = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
              "no_proxy", "NO_PROXY")


# -- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tag() -> str:
    found = helmbin.platform_tag()
    if found is None:
        pytest.skip("helm publishes no tar.gz for this platform")
    return found


@pytest.fixture(scope="session")
def dist(tag: str, pytestconfig: pytest.Config) -> dict[str, bytes]:
    """The mirror's files: the real helm 4.1.4 archive and its .sha256sum. Compressing 60 MB takes
    seconds, so the archive is kept in pytest's cache, keyed by the binary's size and mtime."""
    binary = real_helm(VERSION)
    info = binary.stat()
    name = f"helm-v{VERSION}-{tag}.tar.gz"
    cached = pytestconfig.cache.mkdir("labup-helm-dist") / f"{info.st_size}-{info.st_mtime_ns}-{name}"
    if cached.is_file():
        data = cached.read_bytes()
    else:
        name, data = build_archive(binary, VERSION, tag)
        partial = cached.with_suffix(".partial")
        try:
            partial.write_bytes(data)
            partial.replace(cached)
        except OSError:  # a read-only checkout: build it again next time
            partial.unlink(missing_ok=True)
    return {name: data, f"{name}.sha256sum": sha256sum(name, data)}


@pytest.fixture
def mirror(dist: dict[str, bytes]) -> Iterator[Mirror]:
    with serving(dist) as running:
        yield running


@pytest.fixture
def env(no_outside_tools: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """No helm on PATH, no proxy, and a TMPDIR of our own (to prove no temp file is left behind)."""
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    return {}


@pytest.fixture
def install_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    return folder


@pytest.fixture
def make_lab(write_lab: Callable[..., Path], mirror: Mirror, install_dir: Path) -> Callable[..., Path]:
    def make(folder: Path | None = None, attempts: int = 5) -> Path:
        data = example_data()
        data["helm"] = {"version": VERSION, "install_dir": str(folder or install_dir),
                        "download_url": mirror.url}
        data["retry"] = {"attempts": attempts, "initial_s": 0.01, "max_s": 0.05, "total_s": 30}
        return write_lab(data)

    return make


def listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder)) if folder.exists() else []


def helm_says(binary: Path) -> str:
    return subprocess.run([str(binary), "version", "--template", "{{.Version}}"], capture_output=True,
                          text=True, timeout=20, check=True).stdout.strip()


def journal_undos(lab_yaml: Path) -> list[dict]:
    lines = (lab_yaml.parent / ".labup" / "journal.jsonl").read_text().splitlines()
    return [e["undo"] for e in map(json.loads, lines) if e["event"] == "applied"]


# -- install, converge -------------------------------------------------------------------------------


def test_install_converge_rollback(env: dict, make_lab, mirror: Mirror, tag: str, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """An old helm on PATH (left alone), install_dir missing: install there; converged second run
    without a request; `labup rollback helm` removes the binary and the folders labup made."""
    on_path = tmp_path / "path-bin"
    on_path.mkdir()
    old = on_path / "helm"
    old.write_text(OLD_HELM)
    old.chmod(0o755)
    monkeypatch.setenv("PATH", f"{os.environ['PATH']}:{on_path}")
    folder = tmp_path / "new" / "bin"
    lab = make_lab(folder)
    first = run_labup("-c", str(lab), "phase", "helm")
    assert first.returncode == 0, first.stderr
    name = f"helm-v{VERSION}-{tag}.tar.gz"
    assert mirror.requests == [f"GET /{name}.sha256sum", f"GET /{name}"]
    assert f"helm v3.0.0 at {old} is older than v{VERSION}" in shown(first)
    binary = folder / "helm"
    assert helm_says(binary) == f"v{VERSION}"
    assert stat.S_IMODE(binary.stat().st_mode) == 0o755
    assert listing(folder) == ["helm"]  # no temp file, no backup (nothing was replaced)
    assert listing(tmp_path / "tmpdir") == []  # the archive's temp file is gone too
    assert old.read_text() == OLD_HELM  # the user's own helm elsewhere is never touched
    assert f"downloading {name}" in shown(first)
    assert "changed      helm/binary" in shown(first)
    assert "is not on PATH" in shown(first)
    [undo] = journal_undos(lab)  # paths, versions and what the installed file is (to recognise it)
    import hashlib

    assert undo == {"path": str(binary), "version": VERSION, "backup": None, "replaced_version": None,
                    "created_dirs": [str(tmp_path / "new"), str(folder)], "size": binary.stat().st_size,
                    "sha256": hashlib.sha256(binary.read_bytes()).hexdigest()}

    second = run_labup("-c", str(lab), "phase", "helm")
    assert second.returncode == 0, second.stderr
    assert len(mirror.requests) == 2  # converged: not a single request
    assert f"ok           helm/binary: helm v{VERSION} at {binary}" in shown(second)

    back = run_labup("-c", str(lab), "rollback", "helm", "--yes")
    assert back.returncode == 0, back.stderr
    assert f"removed helm v{VERSION} from {binary}" in shown(back)
    assert not (tmp_path / "new").exists()
    assert old.read_text() == OLD_HELM


def test_dropped_connections_retried_then_rollback_restores_the_replaced_helm(
        env: dict, make_lab, mirror: Mirror, install_dir: Path) -> None:
    old = install_dir / "helm"
    old.write_text(OLD_HELM)
    old.chmod(0o755)
    mirror.drop_connections = 2
    lab = make_lab()
    done = run_labup("-c", str(lab), "phase", "helm")
    assert done.returncode == 0, done.stderr
    assert mirror.requests[:2] == ["DROP", "DROP"] and len(mirror.gets) == 2
    assert done.stderr.count("retrying in") == 2
    assert helm_says(old) == f"v{VERSION}"
    [backup] = [n for n in listing(install_dir) if n != "helm"]
    assert backup.startswith(".helm.labup-backup-")  # kept beside it until rolled back
    [undo] = journal_undos(lab)
    assert undo["replaced_version"] == "3.0.0" and undo["backup"] == str(install_dir / backup)

    back = run_labup("-c", str(lab), "rollback", "helm", "--yes")
    assert back.returncode == 0, back.stderr
    assert f"restored helm v3.0.0 at {old} (removed helm v{VERSION})" in shown(back)
    assert listing(install_dir) == ["helm"] and old.read_text() == OLD_HELM
    assert helm_says(old) == "v3.0.0"
    again = run_labup("-c", str(lab), "rollback", "helm", "--yes")
    assert again.returncode == 0 and "nothing to roll back" in shown(again)


def test_new_enough_helm_on_path_is_used_without_any_request(env: dict, make_lab, mirror: Mirror,
                                                             install_dir: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    on_path = tmp_path / "path-bin"
    on_path.mkdir()
    (on_path / "helm").symlink_to(real_helm(VERSION))
    monkeypatch.setenv("PATH", f"{os.environ['PATH']}:{on_path}")
    done = run_labup("-c", str(make_lab()), "--json", "phase", "helm")
    assert done.returncode == 0, done.stderr
    assert mirror.requests == []
    assert listing(install_dir) == []
    [step] = json.loads(done.stdout)["steps"]
    assert step["status"] == "ok" and str(on_path / "helm") in step["summary"]


# -- failures ----------------------------------------------------------------------------------------


def test_checksum_mismatch_refuses_and_leaves_nothing(env: dict, make_lab, mirror: Mirror, install_dir: Path,
                                                      tag: str, tmp_path: Path) -> None:
    name = f"helm-v{VERSION}-{tag}.tar.gz"
    mirror.files[f"{name}.sha256sum"] = f"{'0' * 64}  {name}\n".encode()
    done = run_labup("-c", str(make_lab()), "phase", "helm")
    assert done.returncode == 1, done.stderr
    assert f"checksum mismatch for {name}" in shown(done)
    assert "nothing was installed" in shown(done)
    assert listing(install_dir) == []
    assert listing(tmp_path / "tmpdir") == []
    assert len(mirror.gets) == 2  # a mismatch is never retried


def test_a_mirror_that_keeps_failing_gives_up_after_the_policy(env: dict, make_lab, mirror: Mirror,
                                                               install_dir: Path) -> None:
    mirror.fail_status = 503
    done = run_labup("-c", str(make_lab(attempts=3)), "phase", "helm")
    assert done.returncode == 1, done.stderr
    assert "HTTP 503" in shown(done) and "gave up after retrying" in shown(done)
    assert len(mirror.gets) == 3  # the step is not retried again on top of the download's retries
    assert listing(install_dir) == []


def test_missing_archive_is_permanent(env: dict, make_lab, mirror: Mirror, install_dir: Path, tag: str) -> None:
    mirror.files.clear()
    done = run_labup("-c", str(make_lab()), "phase", "helm")
    assert done.returncode == 1, done.stderr
    assert "HTTP 404" in shown(done) and "is this version published" in shown(done)
    assert len(mirror.gets) == 1  # a 404 is not retried
    assert listing(install_dir) == []


def _no_dac_override() -> list[str]:
    """Root ignores folder modes; without CAP_DAC_OVERRIDE it obeys them like any user."""
    if os.geteuid() != 0:
        return []
    if SETPRIV is None:
        pytest.skip("running as root without setpriv: a read-only folder cannot be made to refuse root")
    return [SETPRIV, "--bounding-set", "-dac_override,-dac_read_search", "--"]


@pytest.mark.parametrize("case", ["read-only", "file-in-the-way"])
def test_unwritable_install_dir_fails_before_any_request(env: dict, make_lab, mirror: Mirror,
                                                         tmp_path: Path, case: str) -> None:
    if case == "read-only":
        folder = tmp_path / "ro-bin"
        folder.mkdir(mode=0o555)
        folder.chmod(0o555)
        prefix, expected = _no_dac_override(), f"helm.install_dir {folder} is not writable"
    else:
        (tmp_path / "a-file").write_text("")
        folder = tmp_path / "a-file" / "bin"
        prefix, expected = [], f"helm.install_dir {folder} cannot be used: {tmp_path / 'a-file'} is not a folder"
    lab = make_lab(folder)
    done = subprocess.run([*prefix, LABUP, "-c", str(lab), "phase", "helm"], capture_output=True, text=True,
                          env={**os.environ, "NO_COLOR": "1"}, timeout=60, check=False)
    assert done.returncode == 1, done.stderr
    assert "pre-flight failed, nothing was changed" in shown(done)
    assert expected in shown(done)
    assert mirror.requests == []
    if case != "read-only":
        return
    dry = subprocess.run([*prefix, LABUP, "-c", str(lab), "phase", "helm", "--dry-run"], capture_output=True,
                         text=True, env={**os.environ, "NO_COLOR": "1"}, timeout=60, check=False)
    assert dry.returncode == 1 and expected in shown(dry)  # the plan says the apply would fail
    assert mirror.requests == []


# -- rollback ----------------------------------------------------------------------------------------


def _undo(lab_yaml: Path, **data: object) -> str:
    lab = load(lab_yaml)
    ctx = Context(lab=lab, dry_run=False, reporter=Reporter(quiet=True))
    [step] = helm_phase.PHASE.steps(ctx)  # type: ignore[misc]
    return step.undo(ctx, {"version": VERSION, "backup": None, "replaced_version": None,
                           "created_dirs": [], **data})


def test_undo_leaves_a_helm_someone_replaced_since(env: dict, make_lab, install_dir: Path) -> None:
    other = install_dir / "helm"
    other.write_text(OLD_HELM)
    other.chmod(0o755)
    # the journal recorded the file labup installed; this one differs, so it is neither run nor removed
    done = _undo(make_lab(), path=str(other), size=123, sha256="0" * 64)
    assert done == f"left {other} alone: it is no longer the helm v{VERSION} labup installed"
    assert other.read_text() == OLD_HELM


def test_undo_refuses_when_the_backup_is_gone(env: dict, make_lab, install_dir: Path) -> None:
    with pytest.raises(PermanentError, match=r"its backup .* is gone"):
        _undo(make_lab(), path=str(install_dir / "helm"), backup=str(install_dir / ".helm.labup-backup-x"),
              replaced_version="3.0.0")


# -- dry run -----------------------------------------------------------------------------------------


def test_dry_run_says_what_it_would_download_and_makes_no_request(env: dict, make_lab, mirror: Mirror,
                                                                  install_dir: Path, tag: str) -> None:
    lab = make_lab()
    done = run_labup("-c", str(lab), "--json", "phase", "helm", "--dry-run")
    assert done.returncode == 0, done.stderr
    [step] = json.loads(done.stdout)["steps"]
    url = f"{mirror.url}/helm-v{VERSION}-{tag}.tar.gz"
    assert step["status"] == "would-change"
    assert url in step["summary"] and f"install helm v{VERSION}" in step["summary"]
    assert f"+ {install_dir / 'helm'} (helm v{VERSION} from {url}, sha256-checked)" in step["diff"]
    assert mirror.requests == [] and listing(install_dir) == []
    assert not (lab.parent / ".labup").exists()


def test_example_dry_run_is_offline(env: dict, mirror: Mirror, monkeypatch: pytest.MonkeyPatch,
                                    tmp_path: Path) -> None:
    """The bundled example names https://get.helm.sh; every proxy variable points at our recorder,
    so any request the dry run made would show up there."""
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.setenv(var, mirror.url)
    before = sorted(p.name for p in EXAMPLE.parent.iterdir())
    done = run_labup("-c", "examples/lab.yaml", "phase", "helm", "--dry-run", cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert f"https://get.helm.sh/helm-v{VERSION}-" in shown(done)
    assert mirror.requests == []
    assert sorted(p.name for p in EXAMPLE.parent.iterdir()) == before  # no .labup, nothing written
    assert not (tmp_path / "home").exists()


# -- in process: facts for later phases --------------------------------------------------------------


def test_facts_and_locate_helm_for_later_phases(env: dict, make_lab, mirror: Mirror, install_dir: Path) -> None:
    lab = load(make_lab())
    assert helm_lookup.locate_helm(lab) is None
    ctx = Context(lab=lab, dry_run=True, reporter=Reporter(quiet=True))
    with pytest.raises(Unreadable, match="run `labup phase helm` first"):
        helm_lookup.require_helm(ctx)
    (install_dir / "helm").symlink_to(real_helm(VERSION))
    ctx = Context(lab=lab, dry_run=False, reporter=Reporter(quiet=True))
    report = Runner(ctx, [helm_phase.PHASE], "phase helm", journal=None).run()
    assert report.exit_code == 0 and report.results[0].status == "ok"
    assert ctx.facts["helm_binary"] == str(install_dir / "helm") and ctx.facts["helm_version"] == VERSION
    assert helm_lookup.locate_helm(lab) == (install_dir / "helm", VERSION)
    later = Context(lab=lab, dry_run=False, reporter=Reporter(quiet=True))
    assert helm_lookup.require_helm(later).path == install_dir / "helm"
    assert later.facts["helm_version"] == VERSION
    assert mirror.requests == []


# -- the pieces, on small inputs ---------------------------------------------------------------------


def _tgz(members: list[tuple[str, bytes | None, bytes]]) -> io.BytesIO:
    """(name, data or None for a symlink, type) -> a tar.gz in memory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data, kind in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind == tarfile.SYMTYPE:
                info.linkname = "/etc/passwd"
                tar.addfile(info)
            else:
                info.size, info.mode = len(data or b""), 0o755
                tar.addfile(info, io.BytesIO(data or b""))
    buf.seek(0)
    return buf


REG = tarfile.REGTYPE


@pytest.mark.parametrize(("members", "error"), [
    ([("linux-amd64/helm", b"x", REG), ("../evil", b"x", REG)], "unexpected path '../evil'"),
    ([("linux-amd64/helm", b"x", REG), ("/etc/cron.d/x", b"x", REG)], "unexpected path '/etc/cron.d/x'"),
    ([("linux-amd64/../../x", b"x", REG)], "unexpected path"),
    ([("linux-amd64/helm", b"x", REG), ("darwin-arm64/helm", b"y", REG)], "unexpected path 'darwin-arm64/helm'"),
    ([("linux-amd64/helm", b"x", REG), ("linux-amd64/helm", b"y", REG)], "holds linux-amd64/helm twice"),
    ([("linux-amd64/helm", None, tarfile.SYMTYPE)], "not a regular file"),
    ([("linux-amd64/LICENSE", b"x", REG)], "has no linux-amd64/helm"),
])
def test_extract_refuses_odd_archives(tmp_path: Path, members: list, error: str) -> None:
    with pytest.raises(PermanentError, match=error.replace(".", r"\.")):
        helmbin.extract_helm(_tgz(members), "linux-amd64", tmp_path)
    assert listing(tmp_path) == []


def test_extract_takes_only_the_helm_member(tmp_path: Path) -> None:
    archive = _tgz([("linux-amd64/", b"", tarfile.DIRTYPE), ("./linux-amd64/helm", b"binary", REG),
                    ("linux-amd64/LICENSE", b"text", REG)])
    new = helmbin.extract_helm(archive, "linux-amd64", tmp_path)
    assert listing(tmp_path) == [new.name] and new.read_bytes() == b"binary"
    assert stat.S_IMODE(new.stat().st_mode) == 0o755


def test_extract_refuses_garbage(tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match=r"not a readable tar\.gz"):
        helmbin.extract_helm(io.BytesIO(b"<html>not found</html>"), "linux-amd64", tmp_path)
    assert listing(tmp_path) == []


def test_sha256sum_parsing() -> None:
    digest = "A" * 64
    assert download.parse_sha256sum(f"{digest}  helm.tgz\n", "helm.tgz", "u") == "a" * 64
    assert download.parse_sha256sum(f"{digest}\n", "helm.tgz", "u") == "a" * 64
    with pytest.raises(PermanentError, match=r"names 'other\.tgz'"):
        download.parse_sha256sum(f"{digest}  other.tgz", "helm.tgz", "u")
    with pytest.raises(PermanentError, match="not a sha256sum file"):
        download.parse_sha256sum("<html>", "helm.tgz", "u")


def test_platform_and_versions() -> None:
    assert helmbin.platform_tag("Linux", "x86_64") == "linux-amd64"
    assert helmbin.platform_tag("Darwin", "arm64") == "darwin-arm64"
    assert helmbin.platform_tag("Linux", "aarch64") == "linux-arm64"
    assert helmbin.platform_tag("Windows", "AMD64") is None
    assert helmbin.new_enough("4.1.4", "4.1.4") and helmbin.new_enough("4.10.0", "4.9.9")
    assert not helmbin.new_enough("4.1.4-rc.1", "4.1.4") and not helmbin.new_enough("3.17.3", "4.1.4")


def test_progress_bar_on_a_terminal_plain_line_otherwise() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    with Reporter(stream=tty).progress("downloading helm.tgz", 2_000_000) as advance:
        advance(1_000_000)
        advance(1_000_000)
    assert "helm.tgz" in tty.getvalue()
    plain = io.StringIO()
    with Reporter(stream=plain).progress("downloading helm.tgz", 2_000_000) as advance:
        advance(2_000_000)
    assert plain.getvalue() == "  .. downloading helm.tgz (2.0 MB)\n"



# -- the download adapter against real sockets: what is worth a retry -------------------------------


def _one_shot_server(reply: bytes) -> tuple[str, threading.Thread]:
    """Accept one connection on 127.0.0.1, read the request, send `reply` raw, close."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with listener:
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}/f", thread


def test_download_errors_are_sorted_transient_or_permanent(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    with pytest.raises(TransientError, match="refused"):
        download.fetch_text(f"http://127.0.0.1:{port}/f", timeout=2)

    silent = socket.create_server(("127.0.0.1", 0))  # connects (the backlog), never answers
    with silent, pytest.raises(TransientError, match="timed out"):
        download.fetch_text(f"http://127.0.0.1:{silent.getsockname()[1]}/f", timeout=0.3)

    url, thread = _one_shot_server(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
    with pytest.raises(TransientError, match="connection closed after 10 of 100 bytes"), \
            download.open_url(url, timeout=2) as got:
        got.copy_to(io.BytesIO())
    thread.join(2)

    for status, kind in ((503, TransientError), (429, TransientError), (403, PermanentError)):
        url, thread = _one_shot_server(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
        with pytest.raises(kind, match=f"HTTP {status}") as caught:
            download.fetch_text(url, timeout=2)
        assert type(caught.value) is kind
        thread.join(2)
