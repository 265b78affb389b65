"""The nodes' disks: each node's files live under `<Lab.files_dir>/<node address>/`, so a node's
`/var/mnt/traefik/acme.json` is the host file `<files_dir>/<address>/var/mnt/traefik/acme.json`.

os.path only (no pathlib): every talosctl call is a fresh process and imports add up.
"""

from __future__ import annotations

import os


def node_root(files_dir: str, address: str) -> str:
    return os.path.join(files_dir, address)


def host_path(files_dir: str, address: str, path: str) -> str | None:
    """The host file behind `path` on the node, or None when the path leaves the node's root: a `..`
    above it (machined's cwd is /, so a relative path counts from there), or a symlink pointing out."""
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None  # would climb above the node's /: not a file of this node
            parts.pop()
            continue
        parts.append(part)
    root = os.path.realpath(node_root(files_dir, address))
    target = os.path.join(root, *parts)
    resolved = os.path.realpath(target)  # os.Stat follows symlinks: so does this, but never out of the node
    if resolved != root and not resolved.startswith(root + os.sep):
        return None
    return resolved
