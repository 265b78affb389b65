"""cert-manager's side of topology ha, as cert-manager v1.21 behaves (read in its source):

- A Certificate is issued by the Issuer its `issuerRef` names, in its namespace. An ACME Issuer must
  name a server and a solver; the http01 ingress solver creates an Ingress of `ingressClassName` for
  the challenge (pkg/issuer/acme/http), which the Traefik serving that class routes.
- Until the certificate is issued the Certificate has `Ready=False`; when an order fails,
  `Issuing=False` with reason `Failed`, the error as its message, and `status.lastFailureTime`
  (pkg/controller/certificates/issuing). On success the Secret `spec.secretName` holds `tls.crt`
  (leaf + chain), `tls.key` and `ca.crt`, annotated with the issuer (cert-manager.io/issuer-name,
  -kind, -group) and the certificate's name; the Certificate gets `Ready=True` and `notAfter`.

`CertManagerSim` watches the emulator like cert-manager's controllers: once the controller's pod runs
(the stand-in chart's Deployment is Ready), every Certificate whose Issuer is a Let's Encrypt ACME
issuer with an http01 ingress solver is "issued" after `delay_s`: the test CA's certificate for the
lab's domain goes into its Secret, or, with `failure` set, the order fails as cert-manager records it.
Each issue is counted in `orders`. A Secret that is already there and passes cert-manager's readiness
policies (key pair, annotations, the spec's key algorithm and size, names, renewal time) is kept: the
Certificate becomes Ready with no order (`kept`).
"""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import serialization

from .acme import PRODUCTION_CA, STAGING_CA
from .background import Background
from kubeemu.admission import AdmissionRequest
from kubeemu.server import KubeEmulator
from netlab import CertSet

FAILURES = {
    "connection": ("Failed to finalize Order: 400 urn:ietf:params:acme:error:connection: 203.0.113.10: Timeout "
                   "during connect (likely firewall problem)"),
}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cond(kind: str, status: bool, reason: str, message: str) -> dict[str, Any]:
    return {"type": kind, "status": "True" if status else "False", "reason": reason, "message": message,
            "lastTransitionTime": _now()}


class CertManagerSim(Background):
    def __init__(self, emu: KubeEmulator, certs: CertSet, namespace: str = "cert-manager") -> None:
        self.emu, self.certs, self.namespace = emu, certs, namespace
        self.delay_s = 0.3
        self.failure: str | None = None  # a key of FAILURES: the order fails instead
        self.orders: list[tuple[str, str, float]] = []  # (namespace/name, issuer server, time.time())
        self.kept: list[str] = []  # Certificates made Ready from the Secret they found, with no order
        self.errors: list[str] = []
        self._first_seen: dict[str, float] = {}
        super().__init__("cert-manager-sim")
        emu.add_admission_hook(self._at_create)

    def _at_create(self, request: AdmissionRequest) -> None:
        """cert-manager's controller marks a new Certificate not Ready within milliseconds, long before the
        pods of the same Helm release are Ready: whoever waits on it (Helm 4's kstatus watcher reads a
        Ready=False condition as InProgress) sees that first, never a Certificate without conditions."""
        if request.operation != "CREATE" or (request.rt.group, request.rt.kind) != ("cert-manager.io", "Certificate"):
            return
        if not self._controller_runs():
            return
        message = "Issuing certificate as Secret does not exist"
        request.obj["status"] = {"conditions": [_cond("Ready", False, "DoesNotExist", message),
                                                _cond("Issuing", True, "DoesNotExist", message)]}

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self._sync()
            except Exception as exc:  # reported through .errors: the lab's close() asserts it is empty
                self.errors.append(repr(exc))

    def _controller_runs(self) -> bool:
        pods = self.emu.list("v1", "Pod", self.namespace)
        return any(p.get("status", {}).get("phase") == "Running" for p in pods
                   if (p.get("metadata", {}).get("labels") or {}).get("app.kubernetes.io/name") == "cert-manager")

    def _sync(self) -> None:
        certificates = self.emu.registry.lookup("cert-manager.io", "v1", "certificates")
        if certificates is None or not self._controller_runs():
            return
        for cert in self.emu.store.list(certificates)[0]:
            self._one(cert)

    def _one(self, cert: dict[str, Any]) -> None:
        meta, spec = cert["metadata"], cert.get("spec") or {}
        key = f"{meta.get('namespace')}/{meta['name']}#{meta.get('generation', 1)}"
        conditions = {c.get("type"): c for c in (cert.get("status") or {}).get("conditions") or []}
        if (conditions.get("Ready") or {}).get("status") == "True" or (cert.get("status") or {}).get("lastFailureTime"):
            return  # issued, or failed (cert-manager backs off for an hour)
        issuer, why = self._issuer(meta.get("namespace"), spec.get("issuerRef") or {})
        if issuer is None:
            self._status(cert, {"conditions": [_cond("Ready", False, "DoesNotExist", why)]})
            return
        kept = self._keeps(meta.get("namespace"), cert)
        if kept is None:  # the Secret already holds what this Certificate asks: ready, no order
            self._status(cert, {"conditions": [_cond("Ready", True, "Ready", "Certificate is up to date and has not "
                                                     "expired")]})
            self.kept.append(f"{meta.get('namespace')}/{meta['name']}")
            return
        started = self._first_seen.setdefault(key, time.monotonic())
        if time.monotonic() - started < self.delay_s:
            self._status(cert, {"conditions": [_cond("Ready", False, "DoesNotExist", "Issuing certificate as Secret "
                                                     "does not exist"), _cond("Issuing", True, "DoesNotExist",
                                                                              "Issuing certificate as Secret does "
                                                                              "not exist")]})
            return
        server = issuer["spec"]["acme"]["server"]
        self.orders.append((f"{meta.get('namespace')}/{meta['name']}", server, time.time()))
        if self.failure is not None:
            message = f"The certificate request has failed to complete and will be retried: {FAILURES[self.failure]}"
            self._status(cert, {"lastFailureTime": _now(), "failedIssuanceAttempts": 1, "conditions": [
                _cond("Ready", False, "DoesNotExist", "Issuing certificate as Secret does not exist"),
                _cond("Issuing", False, "Failed", message)]})
            return
        self._write_secret(meta.get("namespace"), spec, meta["name"], issuer)
        self._status(cert, {"notAfter": self.certs.good.cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
                            "conditions": [_cond("Ready", True, "Ready", "Certificate is up to date and has not "
                                                 "expired")]})

    def _keeps(self, namespace: str | None, cert: dict[str, Any]) -> str | None:
        """cert-manager's readiness policies (internal/controller/certificates/policies, v1.21) on the Secret
        the Certificate names: None when it passes them all (kept, no order), else the first violation."""
        from cryptography import x509
        from cryptography.hazmat.primitives.asymmetric import ec, rsa
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        spec, name = cert.get("spec") or {}, cert["metadata"]["name"]
        secret = self.emu.find("v1", "Secret", spec.get("secretName", ""), namespace)
        if secret is None:
            return "SecretDoesNotExist"
        data = secret.get("data") or {}
        if not data.get("tls.crt") or not data.get("tls.key"):
            return "SecretIsMissingData"
        leaf = x509.load_pem_x509_certificates(base64.b64decode(data["tls.crt"]))[0]
        key = load_pem_private_key(base64.b64decode(data["tls.key"]), password=None)
        if key.public_key() != leaf.public_key():
            return "SecretPublicKeysDiffer"
        notes = (secret.get("metadata") or {}).get("annotations") or {}
        ref = spec.get("issuerRef") or {}
        if any(k in notes for k in ("cert-manager.io/issuer-name", "cert-manager.io/issuer-kind",
                                    "cert-manager.io/issuer-group")) and (
                notes.get("cert-manager.io/issuer-name") != ref.get("name")
                or notes.get("cert-manager.io/issuer-kind", "Issuer") != ref.get("kind", "Issuer")
                or notes.get("cert-manager.io/issuer-group", "cert-manager.io") != ref.get("group", "cert-manager.io")):
            return "IncorrectIssuer"
        if notes.get("cert-manager.io/certificate-name", name) != name:
            return "IncorrectCertificate"
        wanted = spec.get("privateKey") or {}
        algorithm = wanted.get("algorithm") or "RSA"
        if algorithm == "RSA" and not (isinstance(key, rsa.RSAPrivateKey) and key.key_size == (wanted.get("size")
                                                                                               or 2048)):
            return "SecretMismatch: spec.privateKey"
        if algorithm == "ECDSA" and not isinstance(key, ec.EllipticCurvePrivateKey):
            return "SecretMismatch: spec.privateKey.algorithm"
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName)
        if sorted(sans) != sorted(spec.get("dnsNames") or []):
            return "SecretMismatch: dnsNames"
        start, end = leaf.not_valid_before_utc.timestamp(), leaf.not_valid_after_utc.timestamp()
        if time.time() >= start + (end - start) * 2 / 3:  # renewBefore defaults to a third of the lifetime
            return "Renewing"
        return None

    def _issuer(self, namespace: str | None, ref: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
        if ref.get("kind", "Issuer") != "Issuer":
            return None, f"only Issuers are simulated, not {ref.get('kind')}"
        issuers = self.emu.registry.lookup("cert-manager.io", "v1", "issuers")
        issuer = self.emu.store.find(issuers, namespace, ref.get("name", "")) if issuers else None
        if issuer is None:
            return None, f"Issuer {ref.get('name')} not found"
        acme = (issuer.get("spec") or {}).get("acme") or {}
        if acme.get("server") not in (PRODUCTION_CA, STAGING_CA):
            return None, f"Issuer {ref.get('name')}: not a Let's Encrypt ACME server: {acme.get('server')}"
        solvers = acme.get("solvers") or []
        if not any(((s.get("http01") or {}).get("ingress") or {}).get("ingressClassName") for s in solvers):
            return None, f"Issuer {ref.get('name')}: no http01 ingress solver with an ingressClassName"
        return issuer, ""

    def _write_secret(self, namespace: str | None, spec: dict[str, Any], name: str, issuer: dict[str, Any]) -> None:
        good = self.certs.good
        chain = good.cert_path.read_bytes() + self.certs.ca.cert_path.read_bytes()
        key = good.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
        data = {"tls.crt": chain, "tls.key": key, "ca.crt": self.certs.ca.cert_path.read_bytes()}
        body = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                "metadata": {"name": spec["secretName"], "namespace": namespace, "annotations": {
                    "cert-manager.io/certificate-name": name,
                    "cert-manager.io/issuer-name": issuer["metadata"]["name"],
                    "cert-manager.io/issuer-kind": "Issuer", "cert-manager.io/issuer-group": "cert-manager.io",
                    "cert-manager.io/alt-names": ",".join(spec.get("dnsNames") or [])}},
                "data": {k: base64.b64encode(v).decode() for k, v in data.items()}}
        old = self.emu.find("v1", "Secret", spec["secretName"], namespace)
        if old is None:
            self.emu.create("v1", "Secret", body)
        else:
            body["metadata"]["resourceVersion"] = old["metadata"].get("resourceVersion")
            self.emu.update("v1", "Secret", body)

    def _status(self, cert: dict[str, Any], status: dict[str, Any]) -> None:
        rt = self.emu.registry.lookup("cert-manager.io", "v1", "certificates")
        fresh = self.emu.store.find(rt, cert["metadata"].get("namespace"), cert["metadata"]["name"]) if rt else None
        if fresh is None or fresh.get("status") == status:
            return
        old = fresh.get("status") or {}
        same = [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in old.get("conditions") or []] == \
               [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in status.get("conditions") or []]
        if same and {k: v for k, v in old.items() if k != "conditions"} == \
                {k: v for k, v in status.items() if k != "conditions"}:
            return
        fresh["status"] = status
        self.emu.store.update(rt, fresh["metadata"].get("namespace"), fresh["metadata"]["name"], fresh,
                              subresource="status")
