"""Traefik's ACME store judged (labup.certbackup.store) and kept (backups.py), with stores built the way
Traefik v3 writes them (pkg/provider/acme: base64 PEM chain and key per certificate, DER account key).
No key ever appears in a message."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from labup.certbackup import backups
from labup.certbackup.store import InvalidStore, parse

NOW = dt.datetime.now(dt.UTC)


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def issue(domain: str, issuer_cn: str = "R12", issuer_org: str = "Let's Encrypt", days: int = 80,
          age_days: int = 10) -> tuple[bytes, bytes]:
    """(PEM chain, PEM key) of a leaf for `domain` under a CA with that name."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(issuer_cn, issuer_org)
    leaf = (x509.CertificateBuilder().subject_name(_name(domain)).issuer_name(ca_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(days=age_days)).not_valid_after(NOW + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    chain = leaf.public_bytes(serialization.Encoding.PEM)
    pem_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return chain, pem_key


def account_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    return base64.b64encode(der).decode()


def entry(domain: str, chain: bytes, key: bytes) -> dict[str, Any]:
    return {"domain": {"main": domain}, "certificate": base64.b64encode(chain).decode(),
            "key": base64.b64encode(key).decode(), "Store": "default"}


def store(*certs: dict[str, Any], resolver: str = "letsencrypt") -> dict[str, Any]:
    return {resolver: {"Account": {"Email": "ops@lab.example.net", "Registration": {
        "body": {"status": "valid"}, "uri": "https://acme-v02.api.letsencrypt.org/acme/acct/1"},
        "PrivateKey": account_key()}, "Certificates": list(certs)}}


@pytest.fixture(scope="module")
def prod() -> tuple[bytes, bytes]:
    return issue("lab.example.net")


def test_a_store_traefik_wrote_is_read_without_its_keys(prod: tuple[bytes, bytes]) -> None:
    staging = issue("old.lab.example.net", "(STAGING) Riddling Rhubarb R12", "(STAGING) Let's Encrypt")
    data = json.dumps(store(entry("lab.example.net", *prod), entry("old.lab.example.net", *staging))).encode()
    found = parse(data, resolver="letsencrypt")
    assert found.resolvers == {"letsencrypt": "ops@lab.example.net"}
    [live, old] = found.certificates
    assert (live.domains, live.issuer, live.staging) == (("lab.example.net",), "R12", False)
    assert 78 <= live.days_left() <= 80 and old.staging is True
    shown = json.dumps([c.as_dict() for c in found.certificates])
    assert "PRIVATE KEY" not in shown and base64.b64encode(prod[1]).decode()[:40] not in shown


@pytest.mark.parametrize("data", [b"", b"{}", b"  \n"])
def test_an_empty_store_is_empty_not_invalid(data: bytes) -> None:
    assert parse(data, resolver="letsencrypt").empty


def _broken(prod: tuple[bytes, bytes], what: str) -> bytes:
    good = json.dumps(store(entry("lab.example.net", *prod))).encode()
    other_key = issue("x.example.net")[1]
    cases = {
        "truncated": good[: len(good) // 2],
        "not-json": b"certificates: yes\n",
        "wrong-resolver": json.dumps(store(entry("lab.example.net", *prod), resolver="other")).encode(),
        "huge": b" " * (40 * 1024 * 1024) + good,
        "key-mismatch": json.dumps(store(entry("lab.example.net", prod[0], other_key))).encode(),
        "not-pem": json.dumps(store({**entry("lab.example.net", *prod),
                                     "certificate": base64.b64encode(b"hello").decode()})).encode(),
        "binary": b"\xff\xfe\x00garbage",
        "list": b"[1, 2]",
    }
    return cases[what]


@pytest.mark.parametrize("what, says", [
    ("truncated", "not JSON"), ("not-json", "not JSON"), ("wrong-resolver", "not 'letsencrypt'"),
    ("huge", "over 1048576 bytes"), ("key-mismatch", "does not belong to its certificate"),
    ("not-pem", "not PEM"), ("binary", "not text"), ("list", "not a JSON object"),
])
def test_what_is_not_a_store_is_named_never_quoted(prod: tuple[bytes, bytes], what: str, says: str) -> None:
    with pytest.raises(InvalidStore) as caught:
        parse(_broken(prod, what), resolver="letsencrypt")
    message = str(caught.value)
    assert says in message
    assert "PRIVATE" not in message and base64.b64encode(prod[1]).decode()[:24] not in message
    assert len(message) < 300


def test_backups_are_private_kept_to_n_and_never_overwritten(tmp_path: Path) -> None:
    state = tmp_path / ".labup"
    folder = backups.ensure_backup_dir(state)
    assert stat.S_IMODE(os.stat(state).st_mode) == stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    base = dt.datetime(2026, 12, 4, 10, 0, 0, tzinfo=dt.UTC)
    made = [backups.write_new(folder, b"{}", base + dt.timedelta(seconds=i)) for i in range(5)]
    same_second = backups.write_new(folder, b"{}", base + dt.timedelta(seconds=4))  # a second one in that second
    assert same_second != made[-1] and stat.S_IMODE(os.stat(same_second).st_mode) == 0o600
    (folder / "notes.txt").write_text("mine")  # not labup's: never touched
    removed = backups.prune(folder, keep=3)
    assert removed == made[:3] and backups.existing(folder) == [made[3], made[4], same_second]
    assert (folder / "notes.txt").exists()
    assert backups.taken_at(made[3]) == base + dt.timedelta(seconds=3)
    out = tmp_path / "mine.json"
    backups.write_to(out, b"{}")
    with pytest.raises(Exception, match="never replaces a file"):
        backups.write_to(out, b"{}")
    other = tmp_path / "other" / ".labup"
    other.mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", other / "backups")  # keys must never land where a link points
    with pytest.raises(Exception, match="symbolic link"):
        backups.ensure_backup_dir(other)
    assert not list((tmp_path / "elsewhere").iterdir())


def test_acme_backup_warns_until_a_backup_holds_the_served_certificate(tmp_path: Path,
                                                                       prod: tuple[bytes, bytes]) -> None:
    from labup.checks.acme_backup import acme_backup
    from labup.checks.model import PASS, WARN, CheckContext, CheckResult
    from labup.config import parse as parse_lab

    from conftest import example_data

    data = example_data()
    data["traefik"]["domains"] = ["lab.example.net"]
    lab = parse_lab(data, tmp_path / "lab.yaml")
    leaf = x509.load_pem_x509_certificate(prod[0])
    served = {"lab.example.net": {"verified": True, "staging": False, "traefik_default": False,
                                  "not_before": leaf.not_valid_before_utc.isoformat()}}

    def judge(domains: dict[str, Any]) -> CheckResult:
        ctx = CheckContext(lab, ["https-cert", "acme-backup"], 1.0)
        ctx.publish(CheckResult("https-cert", PASS, "ok", data={"domains": domains}))
        return acme_backup(ctx)

    assert judge({"lab.example.net": {**served["lab.example.net"], "staging": True}}).status == PASS  # nothing
    first = judge(served)
    assert first.status == WARN and "no backup" in first.summary and "labup backup" in (first.hint or "")
    folder = backups.ensure_backup_dir(lab.state_dir)
    older = issue("lab.example.net", age_days=40)  # a backup from before the last renewal
    backups.write_new(folder, json.dumps(store(entry("lab.example.net", *older))).encode(),
                      NOW - dt.timedelta(days=30))
    stale = judge(served)
    assert stale.status == WARN and "newer than the newest backup" in stale.summary
    backups.write_new(folder, json.dumps(store(entry("lab.example.net", *prod))).encode())
    assert judge(served).status == PASS
    ctx = CheckContext(lab, ["acme-backup"], 0.2)  # without https-cert: says so, proves nothing
    assert acme_backup(ctx).status == "skip"


def test_the_backup_secret_is_labups_own_and_replaced_never_stolen(tmp_path: Path) -> None:
    """backup.in_cluster: the Secret is created, then replaced (resourceVersion: a concurrent change is
    a conflict), labelled as labup's; a Secret of that name that is not labup's is left alone."""
    from labup.certbackup.node import SEED_SECRET, keep_in_cluster
    from labup.config import parse as parse_lab
    from labup.errors import PermanentError

    from conftest import example_data
    from kubeemu import KubeEmulator

    with KubeEmulator() as emu:
        data = example_data()
        data["kubernetes"] = {"kubeconfig": str(emu.write_kubeconfig(tmp_path / "kubeconfig"))}
        data["backup"] = {"in_cluster": True}
        lab = parse_lab(data, tmp_path / "lab.yaml")
        emu.create("v1", "Namespace", {"metadata": {"name": "traefik"}})
        assert keep_in_cluster(lab, b'{"first": 1}') == f"traefik/{SEED_SECRET}"
        keep_in_cluster(lab, b'{"second": 2}')
        stored = emu.get("v1", "Secret", SEED_SECRET, "traefik")
        assert base64.b64decode(stored["data"]["acme.json"]) == b'{"second": 2}'
        assert stored["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "labup"
        stored["metadata"]["labels"] = {"app": "someone-else"}
        emu.update("v1", "Secret", stored)
        with pytest.raises(PermanentError, match="is not labup's"):
            keep_in_cluster(lab, b'{"third": 3}')
        assert base64.b64decode(emu.get("v1", "Secret", SEED_SECRET, "traefik")["data"]["acme.json"]) == \
            b'{"second": 2}'


@pytest.mark.parametrize("what, says", [
    ("truncated", "not JSON"), ("not-json", "not JSON"), ("wrong-resolver", "not 'letsencrypt'"),
    ("huge", "over 1048576 bytes"), ("other-domains", "none of traefik.domains"), ("empty", "holds no certificate"),
    ("fifo", "not a regular file"),
])
def test_restore_refuses_what_is_not_this_labs_store_before_asking_anything(
        tmp_path: Path, prod: tuple[bytes, bytes], what: str, says: str, no_outside_tools: None) -> None:
    """Exit 2 naming the problem, before any node or API is asked (the example lab: nothing reachable)."""
    from conftest import EXAMPLE, run_labup

    path = tmp_path / "backup.json"
    if what == "fifo":
        os.mkfifo(path)
    elif what == "other-domains":
        path.write_text(json.dumps(store(entry("other.example.org", *issue("other.example.org")))))
    elif what == "empty":
        path.write_text(json.dumps(store()))
    else:
        path.write_bytes(_broken(prod, what))
    result = run_labup("-c", str(EXAMPLE), "restore", str(path), "--yes", timeout=30)
    assert result.returncode == 2, result.stderr
    assert says in result.stderr and "PRIVATE" not in result.stderr + result.stdout
    if what == "other-domains":  # --force: judged again without the domain/resolver rule, then Traefik is sought
        forced = run_labup("-c", str(EXAMPLE), "restore", str(path), "--dry-run", "--force", timeout=30)
        assert forced.returncode != 2 and "none of traefik.domains" not in forced.stderr
