"""pytest fixtures for the namespace lab. Load from tests/conftest.py with
``pytest_plugins = ["netlab.fixtures"]``.

Without root (or without ``ip netns``) the ``netlab`` fixture skips with a reason starting
``needs root:``; with ``LABUP_REQUIRE_ROOT=1`` (CI) it fails instead, so CI can never go green by
silently skipping the network tests.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .certs import CertSet, make_cert_set
from .lab import NAME_PREFIX, NetLab, install_sigterm_cleanup


@functools.cache
def netns_unavailable_reason() -> str | None:
    """Why this machine cannot run the lab (a ``needs root:`` reason), or None if it can."""
    if os.geteuid() != 0:
        return "needs root: network namespaces (run as root, or CI with LABUP_REQUIRE_ROOT=1)"
    if shutil.which("ip") is None:
        return "needs root: the `ip` command (iproute2) is not installed"
    probe = f"{NAME_PREFIX}{os.getpid()}-0-probe"
    add = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if add.returncode != 0:
        return f"needs root: `ip netns add` failed: {add.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def require_netns(reason: str | None = None) -> None:
    """Skip (or, with LABUP_REQUIRE_ROOT=1, fail) the current test if the lab cannot run."""
    reason = reason if reason is not None else netns_unavailable_reason()
    if reason is None:
        return
    if os.environ.get("LABUP_REQUIRE_ROOT") == "1":
        pytest.fail(f"{reason} (LABUP_REQUIRE_ROOT=1: not skipping)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def netlab() -> Iterator[NetLab]:
    """A fresh lab (cp 192.0.2.10, wk 192.0.2.11, cl 192.0.2.100 on one bridge), about 0.1 s to build."""
    require_netns()
    install_sigterm_cleanup()
    with NetLab() as lab:
        yield lab


@pytest.fixture(scope="session")
def netlab_certs(tmp_path_factory: pytest.TempPathFactory) -> CertSet:
    """Test CA + the stand-in server's certificates (good, traefik-default, staging, expiring)."""
    directory: Path = tmp_path_factory.mktemp("netlab-certs")
    return make_cert_set(directory)
