"""topology: ha (issue 15): three control planes, Traefik as a DaemonSet on every one of them, cert-manager
issuing the certificate into a Secret every Traefik serves; the VIP fails over and HTTPS keeps answering.

End to end on the simulated lab (HA_NODES: three control planes and a worker; the emulator's DaemonSet
controller puts one Traefik pod on each node the pod fits, none on the worker; the cert-manager stand-in
chart brings the real chart's schema and CRD names, CertManagerSim issues as cert-manager does).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from e2e import HA_NODES, LabupRun, SimLab
from conftest import REPO

CM_PIN = REPO / "phases" / "certmanager"
CM_STANDIN = REPO / "tests" / "charts" / "cert-manager-standin"


def ok(run: LabupRun) -> LabupRun:
    assert run.returncode == 0, run.stderr[-4000:]
    return run


def ha_lab(simlab: Callable[..., SimLab]) -> SimLab:
    lab = simlab(nodes=HA_NODES)
    lab.write_lab(lab.ha_lab_data())
    return lab


# -- offline: the pin and the stand-in ---------------------------------------------------------------


def test_cert_manager_schema_is_the_pinned_one_everywhere() -> None:
    """The shipped schema is the one the pin names (sha256), and the stand-in chart carries that same
    file: helm validates the stand-in's values exactly as the real chart's."""
    pin = yaml.safe_load((CM_PIN / "chart.yaml").read_text())
    shipped = hashlib.sha256((CM_PIN / "values.schema.json").read_bytes()).hexdigest()
    assert shipped == pin["schema_sha256"]
    assert hashlib.sha256((CM_STANDIN / "values.schema.json").read_bytes()).hexdigest() == shipped
    standin = yaml.safe_load((CM_STANDIN / "Chart.yaml").read_text())
    assert (standin["name"], standin["version"]) == (pin["name"], pin["version"])
    crds = sorted(p.name.split("_", 1)[1].removesuffix(".yaml") + "." + p.name.split("_")[0][4:]
                  for p in (CM_STANDIN / "templates").glob("crd-*.yaml"))
    assert crds == sorted(pin["crds"])


# -- end to end --------------------------------------------------------------------------------------


@pytest.mark.root
def test_ha_apply_converges_verify_passes_and_failover_needs_no_reapply(simlab: Callable[..., SimLab]) -> None:
    lab = ha_lab(simlab)
    started = time.monotonic()
    run = ok(lab.labup("apply"))
    apply_s = time.monotonic() - started
    phases = list(dict.fromkeys(s["phase"] for s in run.doc["steps"]))
    assert phases == ["vip", "helm", "namespace", "cert-manager", "traefik", "verify"]
    nodes = sorted(p.node for p in lab.running_traefik())
    assert nodes == ["cp-1", "cp-2", "cp-3"]  # one per control plane, none on the worker
    [ds] = lab.emu.list("apps/v1", "DaemonSet", "traefik")
    assert ds["spec"]["updateStrategy"]["rollingUpdate"] == {"maxUnavailable": 1, "maxSurge": 0}
    checks = run.checks()
    assert all(checks[c]["status"] == "pass" for c in ("vip-holder", "traefik-placement", "https-cert")), checks
    assert "from Secret traefik/labup-tls, issued by cert-manager" in checks["https-cert"]["summary"]
    assert len(lab.cert_manager.orders) == 1 and lab.acme.orders == []  # cert-manager's, never Traefik's ACME

    started = time.monotonic()
    verify = ok(lab.labup("verify"))
    verify_s = time.monotonic() - started
    holder = verify.checks()["vip-holder"]["data"]["holder"]

    other = next(n for n in HA_NODES if n.role == "controlplane" and n.name != holder)
    lab.sim.set_holder(other.address)
    assert lab.vip_mirror.wait_for(other.netns)
    moved = ok(lab.labup("verify")).checks()
    assert moved["vip-holder"]["data"]["holder"] == other.name
    assert moved["traefik-placement"]["status"] == "pass" and moved["https-cert"]["status"] == "pass"

    before = lab.counts()
    again = ok(lab.labup("apply"))
    assert (lab.counts() - before).writes == 0, again.stderr
    assert len(lab.cert_manager.orders) == 1
    print(f"\nha: apply {apply_s:.2f}s, verify {verify_s:.2f}s")
