"""Where Traefik's acme.json lives and how labup reaches it: the node that runs Traefik (Kubernetes
says), the file on that node's disk (Talos' Read API), and the backup Secret in Traefik's namespace."""

from __future__ import annotations

from typing import TYPE_CHECKING

from labup.errors import PermanentError

if TYPE_CHECKING:
    from labup.config import Lab, Node

ACME_FILE = "acme.json"
SEED_SECRET = "labup-acme-backup"  # backup.in_cluster: the newest backup, which seeds an empty acme.json
MANAGED_BY = {"app.kubernetes.io/managed-by": "labup"}


def acme_path(lab: Lab) -> str:
    """Where acme.json is on the node's disk: the hostPath folder of traefik.acme.storage_dir."""
    return f"{lab.traefik.acme.storage_dir.rstrip('/')}/{ACME_FILE}"


def traefik_node(lab: Lab) -> Node:
    """The lab node that runs Traefik's pod (a running one first), by its Kubernetes name."""
    from labup.checks.kube_facts import LabKubeFacts

    pods = LabKubeFacts(lab, lab.kubernetes.timeout_s).traefik_pods()
    placed = sorted((p for p in pods if p.node), key=lambda p: p.phase != "Running")
    if not placed:
        raise PermanentError(f"no Traefik pod runs in namespace {lab.traefik.namespace}: no acme.json to back up",
                             hint="`labup apply` deploys Traefik; `labup verify` says what is wrong")
    name = placed[0].node
    node = next((n for n in lab.nodes if n.name == name), None)
    if node is None:
        raise PermanentError(f"Traefik runs on node {name}, which lab.yaml does not list: labup cannot ask its "
                             "Talos API for the file", hint="add that node to nodes[] in lab.yaml")
    return node


def read_store(lab: Lab, node: Node) -> bytes:
    from labup.adapters.talos import TalosAdapter, TalosFailed

    path = acme_path(lab)
    try:
        text = TalosAdapter(lab).read_file(node.address, path)
    except TalosFailed as exc:
        if "NotFound" in exc.detail:
            raise PermanentError(f"{node.name} has no {path} yet: Traefik has not stored an ACME account there",
                                 hint="back it up once Traefik has a certificate (see `labup verify`)") from None
        raise
    return text.encode("utf-8")


def keep_in_cluster(lab: Lab, data: bytes) -> str:
    """The backup as the Secret SEED_SECRET in Traefik's namespace (created or replaced; never one that
    is not labup's). Returns "namespace/name"."""
    from labup.adapters.kube import KubeAdapter

    t = lab.traefik
    kube = KubeAdapter.from_lab(lab)
    existing = kube.get_secret(t.namespace, SEED_SECRET)
    if existing is not None and ((existing.get("metadata") or {}).get("labels") or {}).get(
            "app.kubernetes.io/managed-by") != "labup":
        raise PermanentError(f"a Secret {t.namespace}/{SEED_SECRET} exists and is not labup's: left alone (the "
                             "local backup was written)", hint="rename or remove that Secret, then back up again")
    kube.put_secret(t.namespace, SEED_SECRET, {ACME_FILE: data}, {**MANAGED_BY, "labup.dev/lab": lab.identity},
                    existing)
    return f"{t.namespace}/{SEED_SECRET}"
