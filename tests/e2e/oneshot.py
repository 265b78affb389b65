"""One-shot pods (bare, restartPolicy Never: e.g. labup restore's copy pod) run to completion.

When such a pod is Running on a node, its containers' `sh -c` scripts run with the host's real `sh`
through e2e/podfs.py (every path mapped to the node's disk, the pod's Secrets written out), then its
phase becomes Succeeded (all scripts exited 0) or Failed, as the kubelet reports a finished pod.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from .podfs import PodDisk
from kubeemu.cluster import PodOnNode
from kubeemu.server import KubeEmulator


def one_shot(pod: PodOnNode) -> bool:
    spec, meta = pod.obj.get("spec") or {}, pod.obj.get("metadata") or {}
    owned = any(ref.get("controller") for ref in meta.get("ownerReferences") or [])
    return spec.get("restartPolicy") == "Never" and not owned


class OneShotRunner:
    def __init__(self, emu: KubeEmulator, files_dir: Path, addresses: dict[str, str], folder: Path) -> None:
        self.emu, self.files_dir, self.addresses, self.folder = emu, files_dir, addresses, folder
        self.errors: list[str] = []
        self.ran: list[tuple[str, str, list[str]]] = []  # (pod, node, problems)

    def on_running(self, pod: PodOnNode) -> None:
        if one_shot(pod):  # out of the cluster's event thread: finishing the pod writes to the store
            threading.Thread(target=self._run, args=(pod,), daemon=True).start()

    def _run(self, pod: PodOnNode) -> None:
        try:
            address = self.addresses.get(pod.node)
            if address is None:
                problems = [f"node {pod.node} has no disk in this lab"]
            else:
                disk = PodDisk(self.files_dir, address, pod.obj, self.folder / pod.uid,
                               secret=lambda name: self.emu.find("v1", "Secret", name, pod.namespace))
                disk.prepare_volumes()
                problems = disk.run_containers()
            self.ran.append((pod.name, pod.node, problems))
            self._finish(pod, problems)
        except Exception as exc:  # raised at the lab's close
            self.errors.append(f"{pod.name}: {type(exc).__name__}: {exc}")

    def _finish(self, pod: PodOnNode, problems: list[str]) -> None:
        pod_type = self.emu.registry.by_kind("v1", "Pod")
        assert pod_type is not None
        live: dict[str, Any] | None = self.emu.find("v1", "Pod", pod.name, pod.namespace)
        if live is None:
            return  # deleted meanwhile
        status = live.setdefault("status", {})
        status["phase"] = "Failed" if problems else "Succeeded"
        status["containerStatuses"] = [
            {"name": c.get("name"), "ready": False, "restartCount": 0,
             "state": {"terminated": {"exitCode": 1 if problems else 0,
                                      "reason": "Error" if problems else "Completed"}}}
            for c in (live.get("spec") or {}).get("containers") or []]
        self.emu.store.update(pod_type, pod.namespace, pod.name, live, subresource="status")
