"""Helm, through the helm CLI: the only code in labup that runs helm (explicit argv, never a shell).

Every call that reaches the cluster gets `--kubeconfig` / `--kube-context` from lab.yaml's
kubernetes section (none given: helm's own defaults, $KUBECONFIG then ~/.kube/config, as labup's
Kubernetes adapter reads them). The rest of the environment is passed through as it is, so the
user's HELM_* settings (cache, config, registry config, proxies) apply to labup's helm too.

Helm 4 and Helm 3 differ in the flags of an upgrade's native rollback (FACTS.md §4): Helm 4 has
`--rollback-on-failure --wait=watcher`, Helm 3 `--atomic --wait`. The major version is read from
the binary (`HelmBinary.version`), never assumed.

Errors are sorted by helm's own text (`classify`, pure and unit-tested):
- helm rolled back / uninstalled after a failed upgrade / install -> HelmRolledBack (it says which)
- `another operation (install/upgrade/rollback) is in progress` -> HelmReleaseBusy
- `release: not found` -> HelmNotFound (callers asking "is there a release?" get None / [])
- the API server unreachable, overloaded or slow -> HelmUnavailable (a TransientError: retried);
  a write retries only on errors that prove nothing was sent (a refused connection), never on a
  timed-out wait, which a retry would turn into a second upgrade
- anything else -> HelmFailed, with helm's own message.

Values go to helm in a file, never on the command line (`ps` shows argv): a 0600 file in a 0700
folder of its own, removed when the call ends, whatever happens.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labup.adapters.process import ToolTimeout, run_tool
from labup.errors import PermanentError, TransientError
from labup.redact import redact

if TYPE_CHECKING:
    from labup.config import Lab
    from labup.engine.context import Context

BUSY = "another operation (install/upgrade/rollback) is in progress"
PENDING = ("pending-install", "pending-upgrade", "pending-rollback")
READ_TIMEOUT_FLOOR_S = 30.0
# Beyond helm's own --timeout: startup, the release bookkeeping, and the native rollback, which
# waits again (as long as the upgrade did) for the previous revision to be ready.
WRITE_MARGIN_S = 60.0

# The API server did not answer, or said "later": worth another attempt.
_UNREACHABLE = ("connection refused", "connection reset by peer", "no route to host", "network is unreachable",
                "the server is currently unable to handle the request", "TLS handshake timeout",
                "Service Unavailable", "Too Many Requests", "http2: client connection lost",
                "server closed idle connection", ": EOF")
# Slow answers: transient for a read. For a write they may mean "half done": never retried blindly.
_SLOW = ("i/o timeout", "context deadline exceeded", "Client.Timeout exceeded", "net/http: request canceled",
         "timed out waiting for the condition")
_ROLLED_BACK = re.compile(r"has been (rolled back|uninstalled) due to (atomic|rollback-on-failure) being set")
_CHART_VERSION = re.compile(r"^(?P<name>.+?)-(?P<version>v?\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.+-]*)?)$")


# -- errors ---------------------------------------------------------------------------------------


class HelmFailed(PermanentError):
    """helm said no; `detail` is its own (redacted) text."""

    def __init__(self, message: str, detail: str, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.detail = detail


class HelmNotFound(HelmFailed):
    """The release does not exist (`Error: release: not found`)."""


class HelmReleaseBusy(HelmFailed):
    """The release's last operation never finished (pending-*): helm refuses every other one."""


class HelmRolledBack(HelmFailed):
    """An install or upgrade failed and helm undid it itself: `action` is `rolled back` (an upgrade:
    the previous revision is live again) or `uninstalled` (a first install: nothing is left)."""

    def __init__(self, message: str, detail: str, action: str, hint: str | None = None) -> None:
        super().__init__(message, detail, hint)
        self.action = action


class HelmUnavailable(TransientError):
    """The Kubernetes API did not answer helm (or answered 5xx/429): retried by the engine."""


def helm_error_text(stderr: str) -> str:
    """helm's message without its log noise, on as few lines as it takes (redacted)."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    errors = [i for i, ln in enumerate(lines) if ln.startswith("Error:")]
    # From the first `Error:` on (helm 4 continues its message on the next lines); else all of it.
    kept = lines[errors[0]:] if errors else lines
    text = " ".join(kept)
    return redact(text[len("Error: "):] if text.startswith("Error: ") else text)


def classify(what: str, stderr: str, exit_code: int, *, write: bool) -> Exception:
    """The labup error for a failed helm call (pure: unit-tested against real helm texts)."""
    detail = helm_error_text(stderr) or f"helm exited {exit_code} without a message"
    message = f"helm {what}: {detail}"
    rolled = _ROLLED_BACK.search(detail)
    if rolled:
        return HelmRolledBack(message, detail, rolled.group(1))
    if BUSY in detail:
        return HelmReleaseBusy(message, detail)
    if "release: not found" in detail:
        return HelmNotFound(message, detail)
    unreachable = any(marker in detail for marker in _UNREACHABLE)
    slow = any(marker in detail for marker in _SLOW)
    if unreachable and not (write and slow):
        return HelmUnavailable(message, hint="is the cluster up, and kubernetes.kubeconfig's server reachable?")
    if slow and not write:
        return HelmUnavailable(message, hint="the Kubernetes API answered too slowly; retried")
    return HelmFailed(message, detail, hint=_hint_for(detail))


def _hint_for(detail: str) -> str | None:
    if re.search(r'namespaces "[^"]+" not found', detail):
        return "the release's namespace does not exist: run `labup phase namespace` first"
    if "violates PodSecurity" in detail:
        return "label the namespace: `labup phase namespace`"
    if "values don't meet the specifications of the schema" in detail:
        return "the chart's own values.schema.json refused labup's values: `labup render traefik` shows them"
    if "no configuration has been provided" in detail or "invalid configuration" in detail:
        return "set kubernetes.kubeconfig in lab.yaml (or $KUBECONFIG)"
    if "Unauthorized" in detail or "forbidden" in detail:
        return "the kubeconfig's user was refused: check kubernetes.kubeconfig and kubernetes.context"
    return None


# -- what helm reports ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Revision:
    """One line of `helm history -o json`."""

    revision: int
    status: str  # deployed, superseded, failed, pending-upgrade, uninstalled, ...
    chart: str  # "traefik-41.3.0"
    app_version: str
    description: str
    updated: str

    @property
    def chart_name(self) -> str:
        match = _CHART_VERSION.match(self.chart)
        return match.group("name") if match else self.chart

    @property
    def chart_version(self) -> str:
        match = _CHART_VERSION.match(self.chart)
        return match.group("version").lstrip("v") if match else ""

    @property
    def pending(self) -> bool:
        return self.status in PENDING

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> Revision:
        return cls(revision=int(item.get("revision") or 0), status=str(item.get("status") or ""),
                   chart=str(item.get("chart") or ""), app_version=str(item.get("app_version") or ""),
                   description=str(item.get("description") or ""), updated=str(item.get("updated") or ""))


def last_deployed(history: Sequence[Revision], before: int | None = None) -> Revision | None:
    """The newest revision that was live at some point (deployed or superseded), below `before`."""
    good = [r for r in history if r.status in ("deployed", "superseded")
            and (before is None or r.revision < before)]
    return max(good, key=lambda r: r.revision) if good else None


@dataclass(frozen=True)
class ChartRef:
    """Where the chart comes from: a repo (`name/chart` + repo_url), an `oci://` reference, or a
    local folder or archive."""

    kind: str  # "repo" | "oci" | "path"
    ref: str  # what helm is given
    repo_name: str | None = None
    repo_url: str | None = None

    @classmethod
    def of(cls, lab: Lab) -> ChartRef:
        chart = lab.traefik.chart
        if chart.startswith("oci://"):
            return cls("oci", chart)
        if chart.startswith((".", "/", "~")):
            path = Path(chart).expanduser()
            if not path.is_absolute():
                path = lab.source.parent / path  # relative to lab.yaml, like every path in it
            return cls("path", str(path))
        return cls("repo", chart, repo_name=chart.split("/", 1)[0], repo_url=lab.traefik.repo_url)

    @property
    def at_hand(self) -> bool:
        """True when helm can render it with no network (a local chart)."""
        return self.kind == "path"


# -- the adapter ----------------------------------------------------------------------------------


class HelmAdapter:
    """helm for one lab; one per run (`ctx.adapter("helm", HelmAdapter.from_context)`)."""

    def __init__(self, binary: Path, version: str, kubeconfig: Path | None = None,
                 context: str | None = None, timeout_s: float = READ_TIMEOUT_FLOOR_S) -> None:
        self.binary = binary
        self.version = version.lstrip("v")
        self.kubeconfig = kubeconfig
        self.context = context
        self.timeout_s = max(timeout_s, READ_TIMEOUT_FLOOR_S)

    @classmethod
    def from_context(cls, ctx: Context) -> HelmAdapter:
        """The helm the helm phase found or installed (Unreadable when there is none)."""
        from labup.phases.helm import require_helm

        found = require_helm(ctx)
        kube = ctx.lab.kubernetes
        return cls(found.path, found.version, kube.kubeconfig, kube.context, timeout_s=2 * kube.timeout_s)

    @property
    def major(self) -> int:
        head = self.version.split(".", 1)[0]
        return int(head) if head.isdigit() else 0

    def cluster_args(self) -> list[str]:
        args: list[str] = []
        if self.kubeconfig is not None:
            args += ["--kubeconfig", str(self.kubeconfig)]
        if self.context:
            args += ["--kube-context", self.context]
        return args

    def safety_args(self) -> list[str]:
        """The native rollback of the installed major: a failed upgrade goes back to the previous
        revision, a failed first install is uninstalled, both after a bounded wait."""
        if self.major >= 4:
            return ["--rollback-on-failure", "--wait=watcher"]
        return ["--atomic", "--wait"]

    def wait_args(self) -> list[str]:
        return ["--wait=watcher"] if self.major >= 4 else ["--wait"]

    def command(self, *args: str) -> str:
        """A helm command line for the user to run (hints), with this lab's cluster flags."""
        return " ".join(["helm", *args, *self.cluster_args()])

    # -- reads ------------------------------------------------------------------------------------

    def history(self, release: str, namespace: str) -> list[Revision]:
        """Every revision, oldest first; [] when there is no such release."""
        try:
            out = self._run(["history", release, "-n", namespace, "-o", "json", *self.cluster_args()],
                            "history")
        except HelmNotFound:
            return []
        items = _json(out, "history")
        if not isinstance(items, list):
            raise HelmFailed("helm history: not the JSON list labup expects", detail=out[:200])
        return sorted((Revision.from_json(i) for i in items if isinstance(i, dict)), key=lambda r: r.revision)

    def status(self, release: str, namespace: str) -> dict[str, Any] | None:
        """`helm status -o json` (the release, its manifest included), or None when there is none."""
        try:
            out = self._run(["status", release, "-n", namespace, "-o", "json", *self.cluster_args()], "status")
        except HelmNotFound:
            return None
        doc = _json(out, "status")
        return doc if isinstance(doc, dict) else None

    def get_values(self, release: str, namespace: str, revision: int | None = None) -> dict[str, Any]:
        """The values the release was given (`get values`, without `--all`): what labup passed, so
        the very thing to compare with what labup would pass now. The chart's defaults (`--all`)
        would differ from labup's values by the whole of the chart's values.yaml."""
        args = ["get", "values", release, "-n", namespace, "-o", "json"]
        if revision is not None:
            args += ["--revision", str(revision)]
        doc = _json(self._run([*args, *self.cluster_args()], "get values"), "get values")
        return doc if isinstance(doc, dict) else {}  # `null` when the release was given no values

    def get_manifest(self, release: str, namespace: str, revision: int | None = None) -> str:
        args = ["get", "manifest", release, "-n", namespace]
        if revision is not None:
            args += ["--revision", str(revision)]
        return self._run([*args, *self.cluster_args()], "get manifest")

    def template(self, release: str, chart: ChartRef, namespace: str, version: str,
                 values: dict[str, Any]) -> str:
        """`helm template`: the manifest, rendered offline (for a local chart); the chart's schema
        and its `fail` guards run, as they would on install."""
        with values_file(values) as path:
            return self._run(["template", release, chart.ref, "-n", namespace, *self._version_args(chart, version),
                              "-f", str(path)], "template")

    # -- writes -----------------------------------------------------------------------------------

    def repo_add(self, name: str, url: str) -> None:
        """`repo add --force-update`: the repo's index, fetched again (a changed URL replaces the old)."""
        self._run(["repo", "add", "--force-update", name, url], "repo add", write=True)

    def upgrade_install(self, release: str, chart: ChartRef, namespace: str, version: str,
                        values: dict[str, Any], wait_timeout_s: float, description: str) -> None:
        """Install or upgrade to exactly these values (`--reset-values`: nothing carried over from
        earlier revisions), with the native rollback and a bounded wait. No `--create-namespace`:
        the namespace phase owns the namespace and its Pod Security labels."""
        timeout = _duration(wait_timeout_s)
        with values_file(values) as path:
            self._run(["upgrade", "--install", release, chart.ref, "-n", namespace,
                       *self._version_args(chart, version), "-f", str(path), "--reset-values",
                       *self.safety_args(), "--timeout", timeout, "--description", description,
                       *self.cluster_args()],
                      "upgrade --install", write=True, timeout=2 * wait_timeout_s + WRITE_MARGIN_S)

    def rollback(self, release: str, namespace: str, revision: int, wait_timeout_s: float) -> None:
        self._run(["rollback", release, str(revision), "-n", namespace, *self.wait_args(),
                   "--timeout", _duration(wait_timeout_s), *self.cluster_args()],
                  "rollback", write=True, timeout=wait_timeout_s + WRITE_MARGIN_S)

    def uninstall(self, release: str, namespace: str, wait_timeout_s: float) -> bool:
        """Uninstall (waiting for its resources to go); False when the release was already gone."""
        try:
            self._run(["uninstall", release, "-n", namespace, "--wait", "--timeout", _duration(wait_timeout_s),
                       *self.cluster_args()], "uninstall", write=True, timeout=wait_timeout_s + WRITE_MARGIN_S)
        except HelmNotFound:
            return False
        return True

    # -- plumbing ---------------------------------------------------------------------------------

    def _version_args(self, chart: ChartRef, version: str) -> list[str]:
        # helm ignores --version for a local chart (it installs whatever the folder holds): labup
        # checks the folder's Chart.yaml itself, and passes the pin for repo and OCI charts only.
        return [] if chart.kind == "path" else ["--version", version]

    def _run(self, args: list[str], what: str, *, write: bool = False, timeout: float | None = None) -> str:
        limit = timeout or self.timeout_s
        try:
            result = run_tool(self.binary, args, timeout=limit, check=False)
        except ToolTimeout:
            if write:
                # helm was killed mid-operation: the release may be left pending-*; a blind retry
                # would only meet "another operation is in progress". Say so instead.
                raise HelmFailed(f"helm {what}: no answer within {limit:g}s; helm was stopped",
                                 detail="timeout",
                                 hint="the release may be left pending: `helm history` shows it, and "
                                      "labup's next run says how to unstick it") from None
            raise HelmUnavailable(f"helm {what}: no answer within {limit:g}s") from None
        if result.exit_code == 0:
            return result.stdout
        raise classify(what, result.stderr, result.exit_code, write=write)


@contextmanager
def values_file(values: dict[str, Any]) -> Iterator[Path]:
    """The values in a fresh 0700 folder, file 0600; both removed afterwards.

    Written as JSON (which is YAML): helm reads values with YAML 1.1 rules, where an unquoted key
    `y` or `on` is a boolean; JSON quotes every key and string, so helm reads exactly these values."""
    folder = tempfile.mkdtemp(prefix="labup-helm-values-")
    try:
        path = Path(folder) / "values.yaml"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(values, fh, indent=1, ensure_ascii=False)
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _duration(seconds: float) -> str:
    return f"{max(1, math.ceil(seconds))}s"


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text or "null")
    except ValueError:
        raise HelmFailed(f"helm {what}: printed something that is not JSON", detail=text[:200]) from None
