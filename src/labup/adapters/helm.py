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
- `"REL" has no deployed releases` (an upgrade of a release whose last revision is `uninstalling`)
  -> HelmStuck, with the `helm uninstall` that mends it
- a server-side apply conflict (Helm 4) -> HelmConflict, naming the field manager that owns the field
- the API server unreachable, overloaded or slow -> HelmUnavailable (a TransientError: retried).
  A write is retried at once only when helm's error proves nothing was sent (`Kubernetes cluster
  unreachable`: helm's reachability check, before any write). Any other such error on a write
  (`: EOF`, a reset, a 503) may come after helm stored the new revision: HelmUncertain, and the
  adapter reads the release history to decide (new revision deployed: done; pending or failed:
  that failure; unchanged: nothing was written, so retried)
- anything else -> HelmFailed, with helm's own message.

Time limits never cut helm's own clean-up short: a write's process timeout covers helm's worst case
(Helm's CRD wait, the wait, and the native rollback's wait), and an interrupted helm gets SIGINT and
the time its rollback may take before it is killed; killed, labup says what state the release is
left in and the command that mends it.

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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labup.adapters.process import ToolKilled, ToolTimeout, run_tool
from labup.errors import LabupError, PermanentError, TransientError
from labup.redact import redact

if TYPE_CHECKING:
    from labup.config import Lab
    from labup.engine.context import Context

BUSY = "another operation (install/upgrade/rollback) is in progress"
NO_DEPLOYED = "has no deployed releases"  # pkg/storage/driver/driver.go ErrNoDeployedReleases
PENDING = ("pending-install", "pending-upgrade", "pending-rollback")
READ_TIMEOUT_FLOOR_S = 30.0
# helm's own CRD wait on a first install (pkg/action/install.go installCRDs: `Wait(..., 60*time.Second)`)
CRD_WAIT_S = 60.0
# Beyond helm's waits: startup, chart loading, the release bookkeeping.
WRITE_MARGIN_S = 30.0
# An interrupted helm's clean-up (the native rollback, waiting up to --timeout) gets this beyond --timeout.
KILL_MARGIN_S = 10.0

# helm's reachability check (pkg/kube/client.go IsReachable) runs before any write: nothing was sent.
_NOT_SENT = ("cluster unreachable",)
# The API server did not answer, or said "later": worth another attempt for a read.
_UNREACHABLE = ("connection refused", "connection reset by peer", "no route to host", "network is unreachable",
                "the server is currently unable to handle the request", "TLS handshake timeout",
                "Service Unavailable", "Too Many Requests", "http2: client connection lost",
                "server closed idle connection", ": EOF")
# Slow answers: transient for a read. For a write they may mean "half done": never retried blindly.
_SLOW = ("i/o timeout", "context deadline exceeded", "Client.Timeout exceeded", "net/http: request canceled",
         "timed out waiting for the condition")
_ROLLED_BACK = re.compile(r"has been (rolled back|uninstalled) due to (atomic|rollback-on-failure) being set")
_NO_DEPLOYED = re.compile(r'"(?P<release>[^"]+)" has no deployed releases')
# apimachinery pkg/util/managedfields/internal/conflict.go getConflictMessage/printManager, one conflict
# (`conflict with "kubectl-scale" using apps/v1: .spec.replicas`) or several, grouped by manager
# (`conflicts with "kubectl-edit" using apps/v1: - .spec.replicas - ...`, lines joined by helm_error_text)
_CONFLICT_ONE = re.compile(r'conflict with "(?P<manager>[^"]+)"[^"]*?: (?P<field>\.[^\s:]+)')
_CONFLICT_MANY = re.compile(r'conflicts with "(?P<manager>[^"]+)"[^"]*?:(?P<fields>(?: - \.[^\s]+)+)')
# Helm 4 pkg/kube/client.go patchResourceServerSide: `conflict occurred while applying object %s/%s %s: %w`
_CONFLICT_OBJECT = re.compile(r"applying object (?P<ns>[^/\s]+)/(?P<name>\S+) \S+, Kind=(?P<kind>\w+)")
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


class HelmStuck(HelmFailed):
    """helm refused to upgrade: the release has no deployed revision and its last one is neither
    failed nor superseded (an interrupted uninstall leaves it `uninstalling`)."""


class HelmConflict(HelmFailed):
    """Helm 4's server-side apply met fields another field manager owns; `managers` is
    [(manager, field path)]."""

    def __init__(self, message: str, detail: str, managers: list[tuple[str, str]], hint: str | None = None) -> None:
        super().__init__(message, detail, hint)
        self.managers = managers


class HelmUncertain(HelmFailed):
    """A write failed talking to the API server at a point where helm may already have stored the
    new revision: only the release history can tell (the adapter reads it; never retried blindly)."""


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


def classify(what: str, stderr: str, exit_code: int, *, write: bool, namespace: str | None = None) -> Exception:
    """The labup error for a failed helm call (pure: unit-tested against real helm texts).
    `namespace`: the release's, for the hints' commands."""
    detail = helm_error_text(stderr) or f"helm exited {exit_code} without a message"
    message = f"helm {what}: {detail}"
    conflicts = conflict_managers(detail)
    rolled = _ROLLED_BACK.search(detail)
    if rolled:
        return HelmRolledBack(message, detail, rolled.group(1), hint=_conflict_hint(conflicts))
    if conflicts:
        return HelmConflict(f"helm {what}: {_conflict_text(detail, conflicts)} (server-side apply conflict): {detail}",
                            detail, conflicts, hint=_conflict_hint(conflicts))
    if BUSY in detail:
        return HelmReleaseBusy(message, detail)
    stuck = _NO_DEPLOYED.search(detail)
    if stuck:
        return HelmStuck(message, detail, hint=_no_deployed_hint(stuck.group("release"), namespace))
    if "release: not found" in detail:
        return HelmNotFound(message, detail)
    if any(marker.lower() in detail.lower() for marker in _NOT_SENT):
        return HelmUnavailable(message, hint="is the cluster up, and kubernetes.kubeconfig's server reachable?")
    unreachable = any(marker in detail for marker in _UNREACHABLE)
    slow = any(marker in detail for marker in _SLOW)
    if write and unreachable and not slow:
        return HelmUncertain(message, detail, hint=_hint_for(detail))
    if unreachable and not write:
        return HelmUnavailable(message, hint="is the cluster up, and kubernetes.kubeconfig's server reachable?")
    if slow and not write:  # a write's timed-out wait: a retry would be a second upgrade
        return HelmUnavailable(message, hint="the Kubernetes API answered too slowly; retried")
    return HelmFailed(message, detail, hint=_hint_for(detail))


def conflict_managers(detail: str) -> list[tuple[str, str]]:
    """[(field manager, field path)] of a server-side apply conflict in helm's text, each once."""
    found = [(m.group("manager"), m.group("field")) for m in _CONFLICT_ONE.finditer(detail)]
    for many in _CONFLICT_MANY.finditer(detail):
        found += [(many.group("manager"), f) for f in many.group("fields").split(" - ") if f.strip()]
    return list(dict.fromkeys((manager, field.strip()) for manager, field in found))


def _conflict_text(detail: str, conflicts: list[tuple[str, str]]) -> str:
    target = _CONFLICT_OBJECT.search(detail)
    where = f" of {target.group('kind')} {target.group('ns')}/{target.group('name')}" if target else ""
    return "; ".join(f'field manager "{manager}" owns {field}{where}' for manager, field in conflicts)


def _conflict_hint(conflicts: list[tuple[str, str]]) -> str | None:
    if not conflicts:
        return None
    managers = ", ".join(sorted({f'"{m}"' for m, _ in conflicts}))
    return (f"someone changed these fields outside helm ({managers}, e.g. `kubectl scale` or `kubectl edit`): "
            "set traefik.force_conflicts: true in lab.yaml to let helm take them back (Helm 4 "
            "`--force-conflicts`), or undo that change")


def _no_deployed_hint(release: str, namespace: str | None) -> str:
    ns = f" -n {namespace}" if namespace else ""
    return (f"the release has no deployed revision; if its last one is `uninstalling` (an interrupted "
            f"`helm uninstall`) and no helm runs on it now: `helm uninstall {release}{ns}`, then run labup again")


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

    @property
    def stuck(self) -> bool:
        """An operation that never finished: pending-* or an interrupted uninstall (`uninstalling`)."""
        return self.pending or self.status == "uninstalling"

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> Revision:
        return cls(revision=int(item.get("revision") or 0), status=str(item.get("status") or ""),
                   chart=str(item.get("chart") or ""), app_version=str(item.get("app_version") or ""),
                   description=str(item.get("description") or ""), updated=str(item.get("updated") or ""))


def last_deployed(history: Sequence[Revision], before: int | None = None) -> Revision | None:
    """The revision that is live (below `before`): the newest `deployed` one, as Helm's own
    Releases.Deployed (pkg/storage/storage.go) picks it; only when none is deployed, the newest
    `superseded`. A superseded revision need never have run: a failed upgrade whose rollback failed
    is marked superseded too (pkg/action/rollback.go performRollback)."""
    below = [r for r in history if before is None or r.revision < before]
    for status in ("deployed", "superseded"):
        good = [r for r in below if r.status == status]
        if good:
            return max(good, key=lambda r: r.revision)
    return None


def no_release(history: Sequence[Revision]) -> bool:
    """No release to speak of: no revision, or the last one uninstalled (`uninstall --keep-history`)."""
    return not history or history[-1].status == "uninstalled"


def mend_args(history: Sequence[Revision], release: str, namespace: str) -> list[str] | None:
    """The helm arguments that unstick a release whose last operation never finished: roll back to
    the revision live before it, or uninstall when there is none (a first install, an uninstall)."""
    if not history or not history[-1].stuck:
        return None
    latest = history[-1]
    good = None if latest.status == "uninstalling" else last_deployed(history, before=latest.revision)
    if good is not None:
        return ["rollback", release, str(good.revision), "-n", namespace]
    return ["uninstall", release, "-n", namespace]


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
        """Traefik's chart (traefik.chart, traefik.repo_url)."""
        return cls.parse(lab.traefik.chart, lab.traefik.repo_url, lab.source.parent)

    @classmethod
    def parse(cls, chart: str, repo_url: str, base_dir: Path) -> ChartRef:
        if chart.startswith("oci://"):
            return cls("oci", chart)
        if chart.startswith((".", "/", "~")):
            path = Path(chart).expanduser()
            if not path.is_absolute():
                path = base_dir / path  # relative to lab.yaml, like every path in it
            return cls("path", str(path))
        return cls("repo", chart, repo_name=chart.split("/", 1)[0], repo_url=repo_url)

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
        # called with (release, namespace) after every write attempt, whatever its outcome: what was
        # read of that release before is stale now (labup.facts drops its snapshots)
        self.after_write: list[Callable[[str, str], None]] = []

    @classmethod
    def from_context(cls, ctx: Context) -> HelmAdapter:
        """The helm the helm phase found or installed (Unreadable when there is none)."""
        from labup.adapters.helmbin import require_helm

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
        # local files and a download, no cluster write: safe to retry like a read
        self._run(["repo", "add", "--force-update", name, url], "repo add")

    def conflict_args(self, force_conflicts: bool) -> list[str]:
        """Helm 4 applies server-side: `--force-conflicts` takes fields other managers own. Helm 3
        applies client-side and has no such flag (cmd/helm/upgrade.go @ v3.17.x): never passed."""
        return ["--force-conflicts"] if force_conflicts and self.major >= 4 else []

    def upgrade_install(self, release: str, chart: ChartRef, namespace: str, version: str,
                        values: dict[str, Any], wait_timeout_s: float, description: str,
                        force_conflicts: bool = False, create_namespace: bool = False) -> None:
        """Install or upgrade to exactly these values (`--reset-values`: nothing carried over from
        earlier revisions), with the native rollback and a bounded wait. Traefik's: no
        `--create-namespace` (the namespace phase owns it and its Pod Security labels); cert-manager's
        namespace needs no label, and helm creates it."""
        with values_file(values) as path:
            self._write(["upgrade", "--install", release, chart.ref, "-n", namespace,
                         *(["--create-namespace"] if create_namespace else []),
                         *self._version_args(chart, version), "-f", str(path), "--reset-values",
                         *self.safety_args(), *self.conflict_args(force_conflicts),
                         "--timeout", _duration(wait_timeout_s), "--description", description,
                         *self.cluster_args()],
                        "upgrade --install", release, namespace, wait_timeout_s, upgrade_limit(wait_timeout_s))

    def rollback(self, release: str, namespace: str, revision: int, wait_timeout_s: float) -> None:
        self._write(["rollback", release, str(revision), "-n", namespace, *self.wait_args(),
                     "--timeout", _duration(wait_timeout_s), *self.cluster_args()],
                    "rollback", release, namespace, wait_timeout_s, wait_timeout_s + WRITE_MARGIN_S)

    def uninstall(self, release: str, namespace: str, wait_timeout_s: float) -> bool:
        """Uninstall (waiting for its resources to go); False when the release was already gone."""
        try:
            self._write(["uninstall", release, "-n", namespace, "--wait", "--timeout", _duration(wait_timeout_s),
                         *self.cluster_args()], "uninstall", release, namespace, wait_timeout_s,
                        wait_timeout_s + WRITE_MARGIN_S)
        except HelmNotFound:
            return False
        return True

    # -- writes whose outcome helm could not report -------------------------------------------------

    def _write(self, args: list[str], what: str, release: str, namespace: str, wait_timeout_s: float,
               limit: float) -> None:
        """A write to the release, decided by the release history when helm's answer is unclear."""
        before = self._latest(release, namespace)  # a transient failure here: nothing written yet
        try:
            try:
                self._run(args, what, write=True, timeout=limit, grace=wait_timeout_s + KILL_MARGIN_S)
            except HelmUncertain as exc:
                self._settle(exc, what, release, namespace, before)
            except ToolTimeout:
                state, hint = self.left_behind(release, namespace)
                raise HelmFailed(f"helm {what}: no answer within {limit:g}s, and helm was killed: {state}",
                                 detail="timeout", hint=hint) from None
            except ToolKilled as exc:  # labup was interrupted and helm outlived the time its clean-up may take
                state, hint = self.left_behind(release, namespace)
                exc.message = (f"interrupted by {exc.signame}; helm {what} did not stop within {exc.grace_s:g}s "
                               f"and helm was killed: {state}")
                exc.hint = hint
                raise
        finally:
            for listener in self.after_write:
                listener(release, namespace)

    def _latest(self, release: str, namespace: str) -> Revision | None:
        history = self.history(release, namespace)
        return history[-1] if history else None

    def _settle(self, exc: HelmUncertain, what: str, release: str, namespace: str, before: Revision | None) -> None:
        """helm's write met a broken connection after it may have stored the new revision: the
        release history says what happened. Returns when the write took effect."""
        try:
            history = self.history(release, namespace)
        except LabupError as err:
            raise HelmFailed(f"{exc.message}; the release could not be read afterwards ({err.message})", exc.detail,
                             hint=f"whether helm's {what} took effect is not known: "
                                  f"`{self.command('history', release, '-n', namespace)}` shows it") from None
        latest = history[-1] if history else None
        if _same(latest, before):  # helm stores the new revision before it touches anything else
            raise HelmUnavailable(f"{exc.message} (the release is unchanged: nothing was written)",
                                  hint="is the cluster up, and kubernetes.kubeconfig's server reachable?") from None
        if what == "uninstall":
            if no_release(history):
                return
        elif latest is not None and latest.status == "deployed":
            return
        if latest is not None and latest.stuck:
            raise HelmReleaseBusy(f"{exc.message}; the release is left {latest.status} (revision {latest.revision})",
                                  exc.detail) from None
        raise HelmFailed(exc.message, exc.detail, hint=exc.hint) from None

    def left_behind(self, release: str, namespace: str) -> tuple[str, str | None]:
        """(the release's state, the command that mends it) after helm was killed mid-write."""
        try:
            history = self.history(release, namespace)
        except LabupError as err:
            return (f"the release's state could not be read ({err.message})",
                    f"`{self.command('history', release, '-n', namespace)}` shows it")
        if no_release(history):
            return "no release is left", None
        latest = history[-1]
        args = mend_args(history, release, namespace)
        if args is None:
            return f"the release is at revision {latest.revision} ({latest.status})", None
        return (f"the release is left in {latest.status} (revision {latest.revision})",
                f"if no helm runs on it now: `{self.command(*args)}`, then run labup again")

    # -- plumbing ---------------------------------------------------------------------------------

    def _version_args(self, chart: ChartRef, version: str) -> list[str]:
        # helm ignores --version for a local chart (it installs whatever the folder holds): labup
        # checks the folder's Chart.yaml itself, and passes the pin for repo and OCI charts only.
        return [] if chart.kind == "path" else ["--version", version]

    def _run(self, args: list[str], what: str, *, write: bool = False, timeout: float | None = None,
             grace: float = KILL_MARGIN_S) -> str:
        limit = timeout or self.timeout_s
        try:
            result = run_tool(self.binary, args, timeout=limit, check=False, grace_s=grace)
        except ToolTimeout:
            if write:
                raise  # helm was killed mid-write: _write says what state the release is left in
            raise HelmUnavailable(f"helm {what}: no answer within {limit:g}s") from None
        if result.exit_code == 0:
            return result.stdout
        namespace = args[args.index("-n") + 1] if "-n" in args[:-1] else None
        raise classify(what, result.stderr, result.exit_code, write=write, namespace=namespace)


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


def upgrade_limit(wait_timeout_s: float) -> float:
    """The process timeout of `upgrade --install`: helm's worst case, a Helm 4 first install: the CRD
    wait, the wait (--timeout), then the native rollback's or uninstall's own wait (--timeout again:
    pkg/action/upgrade.go failRelease `rollin.Timeout = u.Timeout`), plus startup and bookkeeping."""
    return CRD_WAIT_S + 2 * wait_timeout_s + WRITE_MARGIN_S


def _same(a: Revision | None, b: Revision | None) -> bool:
    if a is None or b is None:
        return a is b
    return (a.revision, a.status) == (b.revision, b.status)


def _duration(seconds: float) -> str:
    return f"{max(1, math.ceil(seconds))}s"


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text or "null")
    except ValueError:
        raise HelmFailed(f"helm {what}: printed something that is not JSON", detail=text[:200]) from None
