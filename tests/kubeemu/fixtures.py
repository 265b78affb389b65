"""pytest fixtures for kubeemu and the real helm binaries (import them in conftest.py)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .server import KubeEmulator

REPO = Path(__file__).resolve().parents[2]
HELM_DIR = REPO / ".tools" / "helm"
HELM_VERSIONS = ("4.1.4", "3.17.3")


@pytest.fixture
def kube_emulator() -> Iterator[KubeEmulator]:
    """A started emulator; fails the test at teardown if the emulator hit an internal error."""
    with KubeEmulator() as emu:
        yield emu
    assert not emu.internal_errors, emu.internal_errors


@pytest.fixture
def emu_kubeconfig(kube_emulator: KubeEmulator, tmp_path: Path) -> Path:
    return kube_emulator.write_kubeconfig(tmp_path / "kubeconfig")


def helm_binary(version: str) -> Path:
    """`.tools/helm/<version>/helm`, or skip the test saying how to get it."""
    path = HELM_DIR / version / "helm"
    if not os.access(path, os.X_OK):
        pytest.skip(f"helm {version} not installed at {path}: run `python tools/fetch_helm.py .tools/helm`")
    return path


@pytest.fixture
def helm_env(tmp_path: Path) -> dict[str, str]:
    """An environment where helm (and client-go's discovery cache) write only under tmp_path."""
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HELM_", "KUBE"))}
    env.update(HOME=str(home), HELM_CACHE_HOME=str(home / "cache"), HELM_CONFIG_HOME=str(home / "config"),
               HELM_DATA_HOME=str(home / "data"))
    return env


def run_helm(helm: Path, args: list[str], env: dict[str, str], timeout: float = 60
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm), *args], env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)
