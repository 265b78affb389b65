"""pytest wiring for the talosctl simulator (the simulator itself: talos_sim.sim).

    def test_x(talos_sim):
        sim = talos_sim()                                   # the example lab, Talos v1.13.0
        sim = talos_sim(Lab.single_cp_worker("v1.11.5"))    # or any Lab
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from talos_sim.sim import (  # re-exported: the tests import them from here
    EXAMPLE_CP,
    EXAMPLE_LINK,
    EXAMPLE_VIP,
    EXAMPLE_WORKER,
    TalosSim,
    sim_factory,
    start_sim,
)

__all__ = ["EXAMPLE_CP", "EXAMPLE_LINK", "EXAMPLE_VIP", "EXAMPLE_WORKER", "TalosSim", "sim_factory", "start_sim",
           "talos_sim"]


@pytest.fixture
def talos_sim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., TalosSim]:
    """Factory: `sim = talos_sim(lab=None)`; talosctl, TALOS_SIM_STATE and TALOSCONFIG are set in
    os.environ for the rest of the test (subprocesses inherit them)."""
    return sim_factory(tmp_path, monkeypatch)
