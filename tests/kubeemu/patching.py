"""The four PATCH flavours clients send, on plain JSON-like dicts.

Strategic merge merges the well-known keyed lists (containers by name, ...) and replaces the others.
Server-side apply is approximated per field manager: fields the manager applied last time and dropped
now are removed, everything it applies now is merged in (lists replaced whole).
"""

from __future__ import annotations

import copy
from typing import Any

from .errors import ApiError

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, APPLY_PATCH)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# patchMergeKey of the list fields helm charts touch (k8s.io/api struct tags); other lists are replaced.
_MERGE_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",), "initContainers": ("name",), "ephemeralContainers": ("name",),
    "volumes": ("name",), "env": ("name",), "volumeMounts": ("mountPath",), "imagePullSecrets": ("name",),
    "ports": ("containerPort", "port"), "hostAliases": ("ip",), "conditions": ("type",),
    "topologySpreadConstraints": ("topologyKey",),
}


def _merge_key(field: str, items: list[Any]) -> str | None:
    for key in _MERGE_KEYS.get(field, ()):
        if items and all(isinstance(i, dict) and key in i for i in items):
            return key
    return None


def _merge_list(field: str, target: Any, patch: list[Any], order: list[Any] | None) -> list[Any]:
    """Merge list elements by their merge key; `$patch: delete` removes one; `$setElementOrder` orders."""
    live = target if isinstance(target, list) else []
    key = _merge_key(field, [i for i in patch if not (isinstance(i, dict) and i.get("$patch"))]
                     or list(live))
    if key is None or not all(isinstance(i, dict) and key in i for i in live):
        return [strategic_merge_patch(None, i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    merged = {i[key]: i for i in live}
    for item in patch:
        if item.get("$patch") == "delete":
            merged.pop(item.get(key), None)
        else:
            merged[item[key]] = strategic_merge_patch(merged.get(item[key]), item)
    if order:
        ranked = [o.get(key) for o in order if isinstance(o, dict)]
        return sorted(merged.values(), key=lambda i: ranked.index(i[key]) if i[key] in ranked else len(ranked))
    return list(merged.values())


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Strategic merge, the part helm 3's three-way patches use: maps merge, known lists merge by key,
    `$setElementOrder/<field>` orders them, other directives are dropped."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for field, value in patch.items():
        if field.startswith("$"):
            continue
        if value is None:
            result.pop(field, None)
        elif isinstance(value, list):
            result[field] = _merge_list(field, result.get(field), value, patch.get(f"$setElementOrder/{field}"))
        else:
            result[field] = strategic_merge_patch(result.get(field), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError(422, f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _resolve(doc: Any, parts: list[str]) -> Any:
    cur = doc
    for p in parts:
        if isinstance(cur, list):
            cur = cur[int(p)]
        elif isinstance(cur, dict):
            cur = cur[p]
        else:
            raise KeyError(p)
    return cur


def _add(doc: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    parent = _resolve(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        parent.insert(len(parent) if last == "-" else int(last), value)
    else:
        parent[last] = value
    return doc


def _remove(doc: Any, parts: list[str]) -> Any:
    parent = _resolve(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        return parent.pop(int(last))
    return parent.pop(last)


def json_patch(target: Any, ops: Any) -> Any:
    """RFC 6902."""
    if not isinstance(ops, list):
        raise ApiError(400, "json patch must be a list of operations")
    doc = copy.deepcopy(target)
    for op in ops:
        kind, parts = op.get("op"), _pointer(op.get("path", ""))
        try:
            if kind == "add":
                doc = _add(doc, parts, copy.deepcopy(op["value"]))
            elif kind == "remove":
                _remove(doc, parts)
            elif kind == "replace":
                _resolve(doc, parts)  # must exist
                if parts:
                    _remove(doc, parts)
                doc = _add(doc, parts, copy.deepcopy(op["value"]))
            elif kind in ("move", "copy"):
                src = _pointer(op["from"])
                value = copy.deepcopy(_resolve(doc, src))
                if kind == "move":
                    _remove(doc, src)
                doc = _add(doc, parts, value)
            elif kind == "test":
                if _resolve(doc, parts) != op.get("value"):
                    raise ApiError(422, f"the server rejected our request due to an error in our request: "
                                        f"test operation failed at {op.get('path')}")
            else:
                raise ApiError(400, f"unknown json patch op {kind!r}")
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise ApiError(
                422, f"the server rejected our request due to an error in our request: "
                     f"{kind} operation does not apply: doc is missing path: {op.get('path')}",
            ) from exc
    return doc


def apply_patch(live: dict[str, Any] | None, applied: dict[str, Any], last_applied: dict[str, Any] | None
                ) -> dict[str, Any]:
    """Server-side apply, simplified: a 3-way merge of this manager's previous and current intent."""
    if live is None:
        return copy.deepcopy(applied)
    return merge_patch(live, _intent(last_applied or {}, applied))


def _intent(last: Any, new: Any) -> Any:
    """`new` as a merge patch, plus None for every field `last` had and `new` dropped."""
    if not isinstance(new, dict):
        return copy.deepcopy(new)
    out = {k: _intent(last.get(k) if isinstance(last, dict) else None, v) for k, v in new.items()}
    if isinstance(last, dict):
        for key in last:
            if key not in new:
                out[key] = None
    return out


def _at(obj: Any, path: str) -> tuple[bool, Any]:
    """(present?, value) of a dotted path (".spec.replicas") in obj."""
    for key in path.strip(".").split("."):
        if not isinstance(obj, dict) or key not in obj:
            return False, None
        obj = obj[key]
    return True, obj


def check_apply_conflicts(owners: list[tuple[str, str, str]], live: Any, patch: Any, *, force: bool) -> None:
    """Server-side apply's conflict rule for fields another manager owns through an Update: the apply
    conflicts when it sets such a field to a different value; with force it takes the field over.
    The message and causes are apimachinery's (pkg/util/managedfields/internal/conflict.go
    NewConflictError, getConflictMessage, printManager: `"kubectl-scale" using apps/v1`)."""
    clashes = []
    for entry in list(owners):
        path, manager, api_version = entry
        sets, value = _at(patch, path)
        if not sets or _at(live, path)[1] == value:
            continue
        if force:
            owners.remove(entry)
        else:
            clashes.append((path, f'"{manager}" using {api_version}'))
    if not clashes:
        return
    if len(clashes) == 1:
        message = f"Apply failed with 1 conflict: conflict with {clashes[0][1]}: {clashes[0][0]}"
    else:
        lines = []
        for who in sorted({w for _, w in clashes}):
            lines += [f"conflicts with {who}:", *(f"- {p}" for p, w in clashes if w == who)]
        message = f"Apply failed with {len(clashes)} conflicts: " + "\n".join(lines)
    causes = [{"reason": "FieldManagerConflict", "message": f"conflict with {who}", "field": path}
              for path, who in clashes]
    raise ApiError(409, message, reason="Conflict", details={"causes": causes})
