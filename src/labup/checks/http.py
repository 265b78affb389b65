"""http-redirect: plain HTTP on the VIP answers with a permanent redirect to https://<domain>/.

Connection refused here is wall 5, the connection paradox: the VIP answers ARP, so some node holds it,
but nothing listens on port 80 on that node because Traefik runs elsewhere.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from labup.checks.model import FAIL, PASS, CheckContext, CheckResult

if TYPE_CHECKING:
    from labup.adapters.net import HttpAnswer

PERMANENT = (301, 308)


def http_redirect(ctx: CheckContext) -> CheckResult:
    from labup.adapters import net

    lab = ctx.lab
    vip, domain = lab.vip.address, lab.traefik.domains[0]
    data: dict[str, Any] = {"url": f"http://{vip}/", "host": domain}
    try:
        answer = net.http_get(vip, domain, ctx.remaining())
    except ConnectionRefusedError:
        return paradox(ctx, 80, "http-redirect", data)
    except TimeoutError:
        return silence(ctx, 80, "http-redirect", data)
    except OSError as exc:
        return CheckResult("http-redirect", FAIL, f"cannot reach {vip}:80: {_os_error(exc)}",
                           hint=_unreachable_hint(exc), data=data)
    except Exception as exc:  # http.client's protocol errors: something odd listens on :80
        return CheckResult("http-redirect", FAIL, f"{vip}:80 did not answer HTTP: {type(exc).__name__}: {exc}",
                           hint="something other than Traefik may be listening on port 80 of the VIP's node",
                           data=data)
    return judge_redirect(answer, domain, vip, data)


def judge_redirect(answer: HttpAnswer, domain: str, vip: str, data: dict[str, Any]) -> CheckResult:
    data |= {"status": answer.status, "location": answer.location, "server": answer.server}
    expected = f"https://{domain}/"
    fix = ("labup's Traefik values redirect the web entry point permanently "
           "(ports.web.http.redirections.entryPoint: {to: websecure, scheme: https, permanent: true}): "
           "`labup render traefik` shows them, `labup phase traefik` applies them")
    if answer.status in PERMANENT:
        if answer.location and _same_url(answer.location, expected):
            return CheckResult("http-redirect", PASS,
                               f"http://{vip}/ (Host {domain}) answers {answer.status} -> {answer.location}",
                               data=data)
        return CheckResult("http-redirect", FAIL,
                           f"{answer.status} redirect to {answer.location or '(no Location)'}, expected {expected}",
                           hint=fix, data=data)
    came_back = f"{answer.status} {answer.reason}".strip()
    if answer.location:
        came_back += f" -> {answer.location}"
    if answer.server:
        came_back += f" (Server: {answer.server})"
    elif answer.body_start.strip():
        came_back += f" (body: {' '.join(answer.body_start.split())[:60]!r})"
    return CheckResult("http-redirect", FAIL,
                       f"http://{vip}/ (Host {domain}) answered {came_back} instead of a permanent redirect "
                       f"to {expected}", hint=fix, data=data)


def paradox(ctx: CheckContext, port: int, check: str, data: dict[str, Any]) -> CheckResult:
    """Connection refused on the VIP: diagnose the connection paradox, naming the holder if known."""
    from labup.checks.vip import holder_from_known

    lab = ctx.lab
    vip, ns, release = lab.vip.address, lab.traefik.namespace, lab.traefik.release
    name, mac = holder_from_known(ctx)
    data |= {"refused": True, "holder": name, "holder_mac": mac}
    if name:
        held = f"held by {name}" + (f", MAC {mac}" if mac else "")
        where = f"on {name}"
    elif mac:
        held, where = f"held by the node with MAC {mac}", "on that node"
    else:
        held, where = "some node holds it", "there"
    summary = (f"connection refused on {vip}:{port}: the VIP answers ARP ({held}) but nothing listens on "
               f"port {port} {where}")
    target = name or "<the VIP's node>"
    hint = (f"the connection paradox: Traefik is not running {where}. Pin Traefik to the VIP's node: it must "
            "tolerate node-role.kubernetes.io/control-plane:NoSchedule and select "
            f"kubernetes.io/hostname: {target}; `labup phase traefik` does both. See where it runs: "
            f"`kubectl -n {ns} get pods -o wide` (release {release})")
    return CheckResult(check, FAIL, summary, hint=hint, data=data)


def silence(ctx: CheckContext, port: int, check: str, data: dict[str, Any]) -> CheckResult:
    """No answer at all from the VIP on a port: say whether ARP is the reason."""
    from labup.checks.vip import arp_fact

    vip = ctx.lab.vip.address
    summary = f"no answer on {vip}:{port} within {ctx.timeout_s:g}s"
    try:
        seen = arp_fact(ctx)  # computed by vip-arp already, or now with the little time left
    except Exception:
        seen = None
    if seen is not None and not seen.mac:
        return CheckResult(check, FAIL, summary + ": nobody answers ARP for the VIP",
                           hint="see vip-arp: no node holds the VIP, or this machine is not on the nodes' segment",
                           data=data)
    return CheckResult(check, FAIL, summary,
                       hint=f"the VIP answers ARP, so a firewall drops port {port}, or the node holding the VIP "
                            "is overloaded", data=data)


def _same_url(got: str, want: str) -> bool:
    a, b = urlsplit(got), urlsplit(want)
    port_a = a.port if a.port not in (None, 443) else None
    return (a.scheme.lower() == b.scheme and (a.hostname or "").lower() == (b.hostname or "").lower()
            and port_a is None and (a.path or "/") == b.path)


def _os_error(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0)
    return f"{exc.strerror or exc}" + (f" ({name})" if name else "")


def _unreachable_hint(exc: OSError) -> str:
    if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "nobody answers ARP for the VIP (see vip-arp): no node holds it, or this machine is on another segment"
    return "check the network between this machine and the VIP"
