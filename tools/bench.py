"""`make bench`: wall time of the commands a user waits for, as medians over repeated runs.

Reports `labup --help` against the floor set by importing typer, rich and PyYAML alone, and an
offline dry-run of the bundled example (no talosctl, no kubeconfig: nothing is contacted).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RUNS = int(os.environ.get("BENCH_RUNS", "21"))


def measure(argv: list[str], env: dict[str, str]) -> list[float]:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
        times.append((time.perf_counter() - started) * 1000)
    return times


def main() -> int:
    with tempfile.TemporaryDirectory() as home:
        # a fresh laptop: no talosctl, helm or kubeconfig on PATH / in HOME
        env = {"PATH": str(BIN), "HOME": home, "NO_COLOR": "1", "KUBECONFIG": f"{home}/none",
               "TALOSCONFIG": f"{home}/none"}
        cases = {
            "import typer, rich, yaml (floor)": [sys.executable, "-c", "import typer, rich, yaml"],
            "labup --help": [str(BIN / "labup"), "--help"],
            "labup --help (typer path, no snapshot)": [
                "/usr/bin/env", "LABUP_NO_FAST_HELP=1", str(BIN / "labup"), "--help"],
            "labup phase --help": [str(BIN / "labup"), "phase", "--help"],
            "labup apply --dry-run (example, offline)": [
                str(BIN / "labup"), "-c", str(REPO / "examples" / "lab.yaml"), "apply", "--dry-run"],
            "labup render traefik (example)": [
                str(BIN / "labup"), "-c", str(REPO / "examples" / "lab.yaml"), "render", "traefik"],
        }
        print(f"{'command':<44} {'median':>9} {'min':>9} {'max':>9}   ({RUNS} runs each)")
        medians = {}
        for name, argv in cases.items():
            times = measure(argv, env)
            medians[name] = statistics.median(times)
            print(f"{name:<44} {medians[name]:>7.1f}ms {min(times):>7.1f}ms {max(times):>7.1f}ms")
    help_ms = medians["labup --help"]
    floor_ms = medians["import typer, rich, yaml (floor)"]
    print(f"\nlabup --help: {help_ms:.1f} ms median; floor {floor_ms:.1f} ms; "
          f"{'within' if help_ms <= floor_ms else 'ABOVE'} the floor, "
          f"{'within' if help_ms <= 100 else 'ABOVE'} the 100 ms budget")
    return 0


if __name__ == "__main__":
    sys.exit(main())
