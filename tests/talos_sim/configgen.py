"""Machine configs shaped like `talosctl gen config` output for a given Talos version.

Every secret carries SECRET_MARKER so a test can grep labup's output, logs and journal for it.
Real Talos stores keys base64-encoded; these are readable fake PEM blocks on purpose.
"""

from __future__ import annotations

from typing import Any

from talos_sim.versions import parse_version

SECRET_MARKER = "LABUP-FAKE-SECRET"


def fake_pem(kind: str, what: str) -> str:
    return f"-----BEGIN {kind}-----\n{SECRET_MARKER}-{what}\n-----END {kind}-----\n"


def fake_token(what: str) -> str:
    return f"{SECRET_MARKER}-{what}"


def generate(
    *, version: str, machinetype: str, nodename: str, cluster_name: str, endpoint: str
) -> list[dict[str, Any]]:
    """The documents of a freshly generated config: v1alpha1 first, then (>= 1.12) the rest."""
    minor = parse_version(version)[:2]
    control_plane = machinetype in ("controlplane", "init")
    k8s = "v1.34.1"

    machine: dict[str, Any] = {
        "type": machinetype,
        "token": fake_token("machine-token"),
        # Workers get the CA certificate only; Talos rejects a CA key on them.
        "ca": {"crt": fake_pem("CERTIFICATE", "machine-ca-crt")},
        "certSANs": [],
        "kubelet": {
            "image": f"ghcr.io/siderolabs/kubelet:{k8s}",
            "defaultRuntimeSeccompProfileEnabled": True,
            "disableManifestsDirectory": True,
        },
    }
    if control_plane:
        machine["ca"]["key"] = fake_pem("ED25519 PRIVATE KEY", "machine-ca-key")
    if minor < (1, 13):
        # 1.13 stops generating the (deprecated) machine.network section.
        machine["network"] = {}
    machine["install"] = {
        "disk": "/dev/sda",
        "image": f"ghcr.io/siderolabs/installer:{version}",
        "wipe": False,
    }
    features: dict[str, Any] = {"rbac": True, "apidCheckExtKeyUsage": True, "diskQuotaSupport": True}
    if minor < (1, 12):
        features["stableHostname"] = True
    machine["features"] = features

    cluster: dict[str, Any] = {
        "id": fake_token("cluster-id"),
        "secret": fake_token("cluster-secret"),
        "controlPlane": {"endpoint": endpoint},
        "clusterName": cluster_name,
        "network": {
            "dnsDomain": "cluster.local",
            "podSubnets": ["10.244.0.0/16"],
            "serviceSubnets": ["10.96.0.0/12"],
        },
        "token": fake_token("cluster-token"),
        "ca": {"crt": fake_pem("CERTIFICATE", "cluster-ca-crt")},
        "discovery": {"enabled": True},
    }
    if control_plane:
        cluster["secretboxEncryptionSecret"] = fake_token("secretbox")
        cluster["ca"]["key"] = fake_pem("EC PRIVATE KEY", "cluster-ca-key")
        cluster["aggregatorCA"] = {
            "crt": fake_pem("CERTIFICATE", "aggregator-ca-crt"),
            "key": fake_pem("EC PRIVATE KEY", "aggregator-ca-key"),
        }
        cluster["serviceAccount"] = {"key": fake_pem("EC PRIVATE KEY", "service-account-key")}
        cluster["apiServer"] = {"image": f"registry.k8s.io/kube-apiserver:{k8s}", "certSANs": []}
        cluster["etcd"] = {
            "ca": {
                "crt": fake_pem("CERTIFICATE", "etcd-ca-crt"),
                "key": fake_pem("EC PRIVATE KEY", "etcd-ca-key"),
            }
        }

    docs: list[dict[str, Any]] = [
        {"version": "v1alpha1", "debug": False, "persist": True, "machine": machine, "cluster": cluster}
    ]
    if minor >= (1, 12):
        # Since 1.12 the hostname comes from its own document (generate/network.go).
        docs.append({"apiVersion": "v1alpha1", "kind": "HostnameConfig", "auto": "stable"})
    return docs
