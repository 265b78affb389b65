"""YAML in and out, close to Talos' Go encoder (indented lists, literal blocks, `---` joins).

The simulator stores every config in this one canonical form, so "no changes" is a plain string
comparison, as it is in talosctl (it compares the re-encoded config with the node's body).
"""

from __future__ import annotations

import functools
import re
from typing import Any

import yaml

# Go's yaml (YAML 1.2 rules) reads `off`, `yes`, `on` as strings, PyYAML (YAML 1.1) as booleans:
# `HostnameConfig` has `auto: off`. Resolve only true/false as booleans, in and out.
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")


def _yaml12_resolvers(base: dict[Any, Any]) -> dict[Any, Any]:
    resolvers: dict[Any, Any] = {}
    for first, entries in base.items():
        kept = [(tag, rx) for tag, rx in entries if tag != "tag:yaml.org,2002:bool"]
        resolvers[first] = kept
    for first in "tTfF":
        resolvers.setdefault(first, []).insert(0, ("tag:yaml.org,2002:bool", _BOOL))
    return resolvers


# libyaml's parser when present: every talosctl call parses each node's config.
_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[misc,valid-type]
    yaml_implicit_resolvers = _yaml12_resolvers(yaml.SafeLoader.yaml_implicit_resolvers)


class _Dumper(yaml.SafeDumper):
    yaml_implicit_resolvers = _yaml12_resolvers(yaml.SafeDumper.yaml_implicit_resolvers)

    # Go's yaml indents list items under their key; PyYAML does not unless told.
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> Any:
        return super().increase_indent(flow, False)


def _str_representer(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    # Multi-line values (PEM blocks, embedded configs) as literal blocks, like the Go encoder.
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str_representer)


def dump(obj: Any) -> str:
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=False, indent=2, default_flow_style=False, width=4096)


def dump_docs(docs: list[Any]) -> str:
    return "---\n".join(dump(doc) for doc in docs)


def load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # _Loader derives from SafeLoader


def load_docs(text: str) -> list[Any]:
    """All non-null documents of a YAML stream."""
    return [doc for _, doc in load_docs_with_lines(text)]


@functools.lru_cache(maxsize=64)
def load_docs_cached(text: str) -> tuple[Any, ...]:
    """Read-only parse for hot paths (addresses, VIP election): never mutate the result."""
    return tuple(load_docs(text))


def load_docs_with_lines(text: str) -> list[tuple[int, Any]]:
    """(1-based line of the root node, value) per non-null document: Go reports that line."""
    loader = _Loader(text)
    out: list[tuple[int, Any]] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            value = loader.construct_document(node)
            if value is not None:
                out.append((node.start_mark.line + 1, value))
    finally:
        loader.dispose()
    return out
