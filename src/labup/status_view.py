"""`labup status` for people: one rich Tree (plain text without colour), then the placement verdict.

Everything from outside (names, reasons, issuers) goes through ui.clean and into rich as Text, never
as markup. Times are shown in the time zone of the reading's own clock (status.at), ages counted
from it, so a test that fixes `at` gets the same screen every time (tests/fixtures/status/).
"""

from __future__ import annotations

import datetime as dt
import io
from typing import TYPE_CHECKING, Any

from labup.ui import clean

if TYPE_CHECKING:
    from labup.status.model import Certificate, LabStatus, NodeView, Release, RunView

UNKNOWN = "magenta"
WARN_DAYS = 14  # as https-cert: under two weeks left, renewal has been failing
RUN_WIDTH = 88  # a run's line, without the tree's guides: one line at 100 columns


def render(status: LabStatus) -> Any:
    """The whole screen as one rich renderable."""
    from rich.console import Group
    from rich.tree import Tree

    said: set[str] = set()  # reasons already shown: a shared one (no kubeconfig) is said once
    tree = Tree(_text(_title(status), "bold"))
    _nodes(tree.add(_text("nodes", "bold")), status, said)
    tree.add(_label("Traefik", *_traefik(status, said)))
    tree.add(_label("release", *_release(status, said)))
    tree.add(_label("certificate", *_certificate(status, said)))
    tree.add(_label("Pod Security", *_psa(status, said)))
    _runs(tree, status, said)
    placement = status.placement()
    if placement.paradox:
        verdict = _text(f"!! {placement.summary}", "bold red")
    elif placement.paradox is False:
        verdict = _text(f"ok: {placement.summary}", "green")
    else:
        verdict = _text(f"?? {placement.summary}", UNKNOWN)
    return Group(tree, verdict)


def to_text(status: LabStatus, width: int = 100) -> str:
    """The screen as plain text at `width` columns (what --no-color prints; the test snapshot)."""
    from rich.console import Console

    out = io.StringIO()
    Console(file=out, width=width, color_system=None, force_terminal=False, highlight=False, emoji=False,
            legacy_windows=False).print(render(status))
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines()) + "\n"


# -- parts ----------------------------------------------------------------------------------------


def _title(status: LabStatus) -> str:
    holder = status.holder
    where = (f"on {holder.value}" if holder.value else "held by no node") if holder.unknown is None \
        else "holder unknown"
    at = f"{_clock(status.at, status)} {status.at.tzname() or ''}".rstrip()
    return f"{status.lab} · VIP {status.vip} {where} · {at}, read in {status.seconds:.1f}s"


def _nodes(branch: Any, status: LabStatus, said: set[str]) -> None:
    nodes = status.nodes
    widths = [max((len(v) for v in column), default=0) for column in zip(*(_columns(n) for n in nodes), strict=True)]
    shared_talos = _shared(n.talos_unknown for n in nodes)
    shared_ready = _shared(n.ready_unknown for n in nodes)
    for node in nodes:
        cells = [c.ljust(w) for c, w in zip(_columns(node), widths, strict=True)]
        line = _text("  ".join(cells))
        for mark, style in _marks(node, status):
            line.append("  ")
            line.append(clean(mark), style=style)
        child = branch.add(line)
        if node.talos_unknown and not shared_talos:
            child.add(_text(f"Talos: {_unknown(node.talos_unknown, said)}", UNKNOWN))
        if node.ready_unknown and not shared_ready:
            child.add(_text(f"Kubernetes: {_unknown(node.ready_unknown, said)}", UNKNOWN))
    if shared_talos:
        branch.add(_text(f"Talos: {_unknown(shared_talos, said)}", UNKNOWN))
    if shared_ready:
        branch.add(_text(f"Kubernetes: {_unknown(shared_ready, said)}", UNKNOWN))


def _columns(node: NodeView) -> list[str]:
    talos = f"Talos {node.talos_version}" if node.talos_version else "Talos ?"
    ready = "Ready ?" if node.ready is None else ("Ready" if node.ready else "NotReady")
    return [clean(node.name), node.role, node.address, clean(talos), ready]


def _marks(node: NodeView, status: LabStatus) -> list[tuple[str, str]]:
    marks = [("[VIP]", "bold cyan")] if node.holds_vip else []
    for pod in status.pods_on(node.name):
        marks.append(("[Traefik ready]", "green") if pod.ready else (f"[Traefik {pod.phase}, not ready]", "yellow"))
    return marks


def _shared(reasons: Any) -> str | None:
    """The one reason every node shares (talosctl missing, no kubeconfig): said once."""
    found = list(reasons)
    return found[0] if found and found[0] and all(r == found[0] for r in found) and len(found) > 1 else None


def _traefik(status: LabStatus, said: set[str]) -> tuple[str, str | None]:
    part, ns = status.traefik, status.traefik_namespace
    if part.unknown is not None:
        return f"namespace {ns}: {_unknown(part.unknown, said)}", UNKNOWN
    pods = part.value or ()
    if not pods:
        return f"namespace {ns}: no Traefik pod", "yellow"
    ready = sorted({p.node or "?" for p in pods if p.ready})
    other = [f"{p.name} {p.phase} on {p.node or 'no node yet'}" for p in pods if not p.ready]
    said = [f"ready on {', '.join(ready)}"] if ready else []
    said += [f"not ready: {', '.join(other)}"] if other else []
    count = f"{len(pods)} pod" + ("s" if len(pods) > 1 else "")
    return f"namespace {ns}: {count}, {'; '.join(said)}", None if not other else "yellow"


def _release(status: LabStatus, said: set[str]) -> tuple[str, str | None]:
    part = status.release
    if part.unknown is not None:
        return f"{status.release_name}: {_unknown(part.unknown, said)}", UNKNOWN
    r: Release | None = part.value
    if r is None or r.revision is None:
        return f"no release {status.release_name} in namespace {status.traefik_namespace}", "yellow"
    when = f" {_when(r.deployed_at, status)}" if r.deployed_at else ""
    return (f"{r.name}: {r.chart} (app {r.app_version}), revision {r.revision} {r.status}{when}",
            None if r.status == "deployed" else "yellow")


def _certificate(status: LabStatus, said: set[str]) -> tuple[str, str | None]:
    part = status.certificate
    if part.unknown is not None:
        return f"{status.domain}: {_unknown(part.unknown, said)}", UNKNOWN
    c: Certificate | None = part.value
    assert c is not None
    days = c.days_left(status.at)
    until = f"{c.not_after.astimezone(status.at.tzinfo):%Y-%m-%d}"
    left = f"{days} days left, to {until}" if days >= 0 else f"expired {-days} day(s) ago, on {until}"
    if c.traefik_default:
        return f"{c.domain}: Traefik's self-signed default certificate: ACME has delivered none yet", "red"
    if c.staging:
        return f"{c.domain}: {c.issuer} (staging, not trusted), {left}", "yellow"
    if not c.verified:
        return f"{c.domain}: {c.issuer} (does not verify: {c.verify_error}), {left}", "red"
    style = "red" if days < 0 else "yellow" if days < WARN_DAYS else None
    return f"{c.domain}: {c.issuer} (production, trusted), {left}", style


def _psa(status: LabStatus, said: set[str]) -> tuple[str, str | None]:
    part, ns = status.namespace, status.traefik_namespace
    if part.unknown is not None:
        return f"namespace {ns}: {_unknown(part.unknown, said)}", UNKNOWN
    assert part.value is not None
    if not part.value.exists:
        return f"namespace {ns} does not exist", "yellow"
    levels = [f"{mode}={part.value.psa(mode)}" for mode in ("enforce", "audit", "warn") if part.value.psa(mode)]
    if not part.value.psa("enforce"):
        return f"namespace {ns}: enforce unset (the cluster's default applies) {' '.join(levels)}".rstrip(), "yellow"
    return f"namespace {ns}: {', '.join(levels)}", None


def _runs(tree: Any, status: LabStatus, said: set[str]) -> None:
    part = status.runs
    if part.unknown is not None:
        tree.add(_label("last runs", _unknown(part.unknown, said), UNKNOWN))
        return
    runs = part.value or ()
    if not runs:
        tree.add(_label("last runs", "none in the journal yet", "dim"))
        return
    branch = tree.add(_text("last runs", "bold"))
    whens = [f"{_clock(r.at, status)}  {age(status.at - r.at)}" if r.at else "?" for r in runs]
    width = (max(map(len, whens)), max(len(clean(r.command)) for r in runs))
    for run, when in zip(runs, whens, strict=True):
        branch.add(_run(run, when, width))


def _run(run: RunView, when: str, width: tuple[int, int]) -> Any:
    line = _text(when.ljust(width[0]) + "  ", "dim")
    line.append(clean(run.command).ljust(width[1]) + "  ")
    outcome = run.outcome + (f": {run.error}" if run.error and run.exit_code else "")
    room = max(RUN_WIDTH - len(line), 20)  # one line a run: the journal has the whole error
    outcome = outcome if len(outcome) <= room else outcome[: room - 1] + "…"
    line.append(clean(outcome), style="green" if run.exit_code == 0 else UNKNOWN if run.exit_code is None else "red")
    return line


# -- plumbing -------------------------------------------------------------------------------------


def _when(when: dt.datetime, status: LabStatus) -> str:
    """`2026-05-04 10:00 (2h ago)`, in the reading's time zone (the title names it)."""
    return f"{_clock(when, status)} ({age(status.at - when)})"


def _clock(when: dt.datetime, status: LabStatus) -> str:
    return f"{when.astimezone(status.at.tzinfo):%Y-%m-%d %H:%M}"


def age(delta: dt.timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds < 60:
        return "just now"
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return "just now"


def _text(text: str, style: str = "") -> Any:
    from rich.text import Text

    return Text(clean(text), style=style)


def _label(name: str, text: str, style: str | None) -> Any:
    line = _text(f"{name}  ", "bold")
    line.append(clean(text), style=style or "")
    return line


def _unknown(reason: str, said: set[str]) -> str:
    """`unknown (reason)`, or `unknown (as above)` for a reason already on the screen."""
    shown = "as above" if reason in said else reason
    said.add(reason)
    return f"unknown ({shown})"
