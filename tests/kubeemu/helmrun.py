"""Finding and running the real helm binaries that tools/fetch_helm.py installs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HELM_DIR = REPO / ".tools" / "helm"
HELM_VERSIONS = ("4.1.4", "3.17.3")


def helm_binary(version: str) -> Path:
    """`.tools/helm/<version>/helm`, or skip the test saying how to get it."""
    path = HELM_DIR / version / "helm"
    if not os.access(path, os.X_OK):
        import pytest  # only a test skips; the demo and the bench check before they get here

        pytest.skip(f"helm {version} not installed at {path}: run `python tools/fetch_helm.py .tools/helm`")
    return path


def run_helm(helm: Path, args: list[str], env: dict[str, str], timeout: float = 60
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm), *args], env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)
