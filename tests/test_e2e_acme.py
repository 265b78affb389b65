"""Certificates as Traefik really gets them (issue 10): on the simulated lab, the stand-in Traefik asks
ACME only for names it finds on routers or in the default TLS store's `defaultGeneratedCert`
(tests/e2e/acme.py, from Traefik's source), serves "TRAEFIK DEFAULT CERT" until then, and writes
Let's Encrypt's refusals to its pod log, which `labup apply` reads through the API to name the cause.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from kubernetes import client

from e2e import LabupRun, SimLab

pytestmark = pytest.mark.root


def ok(run: LabupRun) -> LabupRun:
    assert run.returncode == 0, run.stderr[-4000:]
    return run


def ingresses(lab: SimLab) -> list[Any]:
    return lab.k8s(lambda core, _: client.NetworkingV1Api(core.api_client).list_ingress_for_all_namespaces().items)


def test_a_fresh_lab_with_no_route_gets_its_certificate_from_labups_values(simlab: Callable[..., SimLab]) -> None:
    lab = simlab()
    run = ok(lab.labup("apply"))
    assert ingresses(lab) == []  # no application, no router: only the default TLS store asks
    [store] = lab.emu.store.list(lab.emu.registry.lookup("traefik.io", "v1alpha1", "tlsstores"))[0]
    assert store["metadata"]["name"] == "default"
    assert store["spec"]["defaultGeneratedCert"] == {"resolver": "letsencrypt", "domain": {"main": lab.domain}}
    cert = run.checks()["https-cert"]
    assert cert["status"] == "pass", cert
    assert lab.acme.issued  # the stand-in got it through its (simulated) order, not from the start


def test_without_default_store_generation_traefik_asks_for_nothing_until_a_route_exists(
        simlab: Callable[..., SimLab]) -> None:
    lab = simlab()
    path = lab.root / "extra-values.yaml"
    path.write_text(yaml.safe_dump({"tlsStore": None}))  # null removes labup's tlsStore, as in Helm
    lab.write_lab(traefik={"values": str(path), "cert_timeout_s": 2})
    start = time.monotonic()
    run = lab.labup("apply")
    assert run.returncode == 1
    cert = run.checks()["https-cert"]
    assert cert["status"] == "fail" and "TRAEFIK DEFAULT CERT" in cert["summary"]
    assert "logged no ACME error" in cert["summary"] and "(waited 2s)" in cert["summary"]
    assert "tlsStore.default.defaultGeneratedCert" in cert["hint"]
    assert time.monotonic() - start < 30 and not lab.acme.issued

    # an application's router names the domain: Traefik (watching) now asks, and verify passes
    backend = {"service": {"name": "whoami", "port": {"number": 80}}}
    lab.k8s(lambda core, _: client.NetworkingV1Api(core.api_client).create_namespaced_ingress("default", {
        "metadata": {"name": "whoami"},
        "spec": {"rules": [{"host": lab.domain, "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": backend}]}}]}}))
    assert lab.wait_until(lambda: lab.acme.issued, timeout=5)
    assert ok(lab.labup("verify")).checks()["https-cert"]["status"] == "pass"


@pytest.mark.parametrize("failure, named", [
    ("rate-limit", "rate limit reached until 2026-12-05 09:12:34 UTC"),
    ("connection", "could not connect to tazlab.example on port 80"),
    ("dns", "cannot resolve tazlab.example: DNS does not point at the lab"),
    ("unauthorized", "answered by something other than this Traefik"),
    ("contact", "refuses the account email"),
])
def test_apply_names_the_acme_error_from_traefiks_log(simlab: Callable[..., SimLab], failure: str,
                                                       named: str) -> None:
    lab = simlab()
    lab.acme.failure = failure
    lab.write_lab(traefik={"cert_timeout_s": 60})
    start = time.monotonic()
    run = lab.labup("apply")
    assert run.returncode == 1
    cert = run.checks()["https-cert"]
    assert cert["status"] == "fail" and named in cert["summary"], cert
    assert "(Let's Encrypt production)" in cert["summary"]
    assert "Traefik's log: " in cert["hint"] and "Unable to obtain ACME certificate" in cert["hint"]
    # the wait ends when Traefik has logged its error: no need to sit out cert_timeout_s
    assert time.monotonic() - start < 30
    # the install is kept (a certificate problem is outside the cluster): only verify failed
    assert [s["status"] for s in run.steps("traefik").values()].count("failed") == 0
