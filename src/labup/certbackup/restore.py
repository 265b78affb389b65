"""Put a backed-up acme.json in place on the node that runs Traefik, then restart Traefik to load it.

Talos has no API to write a file, so the file travels through Kubernetes: a Secret holding it, and a
one-shot pod on that node (nodeName: no scheduler decides) with the node's acme.json folder mounted,
which copies it there as 0600 through a temporary name and a rename (Traefik never sees half a file).
The pod and the Secret are removed afterwards whatever happens; Traefik's pod is then deleted, and its
Deployment starts a new one on the same node (it is pinned there), which loads the restored file.
"""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING, Any

from labup.certbackup.node import ACME_FILE
from labup.errors import PermanentError, TransientError

if TYPE_CHECKING:
    from labup.adapters.kube import KubeAdapter
    from labup.config import Lab, Node

RESTORE_SECRET = "labup-acme-restore"
IMAGE = "busybox:1.37.0"  # the image labup's init container already uses
LABELS = {"app.kubernetes.io/managed-by": "labup", "labup.dev/role": "acme-restore"}
# through a temporary name and a rename in the same folder: Traefik never reads half a file
COPY = ("cp /restore/acme.json /data/.acme.json.labup && chmod 600 /data/.acme.json.labup && "
        "mv /data/.acme.json.labup /data/acme.json")
POLL_S = 0.5


def restore_pod(lab: Lab, node: Node, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": lab.traefik.namespace, "labels": dict(LABELS)},
        "spec": {
            "nodeName": node.name,
            "restartPolicy": "Never",
            "tolerations": [{"operator": "Exists"}],  # a control-plane node's NoSchedule taint
            "containers": [{
                "name": "restore", "image": IMAGE, "command": ["sh", "-c", COPY],
                "securityContext": {"runAsUser": 0, "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}},
                "volumeMounts": [{"name": "acme", "mountPath": "/data"},
                                 {"name": "restore", "mountPath": "/restore", "readOnly": True}],
            }],
            "volumes": [{"name": "acme", "hostPath": {"path": lab.traefik.acme.storage_dir, "type": "Directory"}},
                        {"name": "restore", "secret": {"secretName": RESTORE_SECRET}}],
        },
    }


def place(lab: Lab, kube: KubeAdapter, node: Node, data: bytes, timeout_s: float) -> None:
    """The file onto `node` through the Secret and the one-shot pod; both are removed afterwards."""
    namespace = lab.traefik.namespace
    stale = kube.get_secret(namespace, RESTORE_SECRET)
    if stale is not None and ((stale.get("metadata") or {}).get("labels") or {}).get(
            "app.kubernetes.io/managed-by") != "labup":
        raise PermanentError(f"a Secret {namespace}/{RESTORE_SECRET} exists and is not labup's: nothing was changed",
                             hint="rename or remove that Secret")
    kube.put_secret(namespace, RESTORE_SECRET, {ACME_FILE: data}, {**LABELS, "labup.dev/lab": lab.identity}, stale)
    name = f"labup-acme-restore-{secrets.token_hex(4)}"
    try:
        kube.create_pod(namespace, restore_pod(lab, node, name))
        _wait_done(kube, namespace, name, node, timeout_s)
    finally:
        kube.delete_pod(namespace, name)
        kube.delete_secret(namespace, RESTORE_SECRET)


def _wait_done(kube: KubeAdapter, namespace: str, name: str, node: Node, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        pod = kube.get_pod(namespace, name) or {}
        phase = (pod.get("status") or {}).get("phase")
        if phase == "Succeeded":
            return
        if phase == "Failed":
            raise PermanentError(f"the pod that copies acme.json onto {node.name} failed: "
                                 f"`kubectl -n {namespace} logs {name}` (it is removed now)")
        if time.monotonic() > deadline:
            raise TransientError(f"the pod that copies acme.json onto {node.name} did not finish within "
                                 f"{timeout_s:g}s (phase {phase or 'unknown'}): is image {IMAGE} pullable there?")
        time.sleep(POLL_S)


def restart_traefik(lab: Lab, kube: KubeAdapter, timeout_s: float) -> str:
    """Delete Traefik's pods; wait until a new one is Running and Ready. Returns its node."""
    from labup.checks.kube_facts import LabKubeFacts

    facts = LabKubeFacts(lab, lab.kubernetes.timeout_s)
    old = {p.name for p in facts.traefik_pods()}
    for name in old:
        kube.delete_pod(lab.traefik.namespace, name)
    deadline = time.monotonic() + timeout_s
    while True:
        fresh = [p for p in LabKubeFacts(lab, lab.kubernetes.timeout_s).traefik_pods()
                 if p.name not in old and p.ready and p.node]
        if fresh:
            return str(fresh[0].node)
        if time.monotonic() > deadline:
            raise TransientError(f"no new Traefik pod became ready within {timeout_s:g}s after the restore",
                                 hint="`labup verify` says where it stands; the restored file is in place")
        time.sleep(POLL_S)
