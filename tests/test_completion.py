"""Shell completion (issue 16, part 3): typer's own mechanism, answered by the real console script
(labup.entry, whose fast help path must not answer a shell's question) for bash, zsh and fish: phase names
(`phase NAME`, `rollback NAME`, apply's --only/--skip, comma lists too), check names (verify's
--only/--skip). The bash script is sourced and run by a real bash; zsh and fish (not installed here) get
the exact protocol their scripts speak (_TYPER_COMPLETE_ARGS, _TYPER_COMPLETE_FISH_ACTION)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from labup.checks import CHECK_NAMES
from labup.phases import PHASE_NAMES

from conftest import LABUP

BASH = shutil.which("bash")


def ask(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The real `labup`, as a shell's completion script runs it: no arguments, the question in `env`."""
    full = {**os.environ, "NO_COLOR": "1", **env}
    return subprocess.run([LABUP], capture_output=True, text=True, env=full, timeout=60, check=False)


def bash_words(line: str) -> list[str]:
    """What bash's script sends for the command line `line` (completing its last word)."""
    words = line.split(" ")
    run = ask({"_LABUP_COMPLETE": "complete_bash", "COMP_WORDS": line, "COMP_CWORD": str(len(words) - 1)})
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    return run.stdout.split()


@pytest.mark.parametrize("line, expected", [
    ("labup phase ", list(PHASE_NAMES)),
    ("labup phase he", ["helm"]),
    ("labup rollback ", list(PHASE_NAMES)),
    ("labup apply --only ", list(PHASE_NAMES)),
    ("labup apply --skip tr", ["traefik"]),
    ("labup apply --only vip,h", ["vip,helm"]),  # a comma list: its last name, without those given
    ("labup apply --dry-run --only vip,helm,", ["vip,helm,namespace", "vip,helm,cert-manager", "vip,helm,traefik",
                                              "vip,helm,verify"]),
    ("labup -c lab.yaml apply --only ", list(PHASE_NAMES)),
    ("labup apply -c lab.yaml --skip ", list(PHASE_NAMES)),  # a global option after the command
    ("labup phase --dry-run ", list(PHASE_NAMES)),
    ("labup verify --only ", list(CHECK_NAMES)),
    ("labup verify --skip vip-", ["vip-arp", "vip-holder"]),
    ("labup --json verify --only https-cert,", [f"https-cert,{c}" for c in CHECK_NAMES if c != "https-cert"]),
    ("labup render ", ["vip", "traefik", "cert-manager"]),
    ("labup init --challenge ", ["http", "tls"]),
])
def test_bash_protocol_completes_phase_and_check_names(line: str, expected: list[str]) -> None:
    assert bash_words(line) == expected


def test_bash_protocol_completes_commands() -> None:
    commands = bash_words("labup ")
    assert {"init", "schema", "apply", "phase", "verify", "render", "rollback"} <= set(commands)
    assert bash_words("labup ro") == ["rollback"]


def test_zsh_protocol_completes_names_with_their_help() -> None:
    run = ask({"_LABUP_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "labup phase "})
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("_arguments '*: :((")
    for name in PHASE_NAMES:
        assert f'"{name}":"' in run.stdout  # with the phase's own help line
    assert "checksum-verified" in run.stdout
    checks = ask({"_LABUP_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "labup verify --only vip"})
    assert '"vip-arp"' in checks.stdout and '"vip-holder"' in checks.stdout and "https-cert" not in checks.stdout


def test_fish_protocol_completes_names() -> None:
    env = {"_LABUP_COMPLETE": "complete_fish", "_TYPER_COMPLETE_FISH_ACTION": "get-args"}
    phases = ask({**env, "_TYPER_COMPLETE_ARGS": "labup apply --skip "})
    assert [line.split("\t")[0] for line in phases.stdout.splitlines()] == list(PHASE_NAMES)
    checks = ask({**env, "_TYPER_COMPLETE_ARGS": "labup verify --only "})
    assert [line.split("\t")[0] for line in checks.stdout.splitlines()] == list(CHECK_NAMES)
    # fish asks first whether there are arguments to offer (exit 0) before it asks for them
    is_args = ask({**env, "_TYPER_COMPLETE_FISH_ACTION": "is-args", "_TYPER_COMPLETE_ARGS": "labup rollback "})
    assert is_args.returncode == 0


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_each_shells_script_is_printed(shell: str) -> None:
    # click's style (`_LABUP_COMPLETE=source_<shell> labup`) names the shell; --show-completion detects it
    run = ask({"_LABUP_COMPLETE": f"source_{shell}"})
    assert run.returncode == 0, run.stderr
    assert f"_LABUP_COMPLETE=complete_{shell}" in run.stdout
    assert {"bash": "complete -o default -F _labup_completion labup", "zsh": "compdef _labup_completion labup",
            "fish": "complete --command labup"}[shell] in run.stdout
    shown = subprocess.run([LABUP, "--show-completion", shell], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}, check=False)
    assert shown.returncode == 0 and shown.stdout.strip() == run.stdout.strip(), shown.stderr


@pytest.mark.skipif(BASH is None, reason="bash is not installed")
def test_bash_sources_the_script_and_completes(tmp_path: Path) -> None:
    """A real bash: `--show-completion` detects it, the script is sourced, and its function (which runs
    the labup found on PATH) fills COMPREPLY."""
    script = """
        source <(labup --show-completion) || exit 9
        complete -p labup || exit 8
        COMP_WORDS=(labup verify --only ""); COMP_CWORD=3; _labup_completion labup
        printf '%s\\n' "${COMPREPLY[@]}"
        echo ---
        COMP_WORDS=(labup phase ""); COMP_CWORD=2; _labup_completion labup
        printf '%s\\n' "${COMPREPLY[@]}"
    """
    env = {**os.environ, "PATH": f"{Path(LABUP).parent}:{os.environ['PATH']}", "HOME": str(tmp_path)}
    env.pop("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", None)
    run = subprocess.run([BASH, "--norc", "--noprofile", "-c", script], capture_output=True, text=True, env=env,
                         timeout=60, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    checks, phases = run.stdout.split("---\n")
    assert checks.splitlines()[-len(CHECK_NAMES):] == list(CHECK_NAMES)
    assert phases.splitlines() == list(PHASE_NAMES)


@pytest.mark.skipif(BASH is None, reason="bash is not installed")
def test_install_completion_writes_the_bash_script_into_home(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(LABUP).parent}:{os.environ['PATH']}", "HOME": str(tmp_path)}
    run = subprocess.run([BASH, "--norc", "--noprofile", "-c", "labup --install-completion"], capture_output=True,
                         text=True, env=env, timeout=60, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    installed = tmp_path / ".bash_completions" / "labup.sh"
    assert "_LABUP_COMPLETE=complete_bash" in installed.read_text()
    assert f"source '{installed}'" in (tmp_path / ".bashrc").read_text()


def test_labup_alone_still_prints_the_help() -> None:
    run = subprocess.run([LABUP], capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0 and run.stdout.startswith("Usage: labup")
