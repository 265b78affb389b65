"""The structure of src/labup, from its imports: no import circles, and every arrow goes down the layers.

Every import counts: at the top, inside functions (lazy, for speed) and under TYPE_CHECKING (a type is
still a dependency). Layers, from the bottom:

    base        errors, redact, yamlsafe, validators, config, labschema, resources, warmup (lab.yaml, plain
                helpers)
    engine      engine/*: steps, runner, journal, lock; knows nothing of Talos, Helm or Kubernetes
    adapters    adapters/*: the only code that runs a tool or opens a socket
    facts       facts/*: per-run snapshots of what the adapters read
    domain      vip/, helmsetup/, namespace/, certmanager/, traefik/, checks/, certbackup/: each phase's
                steps and what they know
    phases      phases/*: one thin module per phase: its story, steps(ctx) from its domain package, PHASE
    commands    cli, runs, options, entry, targets, initlab, ui, verify_command: the command line, its output
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = "labup"

LAYERS = ("base", "engine", "adapters", "facts", "domain", "phases", "commands")
PACKAGES = {"engine": "engine", "adapters": "adapters", "facts": "facts", "vip": "domain", "traefik": "domain",
            "checks": "domain", "helmsetup": "domain", "namespace": "domain", "certbackup": "domain",
            "certmanager": "domain", "status": "domain", "phases": "phases"}
BASE = {"errors", "redact", "yamlsafe", "validators", "config", "resources", "warmup", "labschema"}
COMMANDS = {"cli", "runs", "options", "entry", "targets", "initlab", "ui", "verify_command", "backup_command",
            "restore_command", "status_command", "status_view", "__main__"}


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "base"  # the package itself
    first = parts[1]
    if first in PACKAGES:
        return PACKAGES[first]
    if first in BASE:
        return "base"
    if first in COMMANDS:
        return "commands"
    raise AssertionError(f"{module}: no layer for it; add it to tests/test_architecture.py")


def modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / ROOT).rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The labup modules this one imports, anywhere in it (a `from X import Y` of a module Y counts Y)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            out.add(target)
            out |= {f"{target}.{alias.name}" for alias in node.names}
    return {m for m in out if m in known and m != name}


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(name, path, set(found)) for name, path in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_import_circles() -> None:
    assert cycles(graph()) == []


def test_every_import_goes_down_the_layers_or_stays_in_its_own() -> None:
    wrong = []
    for module, targets in sorted(graph().items()):
        mine = LAYERS.index(layer_of(module))
        for target in sorted(targets):
            if LAYERS.index(layer_of(target)) > mine:
                wrong.append(f"{module} ({layer_of(module)}) imports {target} ({layer_of(target)})")
    assert wrong == []


def test_domain_packages_do_not_import_each_other_except_through_facts() -> None:
    """vip, traefik and checks are peers: one may use another's small parts, but never in a circle
    (covered above); this pins down who may use whom today so a new arrow is a decision."""
    # certbackup judges certificates like https-cert (certinfo), and the acme-backup check reads backups;
    # certmanager validates and installs its chart with traefik's pin, schema and release helpers; back
    # in topology single, traefik removes cert-manager's objects (certmanager.objects); certmanager carries
    # a backed-up certificate over into cert-manager's Secret; status reads with verify's engine and
    # readers (kube facts, VIP link, certinfo), judging nothing
    allowed = {("checks", "traefik"), ("traefik", "checks"), ("traefik", "vip"), ("certbackup", "checks"),
               ("checks", "certbackup"), ("certmanager", "traefik"), ("traefik", "certmanager"),
               ("certmanager", "certbackup"), ("status", "checks")}
    seen = set()
    for module, targets in graph().items():
        if layer_of(module) != "domain":
            continue
        for target in targets:
            if layer_of(target) == "domain" and module.split(".")[1] != target.split(".")[1]:
                seen.add((module.split(".")[1], target.split(".")[1]))
    assert seen <= allowed, seen - allowed


def test_the_walker_sees_lazy_and_type_only_imports() -> None:
    edges = graph()
    assert "labup.engine.model" in edges["labup.phases.vip"]  # top-level
    assert "labup.vip.steps" in edges["labup.phases.vip"]  # inside a function
    assert "labup.config" in edges["labup.engine.context"]  # under TYPE_CHECKING or not, counted
