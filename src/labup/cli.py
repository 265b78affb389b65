"""The command line (DESIGN.md §1). Commands only: the work is in labup.runs.

Imports stay light here (typer and labup's own small modules) so `labup --help` is instant.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from labup import __version__
from labup.checks import CHECK_NAMES
from labup.options import Options
from labup.phases import PHASE_HELP, PHASE_NAMES, phases_help

app = typer.Typer(
    name="labup",
    help="Take a Talos homelab from 'Kubernetes is up' to 'HTTPS on a stable address', and prove it.",
    no_args_is_help=True,
    # typer's own completion: --install-completion / --show-completion (bash, zsh, fish), and
    # _LABUP_COMPLETE=complete_<shell> answered by the real console script (labup.entry)
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


DETAILED_HELP = ("exit 0 when there is nothing to do, 5 when changes are pending (or were made), 6 when "
                 "nothing is known to change but some state could not be read; errors keep 1-4")


DIFF_HELP = "show what each step changes or would change (the Talos patch, labels, Helm values); -v too"


def _names(names: tuple[str, ...], help_of: dict[str, str] | None = None) -> Callable[[str], list[tuple[str, str]]]:
    """Shell completion of a name, or of the last name of a comma list (`--only vip,he` -> `vip,helm`)."""
    def complete(incomplete: str) -> list[tuple[str, str]]:
        done, comma, last = incomplete.rpartition(",")
        given = set(done.split(","))
        return [(done + comma + name, _short(done + comma + name, (help_of or {}).get(name, ""))) for name in names
                if name.startswith(last) and name not in given]

    return complete


def _short(item: str, text: str, width: int = 78) -> str:
    """One line for a shell's completion menu: typer wraps `item<TAB>help` past 80 columns, which fish
    reads as more entries."""
    room = width - len(item) - 1
    return text if len(text) <= room else text[:room - 3].rstrip(" ,:(") + "..."


COMPLETE_PHASES = _names(PHASE_NAMES, PHASE_HELP)
COMPLETE_CHECKS = _names(CHECK_NAMES)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"labup {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    config: Annotated[Path | None, typer.Option(
        "-c", "--config", envvar="LABUP_CONFIG", help="lab.yaml to use [default: ./lab.yaml]",
        show_default=False)] = None,
    json_out: Annotated[bool, typer.Option(
        "--json", help="print one JSON document on stdout; human output stays on stderr")] = False,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="more detail (diffs, tool output)")] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="only errors and the summary")] = False,
    no_color: Annotated[bool, typer.Option("--no-color", help="plain text (NO_COLOR is honoured too)")] = False,
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="print the version and exit")] = False,
) -> None:
    if verbose and quiet:
        raise typer.BadParameter("-v/--verbose and -q/--quiet contradict each other: choose one")
    ctx.obj = Options(config=config or Path("lab.yaml"), json=json_out, verbose=verbose, quiet=quiet,
                      color=False if no_color else None)


def _finish(code: int) -> None:
    raise typer.Exit(code)


@app.command()
def init(
    ctx: typer.Context,
    directory: Annotated[str, typer.Argument(help="folder for the new lab.yaml (created), or - for stdout")]
    = ".",
    node: Annotated[list[str] | None, typer.Option(
        "--node", help="NAME=ADDRESS[:ROLE], repeatable (ROLE: controlplane or worker)")] = None,
    vip: Annotated[str | None, typer.Option("--vip", help="the VIP: a free address in the nodes' subnet")] = None,
    interface: Annotated[str | None, typer.Option("--interface", help="the control planes' link, e.g. ens18")]
    = None,
    domain: Annotated[list[str] | None, typer.Option("--domain", help="a domain for the certificate, repeatable")]
    = None,
    email: Annotated[str | None, typer.Option("--email", help="the Let's Encrypt account email")] = None,
    challenge: Annotated[str | None, typer.Option("--challenge", help="http (port 80) or tls (port 443)",
                                                  autocompletion=_names(("http", "tls")))] = None,
) -> None:
    """Write your lab.yaml: from the flags, asking on a terminal for what is missing (never overwrites)."""
    from labup import runs

    _finish(runs.init(ctx.obj, directory, {"nodes": node or [], "vip": vip, "interface": interface,
                                           "domains": runs.split_names(domain or []), "email": email,
                                           "challenge": challenge}))


@app.command()
def schema(ctx: typer.Context) -> None:
    """Print lab.yaml's JSON Schema, for editors (`labup init` writes it beside lab.yaml)."""
    from labup import runs

    _finish(runs.schema(ctx.obj))


@app.command()
def apply(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="read the lab and show the plan; change nothing")]
    = False,
    only: Annotated[list[str] | None, typer.Option(
        "--only", help="run only these phases (repeatable, or a comma list)",
        autocompletion=COMPLETE_PHASES)] = None,
    skip: Annotated[list[str] | None, typer.Option(
        "--skip", help="skip these phases (repeatable, or a comma list)", autocompletion=COMPLETE_PHASES)] = None,
    detailed_exitcode: Annotated[bool, typer.Option(
        "--detailed-exitcode", help=DETAILED_HELP)] = False,
    diff: Annotated[bool, typer.Option("--diff", help=DIFF_HELP)] = False,
) -> None:
    """Run every phase of the lab's topology in order (vip, helm, namespace, traefik; ha adds cert-manager)."""
    from labup import runs

    ctx.obj.diff = diff

    _finish(runs.apply(ctx.obj, dry_run=dry_run, only=only or [], skip=skip or [],
                       detailed_exitcode=detailed_exitcode))


@app.command(help="Run one phase. The phases, in order (a lab runs those of its topology):\n\n"
             + phases_help().replace("\n", "\n\n"))
def phase(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help=f"one of: {', '.join(PHASE_NAMES)}", show_default=False,
                                        autocompletion=COMPLETE_PHASES)],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="read and show the plan; change nothing")]
    = False,
    detailed_exitcode: Annotated[bool, typer.Option("--detailed-exitcode", help=DETAILED_HELP)] = False,
    diff: Annotated[bool, typer.Option("--diff", help=DIFF_HELP)] = False,
) -> None:
    from labup import runs

    ctx.obj.diff = diff

    _finish(runs.apply(ctx.obj, dry_run=dry_run, only=[name], skip=[], single=True,
                       detailed_exitcode=detailed_exitcode))


@app.command()
def verify(
    ctx: typer.Context,
    only: Annotated[list[str] | None, typer.Option(
        "--only", help=f"run only these checks (repeatable, or a comma list): {', '.join(CHECK_NAMES)}",
        autocompletion=COMPLETE_CHECKS)] = None,
    skip: Annotated[list[str] | None, typer.Option(
        "--skip", help="skip these checks (repeatable, or a comma list)", autocompletion=COMPLETE_CHECKS)] = None,
) -> None:
    """Prove it works: VIP ARP and holder, Traefik placement, HTTP redirect, certificate, PSA, release."""
    from labup import runs

    _finish(runs.verify(ctx.obj, only=only or [], skip=skip or []))


@app.command()
def status(
    ctx: typer.Context,
    watch: Annotated[bool, typer.Option("--watch", help="show it again every --interval seconds, until Ctrl-C")]
    = False,
    interval: Annotated[float, typer.Option("--interval", metavar="SECONDS", help="time between refreshes")] = 2.0,
) -> None:
    """Where everything is now: nodes, VIP holder, Traefik, release, certificate, last runs (read only)."""
    from labup import status_command

    _finish(status_command.main(ctx.obj, watch=watch, interval=interval))


@app.command()
def render(
    ctx: typer.Context,
    what: Annotated[str, typer.Argument(help="vip (the Talos patch per node), traefik or cert-manager (Helm values)",
                                        show_default=False, autocompletion=_names(("vip", "traefik", "cert-manager")))],
) -> None:
    """Print the exact Talos patch or Helm values labup would apply (offline)."""
    from labup import runs

    _finish(runs.render(ctx.obj, what))


@app.command()
def backup(
    ctx: typer.Context,
    out: Annotated[Path | None, typer.Option(
        "--out", help="write the backup to this new file [default: .labup/backups/acme-<UTC time>.json]",
        show_default=False)] = None,
) -> None:
    """Back up Traefik's certificates (acme.json) from the node that runs it; shows what they are."""
    from labup import runs

    _finish(runs.backup(ctx.obj, out))


@app.command()
def restore(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="a backup (`labup backup` wrote it)", show_default=False)],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show what it restores and replaces; change nothing")]
    = False,
    force: Annotated[bool, typer.Option("--force", help="restore a store for other domains or another resolver")]
    = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do it without a terminal (scripts, CI)")] = False,
) -> None:
    """Put a backed-up acme.json back on the node that runs Traefik, and restart Traefik to load it."""
    from labup import runs

    _finish(runs.restore(ctx.obj, path, dry_run=dry_run, force=force, yes=yes))


@app.command()
def rollback(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(
        help="undo only this phase [default: every phase, newest first]", show_default=False,
        autocompletion=COMPLETE_PHASES)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show what would be undone; change nothing")]
    = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do it without a terminal (scripts, CI)")] = False,
) -> None:
    """Undo what labup applied (from the journal), newest first."""
    from labup import runs

    _finish(runs.rollback(ctx.obj, name, dry_run=dry_run, yes=yes))


@app.command()
def version(ctx: typer.Context) -> None:
    """Print labup's version, the Traefik chart it pins, its default helm and the Talos it supports."""
    from labup import runs

    _finish(runs.version(ctx.obj))


# global options, and whether each takes a value: accepted after the subcommand too (kubectl, helm habit)
GLOBAL_OPTIONS = {"-c": True, "--config": True, "--json": False, "-v": False, "--verbose": False,
                  "-q": False, "--quiet": False, "--no-color": False}


def hoist_global_options(argv: list[str]) -> list[str]:
    """`labup apply -c lab.yaml --json` -> `labup -c lab.yaml --json apply`: click only reads an
    option before its command. Stops at `--`; leaves everything else in its order."""
    command_at = next((i for i, a in enumerate(argv) if not a.startswith("-") and
                       (i == 0 or not GLOBAL_OPTIONS.get(argv[i - 1], False))), None)
    if command_at is None:
        return argv
    head, rest, moved = argv[:command_at], [], []
    i = command_at
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest += argv[i:]
            break
        key = arg.split("=", 1)[0]
        if key in GLOBAL_OPTIONS and i > command_at:
            takes_value = GLOBAL_OPTIONS[key] and "=" not in arg
            moved += argv[i:i + 2] if takes_value else [arg]
            i += 2 if takes_value else 1
            continue
        rest.append(arg)
        i += 1
    return [*head, *moved, *rest]


def main() -> None:
    """Console entry point: usage errors exit 2 (click's own code), labup's errors their own."""
    import os

    try:
        app(args=hoist_global_options(sys.argv[1:]), prog_name="labup")
    except KeyboardInterrupt:  # Ctrl-C outside a run (e.g. while loading): nothing was started
        sys.stderr.write("labup: interrupted\n")
        sys.exit(1)
    except BrokenPipeError:  # `labup ... | head`: the reader left; end quietly, as cat does
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(141)
