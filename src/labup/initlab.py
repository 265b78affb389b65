"""`labup init`: write the user's lab.yaml from the facts they give (flags, or answers on a terminal).

The commented example (examples/lab.yaml) is the template (its opening comment replaced by the
yaml-language-server modeline and a line of init's own): its facts (nodes, VIP, interface, domains,
email, challenge) are replaced by the user's, every other line and comment kept. A fact nobody gave
becomes a `CHANGE-ME` placeholder that fails validation until edited, so a half-written lab can never
be applied by mistake.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field

from labup.config import PLACEHOLDER
from labup.errors import UsageError
from labup.resources import SCHEMA_NAME

# the first line: editors with the YAML language server (VS Code, Neovim, Helix...) check and complete
# lab.yaml against the schema init writes beside it (offline; `labup schema` prints it again)
MODELINE = f"# yaml-language-server: $schema={SCHEMA_NAME}"


@dataclass
class Facts:
    nodes: list[tuple[str, str, str]] = field(default_factory=list)  # (name, address, role)
    vip: str | None = None
    interface: str | None = None
    domains: list[str] = field(default_factory=list)
    email: str | None = None
    challenge: str | None = None


def from_flags(nodes: list[str], vip: str | None, interface: str | None, domains: list[str], email: str | None,
               challenge: str | None) -> Facts:
    """The facts given on the command line, checked (see `validate`)."""
    return validate(Facts(nodes=[parse_node(n) for n in nodes], vip=vip, interface=interface, domains=domains,
                          email=email, challenge=challenge))


def validate(facts: Facts) -> Facts:
    """Each fact checked as lab.yaml would check it (exit 2 naming the flag): a value is written into
    YAML, so nothing unchecked may reach it (a newline in a name would add a node)."""
    from labup import validators as check

    problems = []
    for name, address, _ in facts.nodes:
        problems += [("--node", check.dns_subdomain(name)), ("--node", check.ip_address(address))]
    problems += [("--vip", facts.vip and check.ip_address(facts.vip)),
                 ("--interface", facts.interface and check.interface_name(facts.interface)),
                 ("--email", facts.email and check.email(facts.email)),
                 ("--challenge", facts.challenge and (None if facts.challenge in ("http", "tls") else
                                                      f"'{facts.challenge}' is not http or tls"))]
    problems += [("--domain", check.domain(d)) for d in facts.domains]
    for flag, problem in problems:
        if problem:
            raise UsageError(f"{flag}: {problem}")
    return facts


def parse_node(spec: str) -> tuple[str, str, str]:
    """`NAME=ADDRESS[:ROLE]` (an IPv6 address in brackets: `cp-1=[2001:db8::10]:controlplane`)."""
    name, sep, rest = spec.partition("=")
    if not sep or not name or not rest:
        raise UsageError(f"--node '{spec}': expected NAME=ADDRESS[:ROLE]",
                         hint="e.g. --node cp-1=192.0.2.10:controlplane --node wk-1=192.0.2.11:worker")
    if rest.startswith("["):
        address, _, tail = rest[1:].partition("]")
        role = tail.lstrip(":") or "controlplane"
    elif rest.count(":") == 1:
        address, role = rest.split(":")
    else:
        address, role = rest, "controlplane"
    if role not in ("controlplane", "worker"):
        raise UsageError(f"--node '{spec}': role '{role}' is not controlplane or worker")
    return name, address, role


def ask_missing(facts: Facts) -> Facts:
    """On a terminal, ask for what the flags did not give."""
    def ask(question: str, default: str | None = None) -> str:
        shown = f" [{default}]" if default else ""
        sys.stderr.write(f"{question}{shown}: ")
        sys.stderr.flush()
        answer = sys.stdin.readline().strip()
        return answer or default or ""

    if not facts.nodes:
        while True:
            spec = ask("a node as NAME=ADDRESS[:ROLE] (empty line: done)")
            if not spec:
                break
            facts.nodes.append(parse_node(spec))
    facts.vip = facts.vip or ask("the VIP (a free address in the control planes' subnet)") or None
    facts.interface = facts.interface or ask("the control planes' link", "ens18")
    if not facts.domains:
        facts.domains = [d for d in ask("domains for the certificate (comma separated)").split(",") if d.strip()]
    facts.email = facts.email or ask("Let's Encrypt account email") or None
    facts.challenge = facts.challenge or ask("ACME challenge (http or tls)", "http")
    return validate(facts)


def render(example: str, facts: Facts) -> str:
    """The example with the user's facts in place of its own (placeholders for what is missing)."""
    nodes = facts.nodes or [(PLACEHOLDER.lower(), PLACEHOLDER, "controlplane")]
    node_block = "nodes:                           # required: every Talos node labup may touch\n" + "".join(
        f"  - name: {name}\n    address: {_scalar(address)}\n    role: {role}\n" for name, address, role in nodes)
    text = re.sub(r"(?ms)^nodes:.*?(?=^\S)", node_block + "\n", example, count=1)
    text = _set(text, r"name: \S+", "name: lab")
    text = _set(text, r"^  address: \S+", f"  address: {_scalar(facts.vip or PLACEHOLDER)}")
    text = _set(text, r"^  interface: \S+", f"  interface: {facts.interface or 'ens18'}")
    domains = ", ".join(facts.domains) if facts.domains else PLACEHOLDER
    text = _set(text, r"^  domains: \[[^\]]*\]", f"  domains: [{domains}]")
    text = _set(text, r"^    email: \S+", f"    email: {facts.email or PLACEHOLDER}")
    text = _set(text, r"^    challenge: \S+", f"    challenge: {facts.challenge or 'http'}")
    head = (MODELINE + "\n" + "# lab.yaml written by `labup init`" + (": replace every CHANGE-ME before `labup apply`"
                                                    if PLACEHOLDER in text else "") + "\n")
    return head + re.sub(r"(?s)^(#[^\n]*\n)+", "", text, count=1)


def _set(text: str, pattern: str, line: str) -> str:
    """Replace the first line matching `pattern` (up to its comment) by `line`, the comment kept in its column."""
    found = re.search(f"(?m)^(?P<code>{pattern})(?P<pad>[ ]*)(?P<comment>#.*)?$", text)
    if found is None:
        raise RuntimeError(f"the example lab has no line matching {pattern}")
    comment = found.group("comment") or ""
    if comment:
        column = len(found.group("code")) + len(found.group("pad"))
        line = line.ljust(column) if len(line) < column else line + " "
    return text[:found.start()] + line + comment + text[found.end():]


def _scalar(value: str) -> str:
    return f"'{value}'" if ":" in value else value
