"""traefik-placement, psa-label, helm-release: checks that read the Kubernetes API and Helm.

The facts come from `KubeFacts` (checks/kube_facts.py, over the run's snapshots of Kubernetes objects
and of the Helm release), read once per run and shared by the checks; the judging is pure and tested
on its own.
A fact that cannot be read (no kubeconfig, API down) fails its check with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from labup.checks.kube_facts import KubeFacts, LabKubeFacts, TraefikPod
from labup.checks.model import FAIL, PASS, WARN, CheckContext, CheckResult
from labup.errors import LabupError

if TYPE_CHECKING:
    from labup.config import Lab

PSA_ENFORCE = "pod-security.kubernetes.io/enforce"
CP_TAINT = "node-role.kubernetes.io/control-plane"


__all__ = ["KubeFacts", "TraefikPod", "helm_release", "kube_facts", "psa_label", "traefik_placement"]


def kube_facts(ctx: CheckContext) -> KubeFacts:
    return ctx.fact("kube", lambda: LabKubeFacts(ctx.lab, ctx.remaining(), ctx.shared))  # type: ignore[no-any-return]


def _unreadable(name: str, exc: LabupError) -> CheckResult:
    return CheckResult(name, FAIL, f"could not read it: {exc.message}", hint=exc.hint)


# -- traefik-placement ----------------------------------------------------------------------------


def traefik_placement(ctx: CheckContext) -> CheckResult:
    try:
        pods = kube_facts(ctx).traefik_pods()
    except LabupError as exc:
        return _unreadable("traefik-placement", exc)
    holder = ctx.result_of("vip-holder")
    return judge_placement(ctx.lab, pods, holder.data.get("holder") if holder else None)


def judge_placement(lab: Lab, pods: list[TraefikPod], holder: str | None) -> CheckResult:
    """Traefik must run (host network, ready) on the node that holds the VIP (wall 5)."""
    t = lab.traefik
    data: dict[str, Any] = {"pods": [p.__dict__ for p in pods], "holder": holder}
    if not pods:
        return CheckResult("traefik-placement", FAIL, f"no Traefik pod in namespace {t.namespace}",
                           hint="install it: `labup phase traefik`", data=data)
    running = [p for p in pods if p.ready and p.phase == "Running"]
    if not running:
        states = ", ".join(f"{p.name}: {p.phase}" for p in pods)
        return CheckResult("traefik-placement", FAIL, f"no Traefik pod is ready ({states})",
                           hint=f"`kubectl -n {t.namespace} describe pod` says why (scheduling, PSA, ports)", data=data)
    nodes = sorted({p.node for p in running if p.node})
    if lab.ha:
        return _judge_ha_placement(lab, running, nodes, holder, data)
    if holder is None:
        return CheckResult("traefik-placement", WARN,
                           f"Traefik runs on {', '.join(nodes)}; the VIP's holder is unknown",
                           hint="see vip-holder", data=data)
    if holder not in nodes:
        return CheckResult("traefik-placement", FAIL,
                           f"Traefik runs on {', '.join(nodes)}, but the VIP is on {holder}: the connection paradox",
                           hint=f"pin Traefik to {holder} (toleration {CP_TAINT}:NoSchedule, nodeSelector "
                                f"kubernetes.io/hostname: {holder}): `labup phase traefik`", data=data)
    if not all(p.host_network for p in running):
        return CheckResult("traefik-placement", FAIL, "Traefik does not use the host network",
                           hint="`labup phase traefik` sets hostNetwork: true", data=data)
    return CheckResult("traefik-placement", PASS, f"Traefik runs on {holder}, the VIP's node, on the host network",
                       data=data)


def _judge_ha_placement(lab: Lab, running: list[TraefikPod], nodes: list[str], holder: str | None,
                        data: dict[str, Any]) -> CheckResult:
    """Topology ha: a ready Traefik on the holder is what answers; one on every other control-plane
    node is what keeps answering when the VIP moves (missing ones: a warning)."""
    t = lab.traefik
    missing = [n.name for n in lab.control_planes if n.name not in nodes]
    data["missing"] = missing
    if holder is None:
        return CheckResult("traefik-placement", WARN, f"Traefik runs on {', '.join(nodes)}; the VIP's holder is "
                           "unknown", hint="see vip-holder", data=data)
    if holder not in nodes:
        return CheckResult("traefik-placement", FAIL,
                           f"no ready Traefik on {holder}, which holds the VIP (ready on {', '.join(nodes)}): the "
                           "connection paradox", hint=f"`kubectl -n {t.namespace} get pods -o wide` and `kubectl -n "
                           f"{t.namespace} describe daemonset {t.release}` say why the pod on {holder} is not ready",
                           data=data)
    if not all(p.host_network for p in running):
        return CheckResult("traefik-placement", FAIL, "Traefik does not use the host network",
                           hint="`labup phase traefik` sets hostNetwork: true", data=data)
    if missing:
        return CheckResult("traefik-placement", WARN,
                           f"Traefik is ready on {holder}, which holds the VIP; none is ready on {', '.join(missing)}: "
                           "the VIP moving there would find no Traefik",
                           hint=f"`kubectl -n {t.namespace} describe daemonset {t.release}`; a cordoned or tainted "
                                "control-plane node gets no pod", data=data)
    return CheckResult("traefik-placement", PASS, f"Traefik is ready on every control-plane node ({', '.join(nodes)}), "
                       f"{holder} holds the VIP, on the host network", data=data)


# -- psa-label ------------------------------------------------------------------------------------


def psa_label(ctx: CheckContext) -> CheckResult:
    try:
        labels = kube_facts(ctx).namespace_labels()
    except LabupError as exc:
        return _unreadable("psa-label", exc)
    if labels is None:
        return CheckResult("psa-label", FAIL, f"namespace {ctx.lab.traefik.namespace} does not exist",
                           hint="`labup phase namespace` creates and labels it")
    return judge_psa(ctx.lab, labels)


def judge_psa(lab: Lab, labels: Mapping[str, str]) -> CheckResult:
    ns = lab.traefik.namespace
    value = labels.get(PSA_ENFORCE)
    data = {"namespace": ns, "enforce": value}
    if value == "privileged":
        return CheckResult("psa-label", PASS, f"namespace {ns} enforces pod-security privileged", data=data)
    return CheckResult("psa-label", FAIL, f"namespace {ns} has {PSA_ENFORCE}={value or '(unset)'}",
                       hint="a hostNetwork pod needs privileged there (that namespace only): `labup phase namespace`",
                       data=data)


# -- helm-release ---------------------------------------------------------------------------------


def _stuck(lab: Lab, status: Mapping[str, Any], state: str) -> tuple[str, str]:
    """The release step's own stuck-release diagnosis (with the revision to roll back to) when the
    facts carry the history; else where to find that revision."""
    t = lab.traefik
    history = status.get("history")
    if not history:
        return (f"release {t.release} is stuck in {state}",
                f"helm upgrade refuses it until it is mended: `helm -n {t.namespace} history {t.release}` shows the "
                f"last deployed revision, then `helm -n {t.namespace} rollback {t.release} REVISION`")
    from labup.adapters.helm import Revision
    from labup.traefik.diagnose import stuck_release

    revisions = [Revision.from_json(item) for item in history]
    found = stuck_release(t.release, t.namespace, revisions, _helm_command(lab))
    return found.message, found.hint or ""


def _helm_command(lab: Lab) -> Any:
    """Renders a helm command line with the lab's cluster flags (as the release step's hints do)."""
    kube = lab.kubernetes
    flags = [*(["--kubeconfig", str(kube.kubeconfig)] if kube.kubeconfig else []),
             *(["--kube-context", kube.context] if kube.context else [])]
    return lambda *args: " ".join(["helm", *args, *flags])


def helm_release(ctx: CheckContext) -> CheckResult:
    try:
        status = kube_facts(ctx).release_status()
    except LabupError as exc:
        return _unreadable("helm-release", exc)
    return judge_release(ctx.lab, status)


def judge_release(lab: Lab, status: Mapping[str, Any] | None) -> CheckResult:
    t = lab.traefik
    if status is None:
        return CheckResult("helm-release", FAIL, f"no Helm release {t.release} in namespace {t.namespace}",
                           hint="`labup phase traefik` installs it")
    info = status.get("info") or {}
    state = str(info.get("status", "unknown"))
    chart = status.get("chart") or {}
    version = str((chart.get("metadata") or {}).get("version", "?"))
    data = {"status": state, "chart_version": version, "revision": status.get("version")}
    if state.startswith("pending-") or state == "uninstalling":
        summary, hint = _stuck(lab, status, state)
        return CheckResult("helm-release", FAIL, summary, hint=hint, data=data)
    if state != "deployed":
        return CheckResult("helm-release", FAIL, f"release {t.release} is {state}",
                           hint=f"`helm -n {t.namespace} history {t.release}` shows what happened", data=data)
    if version != t.chart_version:
        return CheckResult("helm-release", WARN, f"release {t.release} is deployed with chart {version}, "
                           f"lab.yaml pins {t.chart_version}", hint="`labup phase traefik` upgrades it", data=data)
    return CheckResult("helm-release", PASS, f"release {t.release} deployed (chart {version})", data=data)
