"""Issue 13 on the simulated lab (tests/e2e): a converged re-apply and a verify read each Helm and
Kubernetes fact once: the release from Helm's own records (no `helm history`/`status`), the
namespace, Traefik's workload and pods once for all phases and checks of the run.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from e2e import LabupRun, SimLab

pytestmark = pytest.mark.root


def ok(run: LabupRun) -> LabupRun:
    assert run.returncode == 0, run.stderr[-4000:]
    return run


def labup_gets(lab: SimLab, start: int) -> list[tuple[str, str]]:
    """(path, label selector with its labels sorted) of each GET labup itself made since `start`."""
    gets = [e for e in lab.emu.log.entries()[start:] if e.method == "GET" and e.user_agent.startswith("labup")]
    return [(e.path, ",".join(sorted(e.query.get("labelSelector", "").split(",")))) for e in gets]


@pytest.mark.helm
@pytest.mark.parametrize("helm", ["4.1.4", "3.17.3"], ids=["helm4", "helm3"])
def test_converged_apply_and_verify_read_each_fact_once(simlab: Callable[..., SimLab], helm: str) -> None:
    lab = simlab(helm_version=helm)
    ok(lab.labup("apply"))

    for args, most_helm, most_api in ((("apply",), 2, 8), (("verify",), 1, 4)):
        before, start, calls = lab.counts(), len(lab.emu.log.entries()), len(lab.helm_calls())
        run = ok(lab.labup(*args))
        spent = lab.counts() - before
        assert all(c["status"] == "pass" for n, c in run.checks().items() if n != "acme-backup"), run.checks()
        assert spent.helm_calls <= most_helm and spent.api_requests <= most_api, (args, spent.as_dict())
        verbs = [argv[0] for argv in lab.helm_calls()[calls:]]
        assert not {"history", "status", "get"} & set(verbs), verbs  # the release from Helm's records
        gets = labup_gets(lab, start)
        assert len(gets) == len(set(gets)), gets  # no object read twice, whatever the label order
