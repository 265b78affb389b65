"""Phase namespace: Traefik's namespace exists and admits a hostNetwork pod (FACTS.md §1, wall 4).

Pod Security Admission rejects a hostNetwork pod under `baseline`. The fix is the label
`pod-security.kubernetes.io/enforce=privileged` on Traefik's namespace and nowhere else: never
cluster-wide, never on a system namespace. `audit` and `warn` are set to privileged too, so the
namespace's stance is one thing (a leftover `warn: restricted` would flag every Traefik rollout).

The `*-version` labels are left alone: the privileged profile is unrestricted at every version, so
pinning one (or `latest`) would change nothing but add labels to write and to restore.

Rollback restores exactly what was there: each PSA label back to its old value, or removed if it was
absent. A namespace labup created (marked by the annotation `labup/created-by`) is deleted only while
it holds nothing (see `KubeAdapter.namespace_contents`); otherwise it is left, and the report says so.

The step lives in labup.namespace.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labup.engine.model import Phase
from labup.phases import PHASE_HELP

if TYPE_CHECKING:
    from labup.engine.context import Context
    from labup.engine.model import Step


def steps(ctx: Context) -> list[Step]:
    from labup.namespace.steps import PrivilegedNamespace

    return [PrivilegedNamespace(ctx)]


PHASE = Phase("namespace", PHASE_HELP["namespace"], steps=steps)
