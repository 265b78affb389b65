"""Naming the ACME error in Traefik's log (checks/acmelog.py). The lines are Traefik v3.7's own format
(pkg/provider/acme/provider.go `Unable to obtain ACME certificate for domains`, lego acme/errors.go
`acme: error: <status> :: <method> :: <url> :: <urn> :: <detail>`), as the simulated lab writes them."""

from __future__ import annotations

import pytest

from labup.checks.acmelog import classify
from labup.config import Lab, parse

from conftest import REPO, example_data
from e2e.acme import FAILURES, PRODUCTION_CA, STAGING_CA


@pytest.fixture
def lab() -> Lab:
    return parse(example_data(), REPO / "examples" / "lab.yaml")


def traefik_line(kind: str, ca: str = PRODUCTION_CA) -> str:
    return (f"2026-12-04T10:00:00Z ERR Unable to obtain ACME certificate for domains "
            f"{FAILURES[kind].format(d='lab.example.net')} ACME CA={ca} acmeCA={ca} domains=[\"lab.example.net\"] "
            "providerName=letsencrypt.acme")


@pytest.mark.parametrize("kind, words", [
    ("rate-limit", "rate limit reached until 2026-12-05 09:12:34 UTC"),
    ("connection", "could not connect to lab.example.net on port 80"),
    ("dns", "cannot resolve lab.example.net"),
    ("unauthorized", "answered by something other than this Traefik"),
    ("contact", "refuses the account email"),
])
def test_each_failure_is_named(lab: Lab, kind: str, words: str) -> None:
    log = "\n".join(["2026-12-04T09:59:00Z INF Traefik version 3.7.11 built on unknown", traefik_line(kind),
                     "2026-12-04T10:00:01Z INF Starting provider *acme.ChallengeTLSALPN"])
    found = classify(log, lab)
    assert found is not None and found.kind == kind and words in found.summary
    assert found.ca == "production" and found.summary.endswith("(Let's Encrypt production)")
    assert "Unable to obtain ACME certificate" in found.line


def test_the_last_error_wins_and_staging_is_said(lab: Lab) -> None:
    log = traefik_line("dns") + "\n" + traefik_line("rate-limit", STAGING_CA)
    found = classify(log, lab)
    assert found is not None and found.kind == "rate-limit" and found.ca == "staging"
    assert "traefik.acme.staging" in found.hint  # the example lab is on production: staging is suggested


def test_json_format_logs_are_read_too(lab: Lab) -> None:
    line = ('{"level":"error","error":"acme: error: 400 :: urn:ietf:params:acme:error:connection :: '
            '203.0.113.10: Timeout during connect (likely firewall problem)","message":"Unable to obtain ACME '
            'certificate for domains","time":"2026-12-04T10:00:00Z"}')
    found = classify(line, lab)
    assert found is not None and found.kind == "connection"


def test_acme_json_permissions(lab: Lab) -> None:
    line = ("2026-12-04T10:00:00Z ERR The ACME resolver \"letsencrypt\" is skipped from the resolvers list "
            "error=\"unable to get ACME account: permissions 644 for /data/acme.json are too open, please use 600\"")
    found = classify(line, lab)
    assert found is not None and found.kind == "permissions"


def test_no_error_no_finding_and_no_terminal_control_from_the_log(lab: Lab) -> None:
    assert classify("2026-12-04T10:00:00Z INF Traefik version 3.7.11\n", lab) is None
    found = classify("ERR acme: error: 500 \x1b]0;owned\x07 something odd", lab)
    assert found is not None and found.kind == "other" and "\x1b" not in found.line and "\x07" not in found.line
