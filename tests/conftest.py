"""Shared fixtures. Test-infrastructure packages (talos_sim, kubeemu, netlab) live beside this file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "lab.yaml"
LABUP = str(Path(sys.executable).with_name("labup"))

sys.path.insert(0, str(Path(__file__).parent))


def example_data() -> dict:
    return yaml.safe_load(EXAMPLE.read_text())


@pytest.fixture
def write_lab(tmp_path: Path) -> Callable[..., Path]:
    """Write a lab.yaml (the example, changed by `edit`) into tmp_path and return its path."""

    def write(data: dict | None = None, text: str | None = None, name: str = "lab.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text if text is not None else yaml.safe_dump(data or example_data()))
        return path

    return write


def run_labup(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
              timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the real `labup` command as a user would."""
    full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
    return subprocess.run([LABUP, *args], capture_output=True, text=True, env=full_env, cwd=cwd,
                          timeout=timeout, check=False)


def shown(run: subprocess.CompletedProcess[str]) -> str:
    """All a user sees of a run: its result (stdout) and its progress and errors (stderr)."""
    return run.stdout + run.stderr


@pytest.fixture
def labup() -> Callable[..., subprocess.CompletedProcess[str]]:
    return run_labup


@pytest.fixture
def no_outside_tools(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A PATH with no talosctl/helm/kubectl and no kubeconfig: the 'fresh laptop' case."""
    bin_dir = tmp_path / "empty-bin"
    bin_dir.mkdir()
    for tool in ("python3", "ip"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{bin_dir}")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.setenv("TALOSCONFIG", str(tmp_path / "no-talosconfig"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))

# the namespace lab: fixtures `netlab` and `netlab_certs` (tests/netlab/fixtures.py)
pytest_plugins = ["netlab.fixtures", "talos_sim.fixtures", "kubeemu.fixtures", "e2e.fixtures"]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """Under CI (LABUP_NO_SKIPS=1) a skipped test is a failure: root-only (network namespace) and
    helm tests must run there, never pass by being skipped."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("LABUP_NO_SKIPS") == "1":
        report.outcome = "failed"
        report.longrepr = f"skipped under LABUP_NO_SKIPS=1 (CI): {report.longrepr}"
