"""The Helm release: install or upgrade Traefik with labup's values, pinned to the VIP's node.

observe() compares the deployed revision with what labup would install: the chart (name and pinned
version) and the values (what `helm get values` says: the ones the release was given). Equal:
converged, no helm write at all. Otherwise the diff is the values (and, on a dry run with the chart
at hand, the manifest: `helm template` against the deployed one). The release's history, values and
manifest come from the run's snapshot (labup.facts.release: Helm's own records, one API request),
which every helm write drops.

apply() is one `helm upgrade --install` with the pinned `--version`, the values from a 0600 file,
`--reset-values`, a bounded wait (traefik.wait_timeout_s) and the native rollback of the installed
helm (Helm 4 `--rollback-on-failure --wait=watcher`, Helm 3 `--atomic --wait`): a failed upgrade
is rolled back by helm itself, a failed first install uninstalled, and labup says which, with what
the cluster says about why (Pod Security, scheduling, ports).

undo() (a later step failed, or `labup rollback traefik`) goes back to the revision that was live
before this run (`helm rollback REL REV`), or uninstalls the release when this run installed it;
a release changed since by someone else is left alone, and the report says so.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labup import yamlsafe
from labup.adapters.helm import (
    ChartRef,
    HelmAdapter,
    HelmFailed,
    HelmReleaseBusy,
    HelmRolledBack,
    HelmStuck,
    Revision,
    last_deployed,
    no_release,
)
from labup.adapters.kube import read
from labup.adapters.kube import shared as kube
from labup.engine.model import Observation, Step
from labup.errors import ConfigError, LabupError, PermanentError, PreflightError, TransientError, Unreadable
from labup.facts.release import release_facts
from labup.traefik import diagnose
from labup.traefik.access import helm
from labup.traefik.diffs import comparable, manifest_diff, values_diff
from labup.traefik.pin import load_pin
from labup.traefik.placement import FACT as PLACEMENT

if TYPE_CHECKING:
    from labup.engine.context import Context
    from labup.traefik.values import RenderedValues

FACT = "traefik_release"  # {"converged": bool, "revision": int | None}: read by the pod step


class ReleaseStep(Step):
    name = "release"
    long_running = True

    def __init__(self, ctx: Context) -> None:
        # no I/O: `labup rollback` builds steps just to undo
        self.lab = ctx.lab
        self.release = ctx.lab.traefik.release
        self.namespace = ctx.lab.traefik.namespace
        self.version = ctx.lab.traefik.chart_version.lstrip("v")
        self.chart = ChartRef.of(ctx.lab)
        self._rendered: dict[str, str] = {}  # `helm template` output by values

    # -- read -------------------------------------------------------------------------------------

    def preflight(self, ctx: Context) -> None:
        from labup.validators import reserved_email

        if problem := reserved_email(self.lab.traefik.acme.email):
            if not ctx.dry_run:  # a real apply would deploy everything, then fail at ACME registration
                raise ConfigError("traefik.acme.email", problem, hint="use an address at a domain you own")
            ctx.reporter.note(f"warning: traefik.acme.email: {problem}")
        values = self._values(ctx, None)  # refused values: ConfigError before any helm call
        check_local_chart(self.chart, self.version)
        h = helm(ctx)  # no helm: Unreadable (a dry run shows unknown, an apply stops here)
        kube(ctx).check_config()  # no kubeconfig: Unreadable, before helm would dial localhost:8080
        try:
            history = release_facts(ctx).history()
        except TransientError:
            history = None  # the API may sit behind the VIP, which the vip phase brings up: observe() decides
        if self.chart.at_hand and not self._accepted_before(ctx, history):
            # The real chart fails on values its schema lets through (nulls, its own guards): render
            # it offline now, so such values stop the run before anything is written anywhere.
            self._template(h, values)
        if history and history[-1].stuck:  # pending-* or uninstalling: helm upgrade would refuse it
            stuck = diagnose.stuck_release(self.release, self.namespace, history, h.command)
            raise PreflightError(stuck.message, hint=stuck.hint)

    def _accepted_before(self, ctx: Context, history: list[Revision] | None) -> bool:
        """The deployed revision runs this very chart version with exactly the values labup would give
        it (for the node it is pinned to): the chart accepted them then, a render would prove nothing
        new (a converged run saves its only `helm template`)."""
        if not history or history[-1].status != "deployed":
            return False
        latest = history[-1]
        if (latest.chart_name, latest.chart_version) != (load_pin().name, self.version):
            return False
        try:
            deployed = release_facts(ctx).values(latest.revision)
        except LabupError:
            return False
        node = (deployed.get("nodeSelector") or {}).get("kubernetes.io/hostname")
        if self.lab.ha:  # the same values wherever the VIP is
            return comparable(deployed) == comparable(self._values(ctx, None).values)
        return isinstance(node, str) and comparable(deployed) == comparable(self._values(ctx, node).values)

    def observe(self, ctx: Context) -> Observation:
        node, note = self._node(ctx)
        rendered = self._values(ctx, node)
        desired = rendered.values
        target = f"{load_pin().name}-{self.version}"
        where = f"{self.release} in namespace {self.namespace}"
        ctx.facts[FACT] = {"converged": False, "revision": None}
        try:
            h = helm(ctx)
            facts = release_facts(ctx)
            history = read(ctx, facts.history, facts.what)
        except Unreadable as exc:
            return Observation(None, f"release {where}: its deployed state could not be read{note}",
                               diff=values_diff(None, desired, "deployed values: unknown"), reason=exc.message)
        if no_release(history):  # none, or uninstalled with --keep-history: helm installs afresh
            kept = f" (its history up to revision {history[-1].revision}, uninstalled, is kept)" if history else ""
            diff = values_diff(None, desired, f"new release {self.release}: no values deployed")
            if ctx.dry_run:
                diff = _join(diff, self._manifest_diff(ctx, h, desired, None))
            return Observation(False, f"new release: install {where}, chart {target}, {self._placed(node)}{note}{kept}",
                               diff=diff, data={"previous": None, "had_release": False})
        latest = history[-1]
        if latest.stuck:
            stuck = diagnose.stuck_release(self.release, self.namespace, history, h.command)
            raise PermanentError(stuck.message, hint=stuck.hint)
        deployed = read(ctx, lambda: release_facts(ctx).values(latest.revision),
                        f"values of release {self.release} (revision {latest.revision})")
        from labup.traefik.leftovers import FACT as WAS_HA
        from labup.traefik.leftovers import PLANNED

        if (deployed.get("deployment") or {}).get("kind") == "DaemonSet" and not self.lab.ha:
            ctx.facts[WAS_HA] = True  # kept after the upgrade (observed again as a Deployment): leftovers reads it
            note = f"{note} (topology ha -> single: the DaemonSet becomes one Deployment; {PLANNED})"
        elif self.lab.ha and (deployed.get("deployment") or {}).get("kind", "Deployment") != "DaemonSet":
            note = f"{note} (topology single -> ha: the Deployment becomes a DaemonSet)"
        same_chart = (latest.chart_name, latest.chart_version) == (load_pin().name, self.version)
        same_values = comparable(deployed) == comparable(desired)
        if latest.status == "deployed" and same_chart and same_values:
            ctx.facts[FACT] = {"converged": True, "revision": latest.revision}
            return Observation(True, f"release {where}: revision {latest.revision} runs {latest.chart} with "
                                     f"labup's values ({self._placed(node)})")
        changes = []
        if latest.status != "deployed":
            changes.append(f"its last revision ({latest.revision}) is {latest.status}")
        if not same_chart:
            changes.append(f"chart {latest.chart} -> {target}")
        if not same_values:
            changes.append("values differ")
        diff = values_diff(deployed, desired, f"values of revision {latest.revision} ({latest.status})")
        if not same_chart:
            diff = _join(f"chart: {latest.chart} -> {target}", diff)
        if ctx.dry_run:
            diff = _join(diff, self._manifest_diff(ctx, h, desired, latest))
        previous = last_deployed(history)
        return Observation(False, f"upgrade {where} ({'; '.join(changes)}), {self._placed(node)}{note}", diff=diff,
                           data={"previous": previous.revision if previous else None, "had_release": True})

    # -- write ------------------------------------------------------------------------------------

    def apply(self, ctx: Context, seen: Observation) -> dict[str, Any]:
        h = helm(ctx)
        node = self._pinned(ctx)
        values = self._values(ctx, node).values
        if self.chart.kind == "repo" and self.chart.repo_name and self.chart.repo_url:
            h.repo_add(self.chart.repo_name, self.chart.repo_url)
        wait = self.lab.traefik.wait_timeout_s
        ctx.reporter.note(f"helm v{h.version} upgrade --install {self.release} {' '.join(h.safety_args())} "
                          f"--timeout {wait:g}s ({self._placed(node)})")
        started = time.time()
        try:
            h.upgrade_install(self.release, self.chart, self.namespace, self.version, values, wait,
                              description=f"labup: lab {self.lab.name}, {self._placed(node)}",
                              force_conflicts=self.lab.traefik.force_conflicts)
        except HelmRolledBack as exc:
            raise self._rolled_back(ctx, h, exc, seen, started) from None
        except (HelmReleaseBusy, HelmStuck) as exc:  # left pending by this run, or stuck before it
            history = release_facts(ctx).history()  # the write dropped what was read before it
            if not history or not history[-1].stuck:
                raise
            stuck = diagnose.stuck_release(self.release, self.namespace, history, h.command)
            raise PermanentError(f"{stuck.message}; helm said: {exc.detail}", hint=stuck.hint) from None
        except HelmFailed as exc:
            if not seen.data.get("had_release"):
                left = self._remove_failed_install(ctx, h)
                raise PermanentError(f"{exc.message}; {left}", hint=exc.hint) from None
            raise
        history = release_facts(ctx).history()
        from labup.traefik.leftovers import FACT as WAS_HA

        if ctx.facts.get(WAS_HA):  # back from topology ha: what single does not use goes
            from labup.traefik.leftovers import remove

            for gone in remove(ctx):
                ctx.reporter.note(f"topology ha -> single: removed {gone}")
        # journaled: names and numbers only
        return {"release": self.release, "namespace": self.namespace, "node": node,
                "revision": history[-1].revision if history else None, "previous": seen.data.get("previous")}

    def undo(self, ctx: Context, data: dict[str, Any]) -> str:
        return undo_release(ctx, data, self.lab.traefik.wait_timeout_s)

    def owns(self, ctx: Context, data: dict[str, Any]) -> str | None:
        """Only lab.yaml's release in lab.yaml's namespace: never another namespace's release."""
        return release_owns(data, self.release, self.namespace, "traefik")

    # -- helpers ----------------------------------------------------------------------------------

    def _node(self, ctx: Context) -> tuple[str, str]:
        """The node to pin to, and a note when it is only a stand-in (dry run, holder unknown)."""
        placement = ctx.facts.get(PLACEMENT)
        if placement:
            return str(placement["name"]), ""
        stand_in = self.lab.control_planes[0].name
        return stand_in, f" (VIP holder unknown: {stand_in}, the first control-plane node, stands in)"

    def _placed(self, node: str) -> str:
        return "a DaemonSet on every control-plane node" if self.lab.ha else f"pinned to {node}"

    def _pinned(self, ctx: Context) -> str:
        placement = ctx.facts.get(PLACEMENT)
        if not placement:  # the placement step runs first and stops the run when it finds no node
            raise PermanentError("the node holding the VIP is not known: nothing to pin Traefik to")
        return str(placement["name"])

    def _values(self, ctx: Context, node: str | None) -> RenderedValues:
        from labup.traefik.values import build

        return build(self.lab, node)

    def _template(self, h: HelmAdapter, rendered: RenderedValues) -> str:
        key = json.dumps(rendered.values, sort_keys=True)
        if key in self._rendered:  # pre-flight and the dry run's diff often render the same values
            return self._rendered[key]
        try:
            self._rendered[key] = h.template(self.release, self.chart, self.namespace, self.version,
                                             rendered.values)
            return self._rendered[key]
        except HelmFailed as exc:
            raise PreflightError(f"the chart {self.chart.ref} refuses labup's values: {exc.detail}",
                                 hint="`labup render traefik` shows the values; fix traefik.values or the "
                                      "template in phases/traefik/") from None

    def _manifest_diff(self, ctx: Context, h: HelmAdapter, desired: dict[str, Any],
                       latest: Revision | None) -> str:
        if not self.chart.at_hand:
            return (f"(manifest diff: only for a local chart; {self.chart.ref} {self.version} is fetched "
                    "at install time)")
        from labup.traefik.values import RenderedValues

        rendered = self._template(h, RenderedValues(desired, "", ()))
        deployed = "" if latest is None else read(
            ctx, lambda: release_facts(ctx).manifest(latest.revision),
            f"manifest of release {self.release} (revision {latest.revision})")
        label = "no manifest deployed" if latest is None else f"manifest of revision {latest.revision}"
        return manifest_diff(deployed, rendered, label) or "(manifest: no change)"

    def _rolled_back(self, ctx: Context, h: HelmAdapter, exc: HelmRolledBack, seen: Observation,
                     started: float) -> LabupError:
        """helm undid its own failed install/upgrade: say what is live now, and why it failed."""
        why = self._why_it_failed(ctx, started)
        hint = exc.hint or (why.hint if why else f"`helm history` and `kubectl -n {self.namespace} get events` "
                                                   "tell more")
        reason = f" ({why.message})" if why else ""
        if exc.action == "uninstalled" or not seen.data.get("had_release"):
            left = self._remove_failed_install(ctx, h)
            return PermanentError(f"helm could not install release {self.release}: {exc.detail}{reason}; "
                                  f"helm uninstalled it: {left}", hint=hint)
        history = release_facts(ctx).history()
        now = f"revision {history[-1].revision} ({history[-1].status})" if history else "no revision"
        before = seen.data.get("previous")
        # helm picks its own target (the newest deployed or superseded revision: upgrade.go failRelease),
        # which a superseded revision that never ran can be: say which one it was
        target = _rollback_target(history[-1]) if history else None
        went = (f"revision {before}, the one live before this run" if target in (None, before)
                else f"revision {target} (helm's choice; revision {before} was the one live before this run)")
        return PermanentError(f"helm could not upgrade release {self.release}: {exc.detail}{reason}; helm rolled "
                              f"it back to {went}: now {now}", hint=hint)

    def _why_it_failed(self, ctx: Context, started: float) -> diagnose.Diagnosis | None:
        """The cluster's word on the failed attempt: warnings in the namespace since it started."""
        try:
            events = kube(ctx).list_events(self.namespace)
        except LabupError:
            return None
        recent = [e for e in events if e.get("type") == "Warning" and _after(diagnose.event_time(e), started)]
        recent.sort(key=diagnose.event_time)
        found = diagnose.psa_rejection(recent) or diagnose.ports_taken(recent)
        if found:
            return found
        sched = diagnose.newest(recent, "FailedScheduling")
        if sched:
            return diagnose.Diagnosis(f"the scheduler said \"{sched.get('message')}\"",
                                      "Traefik must tolerate the control-plane taint and be pinned to the VIP's node")
        return None

    def _remove_failed_install(self, ctx: Context, h: HelmAdapter) -> str:
        """A first install that failed must leave nothing: check, and uninstall what helm left."""
        try:
            if no_release(release_facts(ctx).history()):
                return "no release is left"
            h.uninstall(self.release, self.namespace, self.lab.traefik.wait_timeout_s)
            return "labup uninstalled what was left of it"
        except LabupError as exc:
            return f"and could not check or remove what is left ({exc.message})"


def undo_release(ctx: Context, data: dict[str, Any], wait: float) -> str:
    """Undo one journaled release write: back to the revision live before it (`helm rollback`), or
    uninstall when that write installed it; a release changed since by someone else is left alone."""
    h = helm(ctx)
    release, namespace = str(data["release"]), str(data["namespace"])  # the journaled ones
    # read afresh: only the live history tells whether the release is still what labup made
    history = release_facts(ctx, release, namespace, fresh=True).history()
    if no_release(history):
        return f"release {release} in namespace {namespace} is already gone"
    latest = history[-1]
    if data.get("revision") is not None and latest.revision != data["revision"]:
        return (f"left release {release} alone: it is at revision {latest.revision} ({latest.status}), not "
                f"revision {data['revision']} that labup made; `helm history {release} -n {namespace}`")
    if latest.stuck:
        stuck = diagnose.stuck_release(release, namespace, history, h.command)
        raise PermanentError(stuck.message, hint=stuck.hint)
    previous = data.get("previous")
    if previous is None:
        h.uninstall(release, namespace, wait)
        return f"uninstalled release {release} from namespace {namespace} (this run installed it)"
    h.rollback(release, namespace, int(previous), wait)
    return f"rolled release {release} back to revision {previous}, the one live before this run " \
           f"(revision {latest.revision} was labup's)"


def release_owns(data: dict[str, Any], release: str, namespace: str, section: str) -> str | None:
    """Why a journaled release write is not this lab's release (`section`.release in `section`.namespace),
    or None when it is."""
    if (data.get("release"), data.get("namespace")) != (release, namespace):
        return (f"it names release {data.get('release')!r} in namespace {data.get('namespace')!r}, not this "
                f"lab's {release} in {namespace} ({section}.release, {section}.namespace)")
    for key in ("revision", "previous"):
        if data.get(key) is not None and not isinstance(data.get(key), int):
            return f"its {key} {data.get(key)!r} is not a revision number"
    return None


def check_local_chart(chart: ChartRef, version: str, pinned: str = "traefik", field: str = "traefik.chart") -> None:
    """Wall 2 for a local chart: helm ignores --version for a folder, so labup reads its Chart.yaml."""
    if chart.kind != "path":
        return
    path = Path(chart.ref)
    pin = load_pin(pinned)
    if path.is_dir():
        meta = yamlsafe.load_file(path / "Chart.yaml") if (path / "Chart.yaml").is_file() else None
    elif path.is_file():
        meta = _archive_chart_yaml(path)
    else:
        raise PreflightError(f"{field}: no chart at {path}", hint="a chart folder or .tgz, repo/chart or oci://")
    if not isinstance(meta, dict):
        raise PreflightError(f"{field}: {path} has no readable Chart.yaml")
    found = (str(meta.get("name")), str(meta.get("version")).lstrip("v"))
    if found != (pin.name, version.lstrip("v")):
        raise PreflightError(f"{field}: {path} is chart {found[0]} {found[1]}, not {pin.name} {version}",
                             hint="labup's values are written and validated for the pinned chart; point "
                                  f"{field} at that version")


def _archive_chart_yaml(path: Path) -> Any:
    import tarfile

    import yaml

    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                if member.isreg() and member.name.count("/") == 1 and member.name.endswith("/Chart.yaml"):
                    handle = tar.extractfile(member)
                    return yaml.safe_load(handle.read(1_000_000)) if handle else None
    except (OSError, tarfile.TarError, yaml.YAMLError):
        return None
    return None


def _after(stamp: str, started: float) -> bool:
    """Event time (RFC 3339, UTC) at or after `started`, with slack for the API server's clock."""
    from datetime import datetime

    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return True  # no readable time: keep it rather than hide a reason
    return when >= started - 120


def _rollback_target(revision: Revision) -> int | None:
    """The revision a rollback revision went back to (helm's description `Rollback to N`)."""
    import re

    found = re.match(r"Rollback to (\d+)$", revision.description)
    return int(found.group(1)) if found else None


def _join(*parts: str | None) -> str:
    return "\n".join(p for p in parts if p)
