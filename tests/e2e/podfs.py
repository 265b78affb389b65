"""What a pod's containers see of their node's disk: hostPath volumes are folders of the node's disk
in the talosctl simulator (talos_sim.nodefs: `<files_dir>/<node address>/<path>`), so a file Traefik
writes under its hostPath mount is the file `talosctl read` returns.

`run_init_containers` runs the init containers' `sh -c` scripts with the host's real `sh`, every
absolute path in the script rewritten to the host folder of the volume mounted there: a hostPath is
the node's disk, a Secret is its data written out (0644, as the kubelet does; an absent optional
Secret is an empty folder), an emptyDir a scratch folder. A script naming a path under no mount is
not run (it would touch this machine's own files): that is reported as an error. Not modelled:
ownership and users, readOnly mounts, the image's own tools (the host's sh, cp, chmod stand in for
busybox's).
"""

from __future__ import annotations

import base64
import os
import posixpath
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from talos_sim import nodefs

Obj = dict[str, Any]
SecretLookup = Callable[[str], Obj | None]  # a Secret of the pod's namespace by name, or None
# an absolute path in a shell script: starts with / after a separator or quote
_PATH = re.compile(r"""(?<![\w./$-])/[^\s;|&<>()'"`]*""")
_HARMLESS = ("/dev/null",)
_SHELL_SAFE = re.compile(r"[\w./+-]+")


class PodDisk:
    """The node-disk side of one pod: `files_dir` of the simulator, the pod's node address, a scratch
    folder for its other volumes."""

    def __init__(self, files_dir: Path, address: str, pod: Obj, scratch: Path,
                 secret: SecretLookup | None = None) -> None:
        self.files_dir, self.address, self.scratch = files_dir, address, scratch
        self.spec: Obj = pod.get("spec") or {}
        self.secret = secret or (lambda name: None)
        self._volumes: dict[str, Path | None] = {}
        scratch.mkdir(parents=True, exist_ok=True)

    # -- volumes -------------------------------------------------------------------------------

    def prepare_volumes(self) -> None:
        """The kubelet creates a `DirectoryOrCreate` hostPath folder (0755) before any container runs."""
        for volume in self.spec.get("volumes") or []:
            host_path = volume.get("hostPath") or {}
            if host_path.get("path") and host_path.get("type") == "DirectoryOrCreate":
                folder = self.node_path(str(host_path["path"]))
                if folder is not None and not folder.exists():
                    folder.mkdir(parents=True, mode=0o755)

    def node_path(self, path: str) -> Path | None:
        found = nodefs.host_path(str(self.files_dir), self.address, path)
        return Path(found) if found is not None else None

    def volume_dir(self, name: str) -> Path | None:
        """The host folder behind a volume: the node's disk for a hostPath, a scratch folder for an
        emptyDir or a Secret (written out once per pod); None for other kinds."""
        if name in self._volumes:
            return self._volumes[name]
        volume = next((v for v in self.spec.get("volumes") or [] if v.get("name") == name), None) or {}
        found: Path | None = None
        if (volume.get("hostPath") or {}).get("path"):
            found = self.node_path(str(volume["hostPath"]["path"]))
        elif "emptyDir" in volume:
            found = self.scratch / "volumes" / name
            found.mkdir(parents=True, exist_ok=True)
        elif volume.get("secret"):
            found = self._secret_volume(name, volume["secret"])
        self._volumes[name] = found
        return found

    def _secret_volume(self, name: str, source: Obj) -> Path:
        folder = self.scratch / "volumes" / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        secret = self.secret(str(source.get("secretName") or ""))
        if secret is None:
            if not source.get("optional"):  # the kubelet would wait for it: the pod would not start
                raise RuntimeError(f"secret {source.get('secretName')!r} of volume {name} does not exist")
            return folder  # optional and absent: an empty volume
        data = secret.get("data") or {}
        items = source.get("items") or [{"key": k, "path": k} for k in data]
        for item in items:
            if item["key"] not in data:
                continue
            target = folder / str(item["path"])
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(base64.b64decode(data[item["key"]]))
            target.chmod(int(item.get("mode") or source.get("defaultMode") or 0o644))
        return folder

    def host_file(self, container: Obj, path: str) -> Path | None:
        """The host file behind `path` in `container`, through its deepest volume mount holding the
        path. None: no mount holds it (the container's own filesystem), a volume kind not modelled, or
        a `..` leaving the volume."""
        mounts = [m for m in container.get("volumeMounts") or [] if _under(path, str(m.get("mountPath") or ""))]
        if not mounts:
            return None
        mount = max(mounts, key=lambda m: len(str(m["mountPath"]).rstrip("/")))
        if ".." in path.split("/"):
            return None  # not followed: it could leave the volume
        rest = posixpath.normpath("/" + path[len(str(mount["mountPath"]).rstrip("/")):]).lstrip("/")
        name = str(mount.get("name"))
        volume = next((v for v in self.spec.get("volumes") or [] if v.get("name") == name), None) or {}
        host_path = (volume.get("hostPath") or {}).get("path")
        if host_path:
            return self.node_path(f"{str(host_path).rstrip('/')}/{rest}")  # stays on the node's disk
        folder = self.volume_dir(name)
        return folder.joinpath(*rest.split("/")) if folder is not None and rest else folder

    def container(self, name: str) -> Obj | None:
        return next((c for c in self.spec.get("containers") or [] if c.get("name") == name), None)

    # -- init containers -----------------------------------------------------------------------

    def run_init_containers(self) -> list[str]:
        """Run each init container's `sh -c` script in order; what went wrong, one line each (the pod
        would not start: Init:Error)."""
        return self.run_scripts(self.spec.get("initContainers") or [], "init container")

    def run_containers(self) -> list[str]:
        """A one-shot pod (restartPolicy Never): its containers' scripts, in order."""
        return self.run_scripts(self.spec.get("containers") or [], "container")

    def run_scripts(self, containers: list[Obj], what: str) -> list[str]:
        problems = []
        for container in containers:
            argv = [str(a) for a in [*(container.get("command") or []), *(container.get("args") or [])]]
            if len(argv) < 3 or os.path.basename(argv[0]) not in ("sh", "ash", "bash") or argv[1] != "-c":
                continue  # not a shell script: nothing this lab can play
            script, unmapped = self.rewrite(container, argv[2])
            name = container.get("name")
            if unmapped:
                problems.append(f"{what} {name}: not run, paths under no volume mount: {unmapped}")
                break
            proc = subprocess.run(["sh", "-c", "umask 022\n" + script], cwd=self.scratch, capture_output=True,
                                  text=True, timeout=10, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                                  check=False)
            if proc.returncode != 0:
                problems.append(f"{what} {name} exited {proc.returncode}: {proc.stderr.strip()}")
                break
        return problems

    def rewrite(self, container: Obj, script: str) -> tuple[str, list[str]]:
        """The script with each absolute path replaced by its host file, and the paths no mount holds."""
        unmapped: list[str] = []

        def host(match: re.Match[str]) -> str:
            path = match.group(0)
            if path in _HARMLESS:
                return path
            found = self.host_file(container, path)
            if found is None or not _SHELL_SAFE.fullmatch(str(found)):  # substituted unquoted
                unmapped.append(path)
                return path
            return str(found) + ("/" if path.endswith("/") else "")

        return _PATH.sub(host, script), unmapped


def _under(path: str, mount: str) -> bool:
    mount = mount.rstrip("/")
    return bool(mount) and (path == mount or path.startswith(mount + "/"))
