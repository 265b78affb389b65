"""Label and field selectors in the forms clients send: `a=b,c!=d,e in (x,y),f notin (z),g,!h`."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .errors import ApiError

Predicate = Callable[[dict[str, Any]], bool]

_SET_RE = re.compile(r"^\s*(\S+)\s+(in|notin)\s+\((.*)\)\s*$")


def _split_terms(selector: str) -> list[str]:
    """Split on commas that are not inside `( )`."""
    terms, depth, cur = [], 0, []
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    terms.append("".join(cur))
    return [t.strip() for t in terms if t.strip()]


def _label_term(term: str) -> Callable[[dict[str, str]], bool]:
    m = _SET_RE.match(term)
    if m:
        key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",") if v.strip()}
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    for op in ("!=", "==", "="):
        if op in term:
            key, _, value = (s.strip() for s in term.partition(op))
            if op == "!=":
                return lambda labels: labels.get(key) != value
            return lambda labels: labels.get(key) == value
    if term.startswith("!"):
        key = term[1:].strip()
        return lambda labels: key not in labels
    if re.fullmatch(r"[A-Za-z0-9./_-]+", term):
        return lambda labels: term in labels
    raise ApiError(400, f"unable to parse requirement: {term!r}")


def label_selector(selector: str | None) -> Predicate:
    if not selector:
        return lambda _obj: True
    tests = [_label_term(t) for t in _split_terms(selector)]

    def match(obj: dict[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(t(labels) for t in tests)

    return match


def field_value(obj: dict[str, Any], path: str) -> str:
    """Resolve a dotted field path (`spec.nodeName`) to the string a field selector compares."""
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def field_selector(selector: str | None) -> Predicate:
    if not selector:
        return lambda _obj: True
    tests: list[Predicate] = []
    for term in _split_terms(selector):
        for op in ("!=", "==", "="):
            if op in term:
                path, _, value = (s.strip() for s in term.partition(op))
                negate = op == "!="
                tests.append(lambda o, p=path, v=value, n=negate: (field_value(o, p) == v) != n)
                break
        else:
            raise ApiError(400, f"invalid field selector: {term!r}")
    return lambda obj: all(t(obj) for t in tests)
