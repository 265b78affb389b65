"""Plain operations on nested Helm values (dicts, lists, scalars), with Helm's merge semantics."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from labup.traefik.keys import Key, ValuesError


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`over` merged onto `base` as Helm merges a later `-f` file: maps merge key by key, anything
    else (lists included) replaces. A null in `over` is kept, not applied: Helm reads it as "delete
    this key, the chart's default included", which only Helm can do (see `without_nulls`)."""
    result = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def overlay(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """labup's own layering of its templates (values-ha.yaml.tmpl over values.yaml.tmpl): as `merge`,
    but a null removes the key here and now, so it never reaches Helm (the chart's default applies)."""
    result = copy.deepcopy(dict(base))
    for key, value in over.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = overlay(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def without_nulls(values: Mapping[str, Any]) -> dict[str, Any]:
    """The values as the chart will see them once Helm has applied the nulls (map keys only, as
    Helm's coalescing does): what the guards and the schema check must look at."""
    return {k: without_nulls(v) if isinstance(v, Mapping) else v
            for k, v in values.items() if v is not None}


def get(values: Any, *key: str, default: Any = None) -> Any:
    """`get(v, 'deployment', 'kind')`: a nested lookup that tolerates any shape on the way."""
    node = values
    for part in key:
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def require_string_keys(values: Any, key: Key = ()) -> None:
    """Helm values are JSON objects: a key YAML read as a number or boolean (`80:`, `on:`) would
    reach the chart as something else than the user wrote. Refuse it where it is."""
    if isinstance(values, Mapping):
        for k, v in values.items():
            if not isinstance(k, str):
                raise ValuesError((*key, str(k)), f"the key {k!r} is not a string (YAML read it as "
                                  f"{type(k).__name__})", hint='quote the key in the file, e.g. "on": or "80":')
            require_string_keys(v, (*key, k))
    elif isinstance(values, list):
        for i, item in enumerate(values):
            require_string_keys(item, (*key, i))
