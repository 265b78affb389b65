"""The namespace phase's step: Traefik's namespace, labelled Pod Security privileged (that namespace
only), created when missing; undo restores the labels or deletes the namespace labup created and
nothing else (see labup.phases.namespace for the phase's story)."""

from __future__ import annotations

import contextlib
import uuid
from typing import TYPE_CHECKING, Any

from labup.adapters.kube import (
    KubeAdapter,
    KubeConflict,
    annotations_of,
    is_terminating,
    labels_of,
    read,
)
from labup.adapters.kube import shared as kube
from labup.config import SYSTEM_NAMESPACES
from labup.engine.model import Observation, Step
from labup.errors import PermanentError, PreflightError, TransientError
from labup.facts.kube import kube_reads

if TYPE_CHECKING:

    from labup.engine.context import Context

PSA = "pod-security.kubernetes.io"
LEVEL = "privileged"
MODES = ("enforce", "audit", "warn")
WANTED: dict[str, str] = {f"{PSA}/{mode}": LEVEL for mode in MODES}
CREATED_BY = "labup/created-by"  # annotation on a namespace labup created: rollback deletes only that one


def refuse_system_namespace(name: str) -> None:
    """lab.yaml validation refuses these already; this guard keeps any other path from labelling one."""
    if name in SYSTEM_NAMESPACES:
        raise PreflightError(
            f"refusing to label the system namespace {name} privileged: that would let any pod there "
            "use the host's network, PIDs and devices, weakening Pod Security for system workloads",
            hint="set traefik.namespace to a namespace of its own (default: traefik)")


class PrivilegedNamespace(Step):
    name = "pod-security"

    def __init__(self, ctx: Context) -> None:
        self.namespace = ctx.lab.traefik.namespace  # no I/O: `labup rollback` builds steps to undo

    # -- read -------------------------------------------------------------------------------------

    def preflight(self, ctx: Context) -> None:
        refuse_system_namespace(self.namespace)
        k = kube(ctx)
        k.check_config()  # no kubeconfig: Unreadable (dry-run: unknown; apply: stops here)
        # One read now, so refused credentials or a missing `get` stop an apply before any phase
        # writes. An unreachable API is not judged here (the kubeconfig may name the VIP, which the
        # vip phase brings up): observe() retries and decides.
        # The answer is the run's reading of the namespace (observe and verify use it too).
        with contextlib.suppress(TransientError):
            kube_reads(ctx.shared).namespace(k, self.namespace)

    def observe(self, ctx: Context) -> Observation:
        k = kube(ctx)
        reads = kube_reads(ctx.shared)
        live = read(ctx, lambda: reads.namespace(k, self.namespace), f"read namespace {self.namespace}")
        ns = self.namespace
        if live is None:
            return Observation(
                False, f"namespace {ns} is absent: create it, pod-security {LEVEL} ({', '.join(MODES)})",
                diff=label_diff(ns, {}, exists=False),
                # drawn now so a retried create (its first answer lost) recognises its own namespace
                data={"exists": False, "marker": f"{ctx.lab.name}/{uuid.uuid4().hex[:12]}"})
        if is_terminating(live):
            raise PermanentError(f"namespace {ns} is being deleted (Terminating): labup cannot use it now",
                                 hint=f"wait until `kubectl get namespace {ns}` finds nothing, then run again")
        current = {key: labels_of(live).get(key) for key in WANTED}
        if current == WANTED:
            return Observation(True, f"namespace {ns} is pod-security {LEVEL} ({', '.join(MODES)})")
        shown = ", ".join(f"{key.rpartition('/')[2]}={value or '(unset)'}" for key, value in current.items())
        return Observation(False, f"namespace {ns} has {shown}: label it {LEVEL}",
                           diff=label_diff(ns, current, exists=True),
                           data={"exists": True, "labels": current})

    # -- write ------------------------------------------------------------------------------------

    def offline_plan(self, ctx: Context) -> str | None:
        return label_diff(self.namespace, {}, exists=True)

    def apply(self, ctx: Context, seen: Observation) -> dict[str, Any]:
        refuse_system_namespace(self.namespace)
        try:
            return self._apply(kube(ctx), seen)
        finally:  # whatever got written: the check after the change, and verify, read it afresh
            kube_reads(ctx.shared).forget_namespace(self.namespace)

    def _apply(self, k: KubeAdapter, seen: Observation) -> dict[str, Any]:
        if seen.data["exists"]:
            k.patch_namespace_labels(self.namespace, WANTED)
            return {"namespace": self.namespace, "created": False, "before": seen.data["labels"]}
        marker = seen.data["marker"]
        try:
            created = k.create_namespace(self.namespace, labels=WANTED, annotations={CREATED_BY: marker})
        except KubeConflict:
            created = k.get_namespace(self.namespace)
            if created is None:
                raise TransientError(f"namespace {self.namespace} appeared and vanished meanwhile") from None
            if annotations_of(created).get(CREATED_BY) != marker:
                # someone else created it since observe(): label theirs, never claim it as labup's
                before = {key: labels_of(created).get(key) for key in WANTED}
                k.patch_namespace_labels(self.namespace, WANTED)
                return {"namespace": self.namespace, "created": False, "before": before}
            # else: our own create landed on an earlier attempt whose answer was lost
        uid = (created.get("metadata") or {}).get("uid")
        return {"namespace": self.namespace, "created": True, "marker": marker, "uid": uid}

    def owns(self, ctx: Context, data: dict[str, Any]) -> str | None:
        if data.get("namespace") != self.namespace:
            return f"it names namespace {data.get('namespace')!r}, not this lab's {self.namespace} (traefik.namespace)"
        if data.get("created") and not str(data.get("marker", "")).startswith(f"{ctx.lab.name}/"):
            return "its creation marker is not this lab's"
        return None

    def undo(self, ctx: Context, data: dict[str, Any]) -> str:
        ns = str(data["namespace"])  # checked by owns(): this lab's namespace
        k = kube(ctx)
        try:
            live = k.get_namespace(ns)  # read now: the undo decides on the live namespace
            if live is None:
                return f"namespace {ns} is already gone"
            if data.get("created"):
                return _undo_create(k, ns, live, data)
            return _restore_labels(k, ns, live, data.get("before") or {})
        finally:
            kube_reads(ctx.shared).forget_namespace(ns)


def _restore_labels(k: KubeAdapter, ns: str, live: dict[str, Any], before: dict[str, str | None]) -> str:
    """Put each PSA label back as it was (or remove it), unless someone changed it after labup."""
    now = labels_of(live)
    patch: dict[str, str | None] = {}
    kept: list[str] = []
    for key, old in before.items():
        if now.get(key) == old:
            continue  # already as it was
        if now.get(key) != WANTED.get(key):
            kept.append(f"{key}={now.get(key) or '(unset)'}")  # changed since labup set it: theirs now
            continue
        patch[key] = old
    if patch:
        k.patch_namespace_labels(ns, patch)
    restored = ", ".join(f"{key.rpartition('/')[2]}={old}" if old is not None
                         else f"{key.rpartition('/')[2]} removed" for key, old in patch.items())
    text = (f"restored namespace {ns}'s labels ({restored})" if patch
            else f"namespace {ns}'s labels were already as before")
    if kept:
        text += f"; left {', '.join(kept)}: changed since labup set it"
    return text


def _undo_create(k: KubeAdapter, ns: str, live: dict[str, Any], data: dict[str, Any]) -> str:
    if annotations_of(live).get(CREATED_BY) != data.get("marker"):
        return f"left namespace {ns} alone: it is not the one labup created (deleted and made again since)"
    if is_terminating(live):
        return f"namespace {ns} is already being deleted"
    if ns in SYSTEM_NAMESPACES:  # unreachable (labup never creates one); a delete must never be
        raise PermanentError(f"refusing to delete the system namespace {ns}")
    contents = k.namespace_contents(ns)
    if contents.found:
        shown = ", ".join(contents.found[:5]) + (f" (+{len(contents.found) - 5} more)" if len(contents.found) > 5
                                                 else "")
        return (f"left namespace {ns} in place, with its labels: labup created it, but it now holds {shown}; "
                f"once that is no longer needed: `kubectl delete namespace {ns}`")
    if contents.unchecked:
        # not known to be empty: never guess with a delete; the journal keeps this undo for later
        raise PermanentError(f"cannot tell whether namespace {ns} (created by labup) is empty: could not "
                             f"list {'; '.join(contents.unchecked[:3])}; left it in place",
                             hint=f"check `kubectl get all -n {ns}` and delete it by hand, or run "
                                  "`labup rollback namespace` again when those APIs answer")
    if not k.delete_namespace(ns, uid=data.get("uid")):
        return f"namespace {ns} is already gone"
    return f"deleted namespace {ns} (labup created it; it was empty)"


def label_diff(ns: str, current: dict[str, str | None], *, exists: bool) -> str:
    """The labels that change, before (-) and after (+); other labels are untouched."""
    lines = [f"namespace/{ns} metadata.labels (the others stay as they are):" if exists
             else f"+ namespace/{ns} (annotated {CREATED_BY}: rollback deletes it while empty)"]
    for key, value in WANTED.items():
        old = current.get(key)
        if old == value:
            continue
        if old is not None:
            lines.append(f"- {key}: {old}")
        lines.append(f"+ {key}: {value}")
    return "\n".join(lines)

