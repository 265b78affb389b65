"""Safe YAML loading for lab.yaml and values files: bounded, no duplicate keys, no alias bombs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from labup.errors import ConfigError

MAX_BYTES = 1024 * 1024  # a lab.yaml is a few KiB; anything this big is a mistake or an attack
MAX_ALIASES = 64  # aliases are legitimate but rare; thousands of them are a "billion laughs"
MAX_NODES = 20_000


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and bounds aliases and node counts."""

    def __init__(self, stream: str, source: str) -> None:
        super().__init__(stream)
        self._source = source
        self._aliases = 0
        self._nodes = 0

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise ConfigError("", f"{self._source}: more than {MAX_ALIASES} YAML aliases (alias bomb?)")
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise ConfigError("", f"{self._source}: more than {MAX_NODES} YAML nodes")
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:  # type: ignore[override]
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise ConfigError("", f"{self._source}: line {key_node.start_mark.line + 1}: "
                                  "a mapping key must be a plain value") from None
            if key in seen:
                raise ConfigError(
                    "", f"{self._source}: line {key_node.start_mark.line + 1}: duplicate key '{key}' "
                    f"(first at line {seen[key] + 1})")
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _StrictLoader.construct_mapping)


def load_text(text: str, source: str) -> Any:
    """Parse one YAML document safely; errors become ConfigError naming the source and line."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise ConfigError("", f"{source}: larger than {MAX_BYTES // 1024} KiB")
    loader = _StrictLoader(text, source)
    try:
        return loader.get_single_data()
    except ConfigError:
        raise
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError("", f"{source}: {where}invalid YAML: {problem}") from None
    finally:
        loader.dispose()


def load_file(path: Path) -> Any:
    """Read and parse a YAML file with a size bound checked before reading it all."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ConfigError("", f"{path}: larger than {MAX_BYTES // 1024} KiB")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError("", f"{path}: no such file",
                          hint="create one with `labup init` or pass -c PATH") from None
    except IsADirectoryError:
        raise ConfigError("", f"{path}: is a directory, expected a YAML file") from None
    except PermissionError:
        raise ConfigError("", f"{path}: permission denied") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError("", f"{path}: not UTF-8 text") from None
    return load_text(text, str(path))
