"""topology ha: the certificate of topology single carried over into cert-manager's Secret.

Switching single -> ha would otherwise make cert-manager order the same certificate again (Let's
Encrypt allows 5 duplicates a week). cert-manager keeps a Secret it finds when it passes its readiness
policies (v1.21, internal/controller/certificates/policies): tls.crt and tls.key present and matching,
no issuer or certificate-name annotation naming another, a private key of the Certificate's algorithm
and size (RSA 4096 here: Traefik's own ACME default), the same DNS names, not yet due for renewal.

The certificate comes from the newest local backup (`labup backup`), else from the in-cluster backup
Secret (backup.in_cluster). Only one that names exactly traefik.domains, staging as traefik.acme.staging
says, with an RSA 4096 key, is carried over; otherwise the step says why and cert-manager orders one.
Undo deletes the Secret while it still holds the certificate labup put there.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import TYPE_CHECKING, Any

from labup.adapters.kube import shared as kube
from labup.engine.model import Observation, Step
from labup.errors import LabupError

if TYPE_CHECKING:
    from labup.certbackup.store import CertInfo
    from labup.engine.context import Context

KEY_ALGORITHM, KEY_BITS = "RSA", 4096  # values-ha.yaml.tmpl's Certificate spec.privateKey
CARRIED = {"app.kubernetes.io/managed-by": "labup", "labup.dev/carried-over": "true"}


class CarryOver(Step):
    name = "carry-over"

    def __init__(self, ctx: Context) -> None:
        from labup.traefik.values import TLS_SECRET

        self.lab = ctx.lab  # no I/O: `labup rollback` builds steps just to undo
        self.namespace, self.secret = ctx.lab.traefik.namespace, TLS_SECRET
        self._found: tuple[CertInfo, bytes, bytes, str] | None = None

    def observe(self, ctx: Context) -> Observation:
        where = f"Secret {self.namespace}/{self.secret}"
        try:
            if kube(ctx).get_secret(self.namespace, self.secret) is not None:
                return Observation(True, f"{where} exists: cert-manager keeps or renews what it holds")
        except LabupError as exc:
            return Observation(None, f"{where}: could not be read", reason=exc.message)
        found, why = self._certificate(ctx)
        if found is None:
            return Observation(True, f"nothing to carry over ({why}): cert-manager orders the certificate")
        info, _, _, source = found
        self._found = found
        return Observation(False, f"carry over the certificate for {', '.join(info.domains)} ({info.issuer}, "
                                  f"{info.days_left()} days left) from {source} into {where}: cert-manager keeps it "
                                  "until renewal, Let's Encrypt is not asked again")

    def apply(self, ctx: Context, seen: Observation) -> dict[str, Any]:
        assert self._found is not None  # observe() found it in this run
        _, chain, key, _ = self._found
        acme = self.lab.traefik.acme
        annotations = {"cert-manager.io/certificate-name": self.secret, "cert-manager.io/issuer-name": acme.resolver,
                       "cert-manager.io/issuer-kind": "Issuer", "cert-manager.io/issuer-group": "cert-manager.io"}
        kube(ctx).put_secret(self.namespace, self.secret, {"tls.crt": chain, "tls.key": key}, CARRIED, None,
                             secret_type="kubernetes.io/tls", annotations=annotations)
        # journaled: the fingerprint only, never the certificate or its key
        return {"namespace": self.namespace, "secret": self.secret, "sha256": hashlib.sha256(chain).hexdigest()}

    def undo(self, ctx: Context, data: dict[str, Any]) -> str:
        import base64

        k = kube(ctx)
        namespace, name = str(data["namespace"]), str(data["secret"])
        secret = k.get_secret(namespace, name)
        if secret is None:
            return f"Secret {namespace}/{name} is already gone"
        chain = base64.b64decode(((secret.get("data") or {}).get("tls.crt")) or "")
        if hashlib.sha256(chain).hexdigest() != data.get("sha256"):
            return f"left Secret {namespace}/{name} alone: cert-manager has put another certificate in it since"
        k.delete_secret(namespace, name)
        return f"deleted Secret {namespace}/{name} (labup carried the certificate over into it)"

    def owns(self, ctx: Context, data: dict[str, Any]) -> str | None:
        if (data.get("namespace"), data.get("secret")) != (self.namespace, self.secret):
            return f"it names Secret {data.get('namespace')}/{data.get('secret')}, not {self.namespace}/{self.secret}"
        return None

    def _certificate(self, ctx: Context) -> tuple[tuple[CertInfo, bytes, bytes, str] | None, str]:
        """(certificate, chain, key, where from), or None and why not."""
        from labup.certbackup import backups
        from labup.certbackup.store import MAX_BYTES, InvalidStore, certificate_pair, parse

        t = self.lab.traefik
        sources: list[tuple[str, bytes]] = []
        local = backups.existing(backups.backup_dir(self.lab.state_dir))
        if local:
            with contextlib.suppress(OSError):  # unreadable: the in-cluster backup may still do
                sources.append((f"backup {local[-1].name}", backups.read(local[-1], MAX_BYTES)))
        if not sources:
            from labup.certbackup.node import ACME_FILE, SEED_SECRET

            try:
                seed = kube(ctx).get_secret(t.namespace, SEED_SECRET)
            except LabupError:
                seed = None
            encoded = ((seed or {}).get("data") or {}).get(ACME_FILE)
            if isinstance(encoded, str):
                import base64

                sources.append((f"Secret {t.namespace}/{SEED_SECRET}", base64.b64decode(encoded)))
        if not sources:
            return None, "no backup in .labup/backups, no in-cluster backup"
        source, data = sources[0]
        try:
            parse(data, resolver=t.acme.resolver)
            pair = certificate_pair(data, t.acme.resolver, t.domains, t.acme.staging)
        except InvalidStore as exc:
            return None, f"{source} is not usable: {exc}"
        if pair is None:
            kind = "staging" if t.acme.staging else "production"
            return None, f"{source} holds no {kind} certificate for exactly {', '.join(t.domains)}"
        info, chain, key = pair
        if info.days_left() < 30:
            return None, f"its certificate in {source} has {info.days_left()} days left: cert-manager would renew it"
        if (problem := _key_mismatch(key)) is not None:
            return None, f"its key in {source} is {problem}, the Certificate asks {KEY_ALGORITHM} {KEY_BITS}"
        return (info, chain, key, source), ""


def _key_mismatch(key_pem: bytes) -> str | None:
    """How the key differs from what the Certificate asks (cert-manager would re-issue), or None."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(key_pem, password=None)
    if isinstance(key, rsa.RSAPrivateKey):
        return None if key.key_size == KEY_BITS else f"RSA {key.key_size}"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return f"ECDSA {key.curve.name}"
    return type(key).__name__
