"""Phase verify: the same checks as `labup verify`, as steps, so `labup apply` ends by proving it.

Steps: one per check (labup.checks.registry), run concurrently once and reported one by one; a dry
run plans them without sending a packet. The parts live in labup.checks (steps.py: the batch and the
wait for the ACME certificate).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labup.checks import CHECK_NAMES
from labup.engine.model import Phase
from labup.phases import PHASE_HELP

if TYPE_CHECKING:
    from labup.engine.context import Context
    from labup.engine.model import Step


def steps(ctx: Context) -> list[Step]:
    from labup.checks.steps import Batch, VerifyCheck

    batch = Batch(list(CHECK_NAMES))
    return [VerifyCheck(name, batch) for name in CHECK_NAMES]


PHASE = Phase("verify", PHASE_HELP["verify"], steps=steps)
