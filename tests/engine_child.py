"""A real labup run in its own process, with in-memory phases: used to send it SIGINT/SIGTERM
and to hold the lab's lock while a second run tries. argv: LAB_YAML STATE_DIR SLEEP_S"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from labup.config import load
from labup.options import Options
from labup.runs import guarded, run_phases

from memsteps import FileStep, phase


def main() -> int:
    lab_path, state, sleep_s = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
    lab = load(lab_path)
    phases = [phase("one", FileStep(state, "a"), FileStep(state, "b")),
              phase("two", FileStep(state, "slow", sleep_in_apply=sleep_s))]
    opts = Options(config=lab_path, json=True)
    return guarded(opts, "apply", lambda: run_phases(opts, lab, phases, "apply", dry_run=False))


if __name__ == "__main__":
    sys.exit(main())
