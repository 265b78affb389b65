"""The `simlab` fixture for the simulated lab (loaded by tests/conftest.py's pytest_plugins):

    def test_x(simlab):
        lab = simlab()                        # cp-1 + wk-1, Talos v1.13, helm 4.1.4, lab.yaml written
        lab = simlab(talos_version="v1.11.5", helm_version="3.17.3", nodes=TWO_CP_NODES)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .simlab import SimLab
from kubeemu.helmrun import helm_binary
from netlab.fixtures import require_netns
from netlab.lab import install_sigterm_cleanup


def simlab_factory(tmp_path: Path) -> Iterator[Callable[..., SimLab]]:
    """Factory of started labs (lab.yaml written); all are closed at teardown, which fails the test
    if a mirror, a pod hook or the emulator ran into an error meanwhile."""
    require_netns()  # needs root: skips (or fails under LABUP_REQUIRE_ROOT=1)
    install_sigterm_cleanup()
    labs: list[SimLab] = []

    def make(**options: Any) -> SimLab:
        helm_binary(options.get("helm_version", "4.1.4"))  # skips with the way to get it when missing
        lab = SimLab(tmp_path / f"simlab-{len(labs) + 1}", **options).start()
        labs.append(lab)
        lab.write_lab()
        return lab

    yield make
    failures = []
    for lab in reversed(labs):
        try:
            lab.close()
        except AssertionError as exc:
            failures.append(str(exc))
    if failures:
        pytest.fail("\n".join(failures), pytrace=False)


@pytest.fixture
def simlab(tmp_path: Path) -> Iterator[Callable[..., SimLab]]:
    yield from simlab_factory(tmp_path)
