"""The cert-manager release: `helm upgrade --install` of the pinned chart with labup's values, into
its own namespace (helm creates it), only when the deployed chart or values differ.

The same rules as Traefik's release (labup.traefik.release): the release's state comes from the run's
snapshot of Helm's records, a converged release gets no helm write, helm's native rollback undoes a
failed upgrade, and undo() goes back to the revision live before this run (or uninstalls what this run
installed). An uninstall keeps the CRDs (crds.keep): deleting them would delete every Certificate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from labup.adapters.helm import ChartRef, HelmFailed, last_deployed, no_release
from labup.adapters.kube import read
from labup.adapters.kube import shared as kube
from labup.certmanager.values import CHART, build
from labup.engine.model import Observation, Step
from labup.errors import PermanentError, Unreadable
from labup.facts.release import release_facts
from labup.traefik.access import helm
from labup.traefik.diffs import comparable, values_diff
from labup.traefik.pin import load_pin
from labup.traefik.release import check_local_chart, release_owns, undo_release

if TYPE_CHECKING:
    from labup.engine.context import Context


class CertManagerRelease(Step):
    name = "release"
    long_running = True

    def __init__(self, ctx: Context) -> None:
        cm = ctx.lab.cert_manager  # no I/O: `labup rollback` builds steps just to undo
        self.lab = ctx.lab
        self.release, self.namespace = cm.release, cm.namespace
        self.version = cm.chart_version
        self.chart = ChartRef.parse(cm.chart, cm.repo_url, ctx.lab.source.parent)

    def preflight(self, ctx: Context) -> None:
        build(self.lab)  # refused values or another chart version: exit 2 before any helm call
        check_local_chart(self.chart, self.version, CHART, "cert_manager.chart")
        helm(ctx)  # no helm: Unreadable (a dry run shows unknown, an apply stops here)
        kube(ctx).check_config()

    def observe(self, ctx: Context) -> Observation:
        desired = build(self.lab)
        pin = load_pin(CHART)
        target = f"{pin.name}-{self.version}"
        where = f"{self.release} in namespace {self.namespace}"
        try:
            helm(ctx)
            facts = release_facts(ctx, self.release, self.namespace)
            history = read(ctx, facts.history, facts.what)
        except Unreadable as exc:
            return Observation(None, f"release {where}: its deployed state could not be read",
                               diff=values_diff(None, desired, "deployed values: unknown"), reason=exc.message)
        if no_release(history):
            return Observation(False, f"new release: install {where} (namespace created if missing), chart {target}",
                               diff=values_diff(None, desired, f"new release {self.release}: no values deployed"),
                               data={"previous": None})
        latest = history[-1]
        if latest.stuck:
            raise PermanentError(f"release {where} is {latest.status} (revision {latest.revision}): helm refuses "
                                 "to upgrade it", hint=f"`helm history {self.release} -n {self.namespace}`; "
                                                       "`helm rollback` to the last deployed revision")
        deployed = read(ctx, lambda: facts.values(latest.revision),
                        f"values of release {self.release} (revision {latest.revision})")
        same_chart = (latest.chart_name, latest.chart_version.lstrip("v")) == (pin.name, self.version.lstrip("v"))
        if latest.status == "deployed" and same_chart and comparable(deployed) == comparable(desired):
            return Observation(True, f"release {where}: revision {latest.revision} runs {latest.chart} with "
                                     "labup's values")
        changes = [f"its last revision ({latest.revision}) is {latest.status}"] if latest.status != "deployed" else []
        if not same_chart:
            changes.append(f"chart {latest.chart} -> {target}")
        if comparable(deployed) != comparable(desired):
            changes.append("values differ")
        previous = last_deployed(history)
        return Observation(False, f"upgrade {where} ({'; '.join(changes)})",
                           diff=values_diff(deployed, desired, f"values of revision {latest.revision}"),
                           data={"previous": previous.revision if previous else None})

    def apply(self, ctx: Context, seen: Observation) -> dict[str, Any]:
        h = helm(ctx)
        if self.chart.kind == "repo" and self.chart.repo_name and self.chart.repo_url:
            h.repo_add(self.chart.repo_name, self.chart.repo_url)
        wait = self.lab.cert_manager.wait_timeout_s
        ctx.reporter.note(f"helm v{h.version} upgrade --install {self.release} {' '.join(h.safety_args())} "
                          f"--timeout {wait:g}s")
        try:
            h.upgrade_install(self.release, self.chart, self.namespace, self.version, build(self.lab), wait,
                              description=f"labup: lab {self.lab.name}, topology ha", create_namespace=True)
        except HelmFailed as exc:
            raise PermanentError(f"cert-manager: {exc.message}", hint=exc.hint) from None
        history = release_facts(ctx, self.release, self.namespace).history()
        return {"release": self.release, "namespace": self.namespace,
                "revision": history[-1].revision if history else None, "previous": seen.data.get("previous")}

    def undo(self, ctx: Context, data: dict[str, Any]) -> str:
        return undo_release(ctx, data, self.lab.cert_manager.wait_timeout_s)

    def owns(self, ctx: Context, data: dict[str, Any]) -> str | None:
        return release_owns(data, self.release, self.namespace, "cert_manager")
