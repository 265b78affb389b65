"""`make bench`, second half: a converged re-apply and a verify on the simulated lab (talosctl
simulator, Kubernetes API emulator, real helm, network namespaces): wall time and outside calls,
on the two-node lab, on a three-control-plane lab (the talosctl count must not grow with nodes) and
on that lab in topology ha (cert-manager, Traefik on every control plane).

Needs root (network namespaces); only 192.0.2.0/24 inside namespaces it creates, all removed after.
`rows()` is what tools/bench.py puts in its table.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
RUNS = int(os.environ.get("BENCH_LAB_RUNS", "5"))


def measure(lab: Any, args: Sequence[str], runs: int) -> tuple[list[float], Any]:
    """Wall times of `runs` runs, and the outside calls of the last one."""
    times, last = [], None
    for _ in range(runs):
        before = lab.counts()
        started = time.perf_counter()
        run = lab.labup(*args)
        times.append(time.perf_counter() - started)
        if run.returncode != 0:
            raise RuntimeError(f"labup {' '.join(args)} failed:\n{run.stderr[-3000:]}")
        last = lab.counts() - before
    return times, last


def lab_rows(name: str, nodes: Any, runs: int, ha: bool = False) -> list[dict[str, Any]]:
    from e2e.simlab import SimLab

    with tempfile.TemporaryDirectory(prefix="labup-bench-") as tmp, SimLab(Path(tmp) / "lab", nodes=nodes) as lab:
        lab.write_lab(lab.ha_lab_data() if ha else None)
        first = lab.labup("apply")
        if first.returncode != 0:
            raise RuntimeError(f"the first apply failed on the {name}:\n{first.stderr[-3000:]}")
        out = []
        for what, args in (("converged re-apply", ("apply",)), ("verify", ("verify",))):
            times, calls = measure(lab, args, runs)
            out.append({"lab": name, "command": what, "median_s": statistics.median(times), "runs": runs,
                        "talosctl": calls.talos_calls, "helm": calls.helm_calls, "api": calls.api_requests,
                        "writes": calls.writes, "first_apply_s": first.elapsed})
        return out


def rows() -> list[dict[str, Any]]:
    from e2e.topology import DEFAULT_NODES, HA_NODES

    return [*lab_rows("2-node lab", DEFAULT_NODES, RUNS), *lab_rows("3-cp lab", HA_NODES, max(RUNS // 2, 1)),
            *lab_rows("ha lab", HA_NODES, RUNS, ha=True)]


if __name__ == "__main__":
    for row in rows():
        print(row)
