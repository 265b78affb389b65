"""Fill `phases/traefik/values.yaml.tmpl`: placeholders are whole scalars, replaced after parsing.

Substituting parsed values instead of pasting text into YAML means no lab.yaml value (an email, a
path) can ever add or change a key, whatever characters it holds.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from labup import yamlsafe
from labup.errors import ConfigError
from labup.traefik.keys import TEMPLATE_SOURCE, Key, dotted
from labup.traefik.pin import folder

TEMPLATE_FILE = "values.yaml.tmpl"
_WHOLE = re.compile(r"\$\{([a-z_][a-z0-9_]*)\}")


_PARSED: dict[tuple[str, int, int], dict[str, Any]] = {}  # (path, size, mtime) -> the parsed template


def load_template(chart: str = "traefik", name: str = TEMPLATE_FILE) -> dict[str, Any]:
    """A values template of phases/<chart>/, parsed once per process (pre-flight and observe both build
    values); a changed file is a new (size, mtime) and parsed again. Callers get their own copy: fill()
    never mutates."""
    path = folder(chart) / name
    info = path.stat()
    key = (str(path), info.st_size, info.st_mtime_ns)
    if key not in _PARSED:
        data = yamlsafe.load_file(path)
        if not isinstance(data, dict):
            raise ConfigError(TEMPLATE_SOURCE, "expected a mapping of Helm values")
        _PARSED[key] = data
    return copy.deepcopy(_PARSED[key])


def fill(tree: Any, params: Mapping[str, Any], key: Key = ()) -> Any:
    """A copy of `tree` with every "${name}" replaced by params[name]; a None value drops its key
    (or list item). Unknown names and placeholders inside longer strings are errors: a typo in the
    template must not ship as a literal "${...}" to the cluster."""
    if isinstance(tree, Mapping):
        out: dict[Any, Any] = {}
        for k, v in tree.items():
            name = _placeholder(k, params, (*key, k))
            if name is not None and not isinstance(params[name], str):
                raise ConfigError(TEMPLATE_SOURCE, f"{dotted((*key, k))}: ${{{name}}} is not a string "
                                  "and cannot be a key")
            real_key = params[name] if name is not None else k
            value = fill(v, params, (*key, real_key))
            if value is not None or v is None:  # drop keys whose placeholder is null, keep real nulls
                out[real_key] = value
        return out
    if isinstance(tree, list):
        items = [(item, fill(item, params, (*key, i))) for i, item in enumerate(tree)]
        return [filled for item, filled in items if filled is not None or item is None]
    name = _placeholder(tree, params, key)
    return copy.deepcopy(params[name]) if name is not None else tree


def _placeholder(value: Any, params: Mapping[str, Any], key: Key) -> str | None:
    if not isinstance(value, str) or "${" not in value:
        return None
    match = _WHOLE.fullmatch(value)
    if match is None:
        raise ConfigError(TEMPLATE_SOURCE, f"{dotted(key)}: '{value}': a placeholder must be the whole value",
                          hint=f"known placeholders: {', '.join(sorted(params))}")
    if match.group(1) not in params:
        raise ConfigError(TEMPLATE_SOURCE, f"{dotted(key)}: unknown placeholder '{value}'",
                          hint=f"known placeholders: {', '.join(sorted(params))}")
    return match.group(1)
