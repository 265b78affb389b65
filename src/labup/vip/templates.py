"""The patch templates in the top-level `phases/vip/` folder, filled in as data, not as text.

A template is parsed first and its `${name}` placeholders are replaced in the parsed tree, so a
value can never inject YAML; the result is dumped back as the fragment sent to talosctl.
"""

from __future__ import annotations

import re
from typing import Any

from labup import resources
from labup.errors import PermanentError

_WHOLE = re.compile(r"^\$\{(\w+)\}$")
_PART = re.compile(r"\$\{(\w+)\}")


def load(name: str, **values: Any) -> list[dict[str, Any]]:
    """The documents of phases/vip/<name>, placeholders filled; a broken template is named."""
    import yaml

    path = resources.template("vip", name)
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    except (OSError, yaml.YAMLError) as exc:
        raise PermanentError(f"patch template {path} cannot be read: {exc}",
                             hint="restore it from labup's source (phases/vip/)") from None
    if not docs or not all(isinstance(d, dict) for d in docs):
        raise PermanentError(f"patch template {path}: expected YAML mapping document(s)")
    return [_fill(d, values, path.name) for d in docs]


def dump(docs: list[dict[str, Any]]) -> str:
    """YAML as talosctl reads it; lists indented under their key, as Talos prints its configs."""
    import yaml

    class _Dumper(yaml.SafeDumper):
        def increase_indent(self, flow: bool = False, indentless: bool = False) -> Any:
            return super().increase_indent(flow, False)

    return "---\n".join(yaml.dump(d, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=4096)
                        for d in docs)


def _fill(value: Any, values: dict[str, Any], source: str) -> Any:
    if isinstance(value, dict):
        return {_fill(k, values, source): _fill(v, values, source) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, values, source) for v in value]
    if not isinstance(value, str) or "${" not in value:
        return value
    whole = _WHOLE.match(value)
    if whole:  # the whole scalar is a placeholder: its value may be any YAML value (an entry)
        return _value(whole.group(1), values, source)
    return _PART.sub(lambda m: str(_value(m.group(1), values, source)), value)


def _value(name: str, values: dict[str, Any], source: str) -> Any:
    if name not in values:
        raise PermanentError(f"patch template {source}: unknown placeholder ${{{name}}}",
                             hint=f"known here: {', '.join(sorted(values)) or 'none'}")
    return values[name]
