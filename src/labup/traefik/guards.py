"""labup's own checks on Traefik's Helm values, for what the chart lets through (FACTS.md §1, §3).

Pure functions of the final values (after merging and after Helm's nulls): each raises ValuesError
naming the key, why it is refused and what to write instead. They run before the schema check and
before any helm or Kubernetes call, so a refused value never reaches a cluster.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from labup.traefik.keys import ValuesError
from labup.traefik.tree import get

Values = Mapping[str, Any]

CHART_HOSTPORT_ERROR = "ERROR: All hostPort must match their respective containerPort when `hostNetwork` is enabled"
CHART_MAXUNAVAILABLE_ERROR = "maxUnavailable should be greater than 0 when using hostNetwork."
_PERCENT = re.compile(r"(\d+)%")


@dataclass(frozen=True)
class _Moved:
    """A key an older chart had, where it lived, and the current syntax."""

    key: str
    charts: str
    now: str


# Per port (`ports.<name>.<key>`); `{p}` is the port's name. From the chart's history (v34: redirectTo
# -> redirections; v39: redirections, tls, middlewares moved under `http`).
_MOVED_IN_PORTS = (
    _Moved("redirectTo", "charts up to 33",
           "ports.{p}.http.redirections.entryPoint: {{to: websecure, scheme: https, permanent: true}}"),
    _Moved("redirections", "charts 34 to 38",
           "ports.{p}.http.redirections.entryPoint: {{to: websecure, scheme: https, permanent: true}}"),
    _Moved("tls", "charts up to 38", "ports.{p}.http.tls: {{enabled: true, certResolver: <resolver>}}"),
    _Moved("middlewares", "charts up to 38", "ports.{p}.http.middlewares: [...]"),
)
# Top level (v36: globalArguments removed; v40: podSecurityPolicy removed; v41: logs split).
_MOVED_AT_TOP = (
    _Moved("logs", "charts up to 40",
           "log.level / log.format (was logs.general.*) and accessLog.* (was logs.access.*)"),
    _Moved("globalArguments", "charts up to 35",
           "global.checkNewVersion / global.sendAnonymousUsage, or additionalArguments: [...]"),
    _Moved("podSecurityPolicy", "charts up to 39",
           "nothing: PodSecurityPolicy left Kubernetes in 1.25; labup labels Traefik's namespace for "
           "Pod Security Admission instead"),
)


def old_chart_syntax(values: Values) -> None:
    """Wall 2: values written for an older chart. The schema would refuse them too, but only with
    "additional properties ... not allowed"; this names the key and the syntax that replaced it."""
    for moved in _MOVED_AT_TOP:
        if moved.key in values:
            raise _old((moved.key,), moved, moved.now)
    ports = values.get("ports")
    if not isinstance(ports, Mapping):
        return
    for name, port in ports.items():
        for moved in _MOVED_IN_PORTS:
            if isinstance(port, Mapping) and moved.key in port:
                raise _old(("ports", name, moved.key), moved, moved.now.format(p=name))


def _old(key: tuple[str, ...], moved: _Moved, now: str) -> ValuesError:
    return ValuesError(key, f"this is the syntax of {moved.charts}; the pinned chart refuses it "
                            f"(additional properties '{moved.key}' not allowed)",
                       hint=f"the current syntax: {now}")


def acme_challenges(values: Values) -> None:
    """A challenge the chart would silently drop: it turns maps into --flags, and an empty map
    into no flag at all, leaving the resolver with no way to prove the domain."""
    resolvers = values.get("certificatesResolvers")
    if not isinstance(resolvers, Mapping):
        return
    for name, resolver in resolvers.items():
        acme = resolver.get("acme") if isinstance(resolver, Mapping) else None
        if not isinstance(acme, Mapping):
            continue
        key = ("certificatesResolvers", name, "acme")
        tls = acme.get("tlsChallenge")
        if isinstance(tls, Mapping) and not tls:
            raise ValuesError((*key, "tlsChallenge"),
                              "{} renders nothing: the chart drops an empty map, so Traefik gets no "
                              "TLS challenge at all and never obtains a certificate",
                              hint="write tlsChallenge: true")
        http = acme.get("httpChallenge")
        if isinstance(http, Mapping) and not http.get("entryPoint"):
            raise ValuesError((*key, "httpChallenge"),
                              "has no entryPoint: Traefik answers HTTP-01 on that entry point, and the "
                              "chart drops an empty map, leaving no challenge at all",
                              hint="write httpChallenge: {entryPoint: web}")


def host_ports_match(values: Values) -> None:
    """On the host network the pod's port IS the node's port: hostPort, port and containerPort
    must be one number. The chart only compares hostPort with port, and only when it renders."""
    if values.get("hostNetwork") is not True:
        return
    ports = values.get("ports")
    if not isinstance(ports, Mapping):
        return
    for name, port in ports.items():
        if not isinstance(port, Mapping):
            continue
        host = _int(port.get("hostPort"))
        if not host:  # the chart skips unset (and 0) hostPorts; Kubernetes then uses containerPort
            continue
        for field in ("port", "containerPort"):
            other = _int(port.get(field))
            if other and other != host:
                raise ValuesError(("ports", name, "hostPort"),
                                  f"{host} differs from ports.{name}.{field} {other}; the chart refuses "
                                  f"it: \"{CHART_HOSTPORT_ERROR}\"",
                                  hint=f"on the host network set ports.{name}.port, hostPort and "
                                       f"containerPort to the same number (e.g. {host})")


def single_acme_instance(values: Values) -> None:
    """Wall 6: Traefik's community edition cannot share ACME state (acme.json, the account, pending
    challenges) between instances. The chart only looks for ACME in additionalArguments, so
    `replicas: 2` with certificatesResolvers renders fine and breaks certificates."""
    acme = _acme_in_use(values)
    if acme is None or get(values, "deployment", "enabled", default=True) is False:
        return
    reason = (f"with built-in ACME ({acme}) Traefik must run exactly once: its community edition "
              "cannot share ACME state between instances")
    hint = ("keep deployment.kind: Deployment with deployment.replicas: 1, or turn built-in ACME off "
            "(certificatesResolvers: null, ports.websecure.http.tls.certResolver: null) and issue "
            "certificates with cert-manager")
    kind = get(values, "deployment", "kind", default="Deployment")
    if kind == "DaemonSet":
        raise ValuesError(("deployment", "kind"), f"'DaemonSet' runs one Traefik per node; {reason}", hint)
    replicas = _int(get(values, "deployment", "replicas"))
    if replicas is not None and replicas > 1:
        raise ValuesError(("deployment", "replicas"), f"{replicas} replicas; {reason}", hint)
    if get(values, "autoscaling", "enabled") is True and (_int(get(values, "autoscaling", "maxReplicas")) or 2) > 1:
        raise ValuesError(("autoscaling", "enabled"), f"an autoscaler may add replicas; {reason}", hint)


def rolling_update_can_roll(values: Values) -> None:
    """Wall 3: with hostNetwork the new pod needs the ports the old one holds, so a rolling update
    that may not stop a pod first (maxUnavailable resolving to 0) waits forever. The chart refuses
    it for DaemonSets only; a Deployment renders fine and deadlocks on its first upgrade."""
    if values.get("hostNetwork") is not True:
        return
    strategy = values.get("updateStrategy")
    strategy = strategy if isinstance(strategy, Mapping) else {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return  # Recreate stops the old pod first: it always rolls
    daemonset = get(values, "deployment", "kind") == "DaemonSet"
    pods = 1 if daemonset else (_int(get(values, "deployment", "replicas")) or 1)  # per node for a DaemonSet
    raw = get(strategy, "rollingUpdate", "maxUnavailable")
    shown = f"'{raw}'" if isinstance(raw, str) else str(raw)
    if raw is None:  # the chart renders it empty: Kubernetes' default applies
        raw = 1 if daemonset else "25%"
        shown = f"unset (Kubernetes' default {raw})"
    if _resolve(raw, pods) == 0:
        raise ValuesError(("updateStrategy", "rollingUpdate", "maxUnavailable"),
                          f"{shown} lets no pod stop first (of {pods}); with hostNetwork the new pod "
                          "needs the ports the old one holds, so the update never rolls (the chart "
                          f"only refuses this for DaemonSets: \"{CHART_MAXUNAVAILABLE_ERROR}\")",
                          hint="use updateStrategy.rollingUpdate: {maxUnavailable: 1, maxSurge: 0}, "
                               "or updateStrategy.type: Recreate")


def topology_shape(values: Values, topology: str) -> None:
    """The values must be the lab's topology (lab.yaml `topology`): one Traefik with built-in ACME on
    the VIP's node (single), or a DaemonSet on every control-plane node with cert-manager (ha). A
    values file that asks for the other shape is refused naming its key, never half-applied."""
    kind = get(values, "deployment", "kind", default="Deployment")
    if topology == "single":
        if kind == "DaemonSet":
            raise ValuesError(("deployment", "kind"),
                              "'DaemonSet' runs one Traefik per node, which is topology: ha; this lab is topology: "
                              "single: one Traefik pinned to the VIP's node, whose built-in ACME cannot share "
                              "ACME state between instances",
                              hint="set topology: ha in lab.yaml (three or more control planes; cert-manager "
                                   "issues the certificate), or leave deployment.kind to labup")
        return
    acme = _acme_in_use(values)
    if acme is not None:
        raise ValuesError(tuple(acme.split("[")[0].split(".")),
                          "built-in ACME is refused in topology: ha: every control-plane node runs a Traefik, and "
                          "its community edition cannot share ACME state (acme.json, account, challenges) "
                          "between instances (wall 6)",
                          hint="remove it: in topology: ha cert-manager issues the certificate into a Secret "
                               "that every Traefik serves")
    if kind != "DaemonSet":
        raise ValuesError(("deployment", "kind"),
                          f"'{kind}' in topology: ha: only a DaemonSet puts a Traefik on every control-plane node, "
                          "so the node the VIP moves to already answers",
                          hint="leave deployment.kind to labup (DaemonSet)")
    if get(values, "nodeSelector", "kubernetes.io/hostname") is not None:
        raise ValuesError(("nodeSelector", "kubernetes.io/hostname"),
                          "pins Traefik to one node: in topology: ha the VIP moves between control-plane nodes "
                          "and Traefik must already run wherever it goes",
                          hint="remove it (labup selects the control-plane role, "
                               "node-role.kubernetes.io/control-plane)")


def _acme_in_use(values: Values) -> str | None:
    """Where built-in ACME is configured: a resolver with `acme`, or a raw `--...acme...` argument."""
    resolvers = values.get("certificatesResolvers")
    if isinstance(resolvers, Mapping):
        for name, resolver in resolvers.items():
            if isinstance(resolver, Mapping) and resolver.get("acme"):
                return f"certificatesResolvers.{name}.acme"
    args = values.get("additionalArguments")
    if isinstance(args, list):
        for i, arg in enumerate(args):
            if isinstance(arg, str) and ".acme." in arg:  # the chart's own test
                return f"additionalArguments[{i}]"
    return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _resolve(raw: Any, pods: int) -> int | None:
    """Kubernetes' IntOrString for maxUnavailable: an integer, or a percentage rounded down."""
    if (n := _int(raw)) is not None:
        return n
    if isinstance(raw, str) and (m := _PERCENT.fullmatch(raw.strip())):
        return math.floor(int(m.group(1)) * pods / 100)
    return None  # anything else is the schema's or Kubernetes' to refuse


GUARDS: tuple[Callable[[Values], None], ...] = (
    old_chart_syntax,
    acme_challenges,
    host_ports_match,
    single_acme_instance,
    rolling_update_can_roll,
)


def check_all(values: Values, topology: str = "single") -> None:
    """Run every guard, in an order that reports the most telling problem first: a file written
    for an old chart trips other checks for reasons that vanish once it is rewritten; a value of the
    other topology is named as such before the checks it would trip."""
    old_chart_syntax(values)
    topology_shape(values, topology)
    for guard in GUARDS:
        guard(values)
