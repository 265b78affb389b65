"""Kubeconfig files that the Python client and helm both accept (plain http, bearer token)."""

from __future__ import annotations

import os
from pathlib import Path

import yaml


def write_kubeconfig(path: str | os.PathLike[str], server: str, *, context: str = "emu",
                     token: str | None = None, namespace: str = "default") -> Path:
    user: dict[str, str] = {"token": token} if token else {}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": {"server": server}}],
        "users": [{"name": context, "user": user}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context,
                                                    "namespace": namespace}}],
        "current-context": context,
        "preferences": {},
    }
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(config, sort_keys=False))
    out.chmod(0o600)  # helm warns about group/world-readable kubeconfigs
    return out
