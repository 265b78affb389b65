"""Read and rewrite helm's release Secrets (`sh.helm.release.v1.NAME.vREV`) in the emulator's store.

Helm stores base64(gzip(release JSON)) as the Secret's `release` key; the Secret's JSON form
base64-encodes those bytes once more. Labels name/owner/status/version mirror the release.
"""

from __future__ import annotations

import base64
import gzip
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import KubeEmulator

Obj = dict[str, Any]


def decode_release(secret: Obj) -> Obj:
    inner = base64.b64decode(secret["data"]["release"])
    payload = base64.b64decode(inner)
    if payload[:2] == b"\x1f\x8b":
        payload = gzip.decompress(payload)
    return json.loads(payload)


def encode_release(release: Obj) -> str:
    inner = base64.b64encode(gzip.compress(json.dumps(release).encode()))
    return base64.b64encode(inner).decode()


def release_secrets(emu: KubeEmulator, namespace: str, name: str) -> list[Obj]:
    """The release's Secrets, oldest revision first."""
    secrets = [s for s in emu.list("v1", "Secret", namespace)
               if (s["metadata"].get("labels") or {}).get("owner") == "helm"
               and s["metadata"]["labels"].get("name") == name]
    return sorted(secrets, key=lambda s: int(s["metadata"]["labels"]["version"]))


def set_latest_status(emu: KubeEmulator, namespace: str, name: str, status: str = "pending-upgrade") -> Obj:
    """Leave the newest revision in `status`, as an interrupted helm would. Returns the release."""
    secret = release_secrets(emu, namespace, name)[-1]
    release = decode_release(secret)
    release["info"]["status"] = status
    secret["data"]["release"] = encode_release(release)
    secret["metadata"]["labels"]["status"] = status
    emu.update("v1", "Secret", secret)
    return release


def set_status(emu: KubeEmulator, namespace: str, name: str, revision: int, status: str) -> Obj:
    """Give revision `revision` the status `status` (release JSON and the Secret's label). Returns it."""
    secret = next(s for s in release_secrets(emu, namespace, name)
                  if int(s["metadata"]["labels"]["version"]) == revision)
    release = decode_release(secret)
    release["info"]["status"] = status
    secret["data"]["release"] = encode_release(release)
    secret["metadata"]["labels"]["status"] = status
    emu.update("v1", "Secret", secret)
    return release
