"""Phase helm: a helm binary of at least helm.version.

A helm on PATH or in helm.install_dir that is new enough is used as it is (no request is made).
Otherwise the official archive is downloaded from helm.download_url with its .sha256sum, verified,
and only `<os>-<arch>/helm` is taken out of it and swapped in atomically, never a script piped into
a shell (the seed's `curl get-helm-3 | bash`).

Later phases use the helm found here: ctx.facts["helm_binary"] (str path) and
ctx.facts["helm_version"] ("4.1.4"); when this phase did not run in the invocation, require_helm(ctx)
(or locate_helm(lab)) finds it the same way (both in adapters/helmbin.py).

The step lives in labup.helmsetup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labup.engine.model import Phase
from labup.phases import PHASE_HELP

if TYPE_CHECKING:
    from labup.engine.context import Context
    from labup.engine.model import Step


def steps(ctx: Context) -> list[Step]:
    from labup.helmsetup.steps import HelmBinaryStep

    return [HelmBinaryStep(ctx)]


PHASE = Phase("helm", PHASE_HELP["helm"], steps=steps)
