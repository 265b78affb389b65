"""`make bench`, second half: a converged re-apply and a verify on the simulated lab (talosctl
simulator, Kubernetes API emulator, real helm, network namespaces): wall time and outside calls.

Needs root (network namespaces); only 192.0.2.0/24 inside namespaces it creates, all removed after.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
RUNS = int(os.environ.get("BENCH_LAB_RUNS", "5"))


def main() -> int:
    if os.geteuid() != 0:
        print("simulated lab: skipped (needs root for network namespaces)")
        return 0
    from e2e.simlab import SimLab

    with tempfile.TemporaryDirectory(prefix="labup-bench-") as tmp, SimLab(Path(tmp) / "lab") as lab:
        lab.write_lab()
        first = lab.labup("apply")
        if first.returncode != 0:
            print(first.stderr[-3000:])
            print("simulated lab: the first apply failed; nothing to measure")
            return 1
        print(f"\nsimulated lab (Talos v1.13 simulator, helm {lab.helm_version}, API emulator, netns), "
              f"{RUNS} runs each; first apply {first.elapsed:.2f}s")
        print(f"{'command':<28} {'median':>8} {'min':>8} {'max':>8}  {'talosctl':>8} {'helm':>5} "
              f"{'API req':>7} {'writes':>6}")
        for name, args in (("converged re-apply", ("apply",)), ("verify", ("verify",))):
            times, calls = [], []
            for _ in range(RUNS):
                before = lab.counts()
                started = time.perf_counter()
                run = lab.labup(*args)
                times.append(time.perf_counter() - started)
                calls.append(lab.counts() - before)
                if run.returncode != 0:
                    print(run.stderr[-3000:])
                    return 1
            last = calls[-1]
            print(f"{name:<28} {statistics.median(times):>7.2f}s {min(times):>7.2f}s {max(times):>7.2f}s  "
                  f"{last.talos_calls:>8} {last.helm_calls:>5} {last.api_requests:>7} {last.writes:>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
