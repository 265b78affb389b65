"""pytest fixtures: a running emulator, a kubeconfig for it, an isolated environment for helm."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .server import KubeEmulator


@pytest.fixture
def kube_emulator() -> Iterator[KubeEmulator]:
    """A started emulator; fails the test at teardown if the emulator hit an internal error."""
    with KubeEmulator() as emu:
        yield emu
    assert not emu.internal_errors, emu.internal_errors


@pytest.fixture
def emu_kubeconfig(kube_emulator: KubeEmulator, tmp_path: Path) -> Path:
    return kube_emulator.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def helm_env(tmp_path: Path) -> dict[str, str]:
    """An environment where helm (and client-go's discovery cache) write only under tmp_path."""
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HELM_", "KUBE"))}
    env.update(HOME=str(home), HELM_CACHE_HOME=str(home / "cache"), HELM_CONFIG_HOME=str(home / "config"),
               HELM_DATA_HOME=str(home / "data"))
    return env
