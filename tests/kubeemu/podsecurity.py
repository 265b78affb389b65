"""Pod Security admission as a Talos cluster runs it, with the API server's own words. Opt-in.

Two admission hooks (install with `emu.add_admission_hook(...)`, or `kubeemu.cluster.install_cluster`):

- `default_host_network_ports`: the API server's defaulting (SetDefaults_Pod): a hostNetwork pod's
  container ports get hostPort = containerPort. Pod Security and the scheduler both see those.
- `PodSecurityAdmission`: enforce mode of the PodSecurity plugin on Pod CREATE, whoever creates the pod
  (a client, or the ReplicaSet controller: the controller then records `FailedCreate` on its ReplicaSet
  with `Error creating: <message>`, and the Deployment stays unavailable).

Talos configures the plugin with `enforce: baseline` (version latest) as the cluster default and
exempts kube-system; a namespace's `pod-security.kubernetes.io/enforce[-version]` labels override it.

The message is the plugin's (staging/src/k8s.io/pod-security-admission, admission.go + policy/):

    pods "traefik-6f9c7d8b5-x2x9q" is forbidden: violates PodSecurity "baseline:latest": host
    namespaces (hostNetwork=true), hostPort (container "traefik" uses hostPorts 443, 80, 8080, 9100)

FACTS.md §1 quotes the short form `violates PodSecurity "baseline": host namespaces (hostNetwork=true)`;
the plugin prints `<level>:<version>` (LevelVersion.String()) and every failed check, so the long form
above is what a real cluster says (port numbers sorted as strings: sets.String.List()).

Modelled checks, in the plugin's order (baseline: non-overlapping checks, then overlapping ones;
restricted: baseline's non-overlapping checks, then the restricted ones):
baseline hostNamespaces, hostPorts, privileged | capabilities_baseline, hostPathVolumes;
restricted allowPrivilegeEscalation, capabilities_restricted, runAsNonRoot, runAsUser,
seccompProfile_restricted. Not modelled (nothing labup renders touches them): AppArmor, procMount,
SELinux, sysctls, seccomp baseline, Windows host process, probes' host field, restricted volume types.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .admission import AdmissionRequest
from .errors import ApiError

Obj = dict[str, Any]
Check = Callable[[Obj], tuple[str, str] | None]  # pod spec -> (reason, detail) when forbidden

LABEL_PREFIX = "pod-security.kubernetes.io/"
LEVELS = ("privileged", "baseline", "restricted")
# capabilities_baseline: what a baseline pod may add
BASELINE_CAPABILITIES = frozenset({
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
    "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
})


def _is_pod(req: AdmissionRequest) -> bool:
    return req.rt.group == "" and req.rt.kind == "Pod"


def default_host_network_ports(req: AdmissionRequest) -> None:
    """SetDefaults_Pod: on the host network every container port is a host port."""
    if not _is_pod(req) or req.operation != "CREATE":
        return
    spec = req.obj.get("spec") or {}
    if not spec.get("hostNetwork"):
        return
    for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        for port in container.get("ports") or []:
            if not port.get("hostPort") and port.get("containerPort"):
                port["hostPort"] = port["containerPort"]


# -- the policy's wording helpers (policy/helpers.go) ---------------------------------------------


def _plural(singular: str, plural: str, n: int) -> str:
    return singular if n == 1 else plural


def _join_quote(items: Iterable[str]) -> str:
    return ", ".join(f'"{item}"' for item in items)


def _containers(spec: Obj) -> Iterator[Obj]:
    """visitContainers: init containers, containers, ephemeral containers."""
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(key) or []


def _sc(container: Obj) -> Obj:
    return container.get("securityContext") or {}


# -- baseline -------------------------------------------------------------------------------------


def host_namespaces(spec: Obj) -> tuple[str, str] | None:
    found = [f"{field}=true" for field in ("hostNetwork", "hostPID", "hostIPC") if spec.get(field)]
    return ("host namespaces", ", ".join(found)) if found else None


def host_ports(spec: Obj) -> tuple[str, str] | None:
    bad, ports = [], set()
    for c in _containers(spec):
        taken = {str(p["hostPort"]) for p in c.get("ports") or [] if p.get("hostPort")}
        if taken:
            bad.append(c.get("name", ""))
            ports |= taken
    if not bad:
        return None
    return ("hostPort", f"{_plural('container', 'containers', len(bad))} {_join_quote(bad)} "
                        f"{_plural('uses', 'use', len(bad))} {_plural('hostPort', 'hostPorts', len(ports))} "
                        f"{', '.join(sorted(ports))}")


def privileged(spec: Obj) -> tuple[str, str] | None:
    bad = [c.get("name", "") for c in _containers(spec) if _sc(c).get("privileged") is True]
    if not bad:
        return None
    return ("privileged", f"{_plural('container', 'containers', len(bad))} {_join_quote(bad)} must not set "
                          "securityContext.privileged=true")


def capabilities_baseline(spec: Obj) -> tuple[str, str] | None:
    bad, caps = [], set()
    for c in _containers(spec):
        extra = {str(cap) for cap in (_sc(c).get("capabilities") or {}).get("add") or []} - BASELINE_CAPABILITIES
        if extra:
            bad.append(c.get("name", ""))
            caps |= extra
    if not bad:
        return None
    return ("non-default capabilities", f"{_plural('container', 'containers', len(bad))} {_join_quote(bad)} must "
                                        f"not include {_join_quote(sorted(caps))} in securityContext.capabilities.add")


def host_path_volumes(spec: Obj) -> tuple[str, str] | None:
    bad = [v.get("name", "") for v in spec.get("volumes") or [] if v.get("hostPath") is not None]
    if not bad:
        return None
    return ("hostPath volumes", f"{_plural('volume', 'volumes', len(bad))} {_join_quote(bad)}")


# -- restricted -----------------------------------------------------------------------------------


def allow_privilege_escalation(spec: Obj) -> tuple[str, str] | None:
    bad = [c.get("name", "") for c in _containers(spec) if _sc(c).get("allowPrivilegeEscalation") is not False]
    if not bad:
        return None
    who = f"{_plural('container', 'containers', len(bad))} {_join_quote(bad)}"
    return ("allowPrivilegeEscalation != false", f"{who} must set securityContext.allowPrivilegeEscalation=false")


def capabilities_restricted(spec: Obj) -> tuple[str, str] | None:
    missing_drop, adding, caps = [], [], set()
    for c in _containers(spec):
        capabilities = _sc(c).get("capabilities")
        if capabilities is None:
            missing_drop.append(c.get("name", ""))
            continue
        if "ALL" not in (capabilities.get("drop") or []):
            missing_drop.append(c.get("name", ""))
        extra = {str(cap) for cap in capabilities.get("add") or [] if cap != "NET_BIND_SERVICE"}
        if extra:
            adding.append(c.get("name", ""))
            caps |= extra
    details = []
    if missing_drop:
        details.append(f"{_plural('container', 'containers', len(missing_drop))} {_join_quote(missing_drop)} must "
                       'set securityContext.capabilities.drop=["ALL"]')
    if adding:
        details.append(f"{_plural('container', 'containers', len(adding))} {_join_quote(adding)} must not include "
                       f"{_join_quote(sorted(caps))} in securityContext.capabilities.add")
    return ("unrestricted capabilities", "; ".join(details)) if details else None


def _pod_or_containers(spec: Obj, field: str, bad_value: Callable[[Any], bool], good_value: Callable[[Any], bool]
                       ) -> tuple[list[str], list[str], bool]:
    """(explicit bad setters incl. "pod", containers left implicitly bad, pod set a good value)."""
    setters: list[str] = []
    pod_value = (spec.get("securityContext") or {}).get(field)
    pod_good = pod_value is not None and good_value(pod_value)
    if pod_value is not None and bad_value(pod_value):
        setters.append("pod")
    explicit, implicit = [], []
    for c in _containers(spec):
        value = _sc(c).get(field)
        if value is not None:
            if bad_value(value):
                explicit.append(c.get("name", ""))
        elif not pod_good:
            implicit.append(c.get("name", ""))
    if explicit:
        setters.append(f"{_plural('container', 'containers', len(explicit))} {_join_quote(explicit)}")
    return setters, implicit, pod_good


def run_as_non_root(spec: Obj) -> tuple[str, str] | None:
    setters, implicit, _ = _pod_or_containers(spec, "runAsNonRoot", lambda v: v is False, lambda v: v is True)
    if setters:
        return ("runAsNonRoot != true", f"{' and '.join(setters)} must not set securityContext.runAsNonRoot=false")
    if implicit:
        return ("runAsNonRoot != true", f"pod or {_plural('container', 'containers', len(implicit))} "
                                        f"{_join_quote(implicit)} must set securityContext.runAsNonRoot=true")
    return None


def run_as_user(spec: Obj) -> tuple[str, str] | None:
    setters = ["pod"] if (spec.get("securityContext") or {}).get("runAsUser") == 0 else []
    bad = [c.get("name", "") for c in _containers(spec) if _sc(c).get("runAsUser") == 0]
    if bad:
        setters.append(f"{_plural('container', 'containers', len(bad))} {_join_quote(bad)}")
    return ("runAsUser=0", f"{' and '.join(setters)} must not set runAsUser=0") if setters else None


def seccomp_profile_restricted(spec: Obj) -> tuple[str, str] | None:
    def kind(profile: Any) -> str:
        return str((profile or {}).get("type") or "")

    def valid(profile: Any) -> bool:
        return kind(profile) in ("RuntimeDefault", "Localhost")

    setters, implicit, _ = _pod_or_containers(spec, "seccompProfile", lambda p: not valid(p), valid)
    if setters:
        values = {kind((spec.get("securityContext") or {}).get("seccompProfile"))} if "pod" in setters else set()
        values |= {kind(_sc(c).get("seccompProfile")) for c in _containers(spec)
                   if _sc(c).get("seccompProfile") is not None and not valid(_sc(c).get("seccompProfile"))}
        return ("seccompProfile", f"{' and '.join(setters)} must not set securityContext.seccompProfile.type to "
                                  f"{_join_quote(sorted(values))}")
    if implicit:
        return ("seccompProfile", f"pod or {_plural('container', 'containers', len(implicit))} "
                                  f'{_join_quote(implicit)} must set securityContext.seccompProfile.type to '
                                  '"RuntimeDefault" or "Localhost"')
    return None


BASELINE: tuple[Check, ...] = (host_namespaces, host_ports, privileged)
BASELINE_OVERLAPPING: tuple[Check, ...] = (capabilities_baseline, host_path_volumes)
RESTRICTED: tuple[Check, ...] = (allow_privilege_escalation, capabilities_restricted, run_as_non_root, run_as_user,
                                 seccomp_profile_restricted)


def evaluate(level: str, spec: Obj) -> str:
    """AggregateCheckResult.ForbiddenDetail() for the pod spec at `level` ("" when allowed)."""
    if level == "privileged":
        return ""
    checks = BASELINE + (BASELINE_OVERLAPPING if level == "baseline" else RESTRICTED)
    found = [hit for check in checks if (hit := check(spec)) is not None]
    return ", ".join(f"{reason} ({detail})" if detail else reason for reason, detail in found)


class PodSecurityAdmission:
    """Enforce mode only (audit and warn change no outcome). Callable as a kubeemu admission hook."""

    def __init__(self, default_level: str = "baseline", default_version: str = "latest",
                 exempt_namespaces: Iterable[str] = ("kube-system",)) -> None:
        if default_level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}")
        self.default_level = default_level
        self.default_version = default_version
        self.exempt_namespaces = frozenset(exempt_namespaces)

    def policy(self, labels: dict[str, str]) -> tuple[str, str]:
        """(level, version) enforced in a namespace with these labels. An invalid level label is
        enforced as restricted (api.PolicyToEvaluate falls back to the most restrictive)."""
        level = labels.get(f"{LABEL_PREFIX}enforce", self.default_level)
        version = labels.get(f"{LABEL_PREFIX}enforce-version", self.default_version)
        return (level if level in LEVELS else "restricted"), version

    def __call__(self, req: AdmissionRequest) -> None:
        if not _is_pod(req) or req.operation != "CREATE" or not req.namespace:
            return
        if req.namespace in self.exempt_namespaces:
            return
        ns_type = req.store.registry.lookup("", "v1", "namespaces")
        namespace = req.store.find(ns_type, None, req.namespace) if ns_type is not None else None
        labels = ((namespace or {}).get("metadata") or {}).get("labels") or {}
        level, version = self.policy(labels)
        detail = evaluate(level, req.obj.get("spec") or {})
        if detail:
            meta = req.obj.get("metadata") or {}
            # the API server names the pod before validating admission runs (generateName filled in)
            name = meta.get("name") or f"{meta.get('generateName', '')}{uuid.uuid4().hex[:5]}"
            raise ApiError(403, f'pods "{name}" is forbidden: violates PodSecurity "{level}:{version}": {detail}',
                           details={"name": name, "kind": "pods"})
