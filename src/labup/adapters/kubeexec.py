"""Kubeconfig exec plugins (`users[].user.exec`: aws, gcloud, oidc-login...), run the way labup runs
every tool: with a deadline, in a process group of their own that is ended with them, never attached
to the terminal, their stderr (which can hold a token) redacted before it is shown.

The kubernetes client's own ExecProvider.run waits forever and hands the plugin the terminal's stderr;
`install()` replaces that one method (the protocol is the client-go exec credential protocol:
KUBERNETES_EXEC_INFO in, an ExecCredential JSON out) and is idempotent.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from typing import Any

from labup.redact import redact

_STATE: dict[str, float] = {"timeout_s": 30.0}
_RUNNING: set[subprocess.Popen[str]] = set()


def install(timeout_s: float) -> None:
    from labup import warmup

    warmup.ready()
    from kubernetes.config import exec_provider

    _STATE["timeout_s"] = max(float(timeout_s), 1.0)
    if getattr(exec_provider.ExecProvider.run, "_labup", False):
        return
    run.__dict__["_labup"] = True
    exec_provider.ExecProvider.run = run


def end_all() -> None:
    """End every plugin still running (the run is ending: a signal, an error)."""
    for proc in list(_RUNNING):
        _kill(proc)


def run(self: Any, previous_response: Any = None) -> Any:
    from kubernetes.config.config_exception import ConfigException

    info: dict[str, Any] = {"apiVersion": self.api_version, "kind": "ExecCredential",
                            "spec": {"interactive": False}}
    if previous_response:
        info["spec"]["response"] = previous_response
    if self.cluster:
        info["spec"]["cluster"] = self.cluster.value
    self.env["KUBERNETES_EXEC_INFO"] = json.dumps(info)
    timeout = _STATE["timeout_s"]
    try:
        proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                cwd=self.cwd, env=self.env, text=True, start_new_session=True)
    except OSError as exc:
        raise ConfigException(f"exec: cannot run {self.args[0]}: {exc.strerror or exc}") from None
    _RUNNING.add(proc)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        raise ConfigException(f"exec: {self.args[0]} gave no credential within {timeout:g}s "
                              "(kubernetes.timeout_s); it was stopped") from None
    except BaseException:
        _kill(proc)
        raise
    finally:
        _RUNNING.discard(proc)
    if proc.returncode != 0:
        said = redact(err.strip())[-500:]
        raise ConfigException(f"exec: {self.args[0]} returned {proc.returncode}" + (f". {said}" if said else ""))
    try:
        data = json.loads(out)
    except ValueError as exc:
        raise ConfigException(f"exec: {self.args[0]} printed something that is not JSON: {exc}") from None
    if not isinstance(data, dict) or any(k not in data for k in ("apiVersion", "kind", "status")):
        raise ConfigException(f"exec: {self.args[0]} printed no ExecCredential")
    if data["apiVersion"] != self.api_version:
        raise ConfigException(f"exec: plugin api version {data['apiVersion']} does not match {self.api_version}")
    return data["status"]


def _kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired, ValueError, OSError):
            proc.communicate(timeout=5)
