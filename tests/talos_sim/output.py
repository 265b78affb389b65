"""`talosctl get -o json|yaml|jsonpath=...|table` writers (cmd/talosctl/cmd/talos/output)."""

from __future__ import annotations

import json
import re
from typing import Any, Protocol

from talos_sim.errors import TalosError


class Writer(Protocol):
    def write(self, node: str, resource: dict[str, Any]) -> str: ...

    def flush(self) -> str: ...


def go_json(data: Any) -> str:
    """encoding/json with SetIndent("", "    "): sorted map keys, HTML-escaped, trailing newline."""
    text = json.dumps(data, indent=4, sort_keys=True, ensure_ascii=False)
    for char, esc in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e")):
        text = text.replace(char, esc)
    return text + "\n"


class JSONWriter:
    def write(self, node: str, resource: dict[str, Any]) -> str:
        # One pretty object per resource, concatenated: a stream, not an array (FACTS.md §2).
        return go_json({**resource, "node": node})

    def flush(self) -> str:
        return ""


class YAMLWriter:
    def __init__(self) -> None:
        self.need_dashes = False

    def write(self, node: str, resource: dict[str, Any]) -> str:
        from talos_sim import yamlio

        head = "---\n" if self.need_dashes else ""
        self.need_dashes = True
        return f"{head}node: {node}\n" + yamlio.dump({"metadata": resource["metadata"], "spec": resource["spec"]})

    def flush(self) -> str:
        return ""


class JSONPathWriter:
    """k8s jsonpath: text outside `{}` is printed too, each result on its own line."""

    _PART = re.compile(r"\{([^{}]*)\}")

    def __init__(self, template: str) -> None:
        self.parts: list[tuple[str, str]] = []  # (literal|path, text)
        pos = 0
        for match in self._PART.finditer(template):
            if match.start() > pos:
                self.parts.append(("literal", template[pos : match.start()]))
            expr = match.group(1).strip()
            if not expr.startswith(".") and expr not in ("", "@"):
                raise TalosError(f"error parsing jsonpath: unrecognized identifier {expr}")
            self.parts.append(("path", expr))
            pos = match.end()
        if pos < len(template):
            self.parts.append(("literal", template[pos:]))
        if "{" in template and not self.parts:
            raise TalosError("error parsing jsonpath: unclosed action")

    def write(self, node: str, resource: dict[str, Any]) -> str:
        data: Any = {**resource, "node": node}
        out = []
        for kind, text in self.parts:
            if kind == "literal":
                out.append(text + "\n")
                continue
            value = data
            for key in [k for k in text.lstrip("@").split(".") if k]:
                if not isinstance(value, dict) or key not in value:
                    raise TalosError(f"error finding result for jsonpath: {key} is not found")
                value = value[key]
            if isinstance(value, dict | list):
                out.append(json.dumps(value, indent=4, sort_keys=True) + "\n")
            elif isinstance(value, bool):
                out.append(("true" if value else "false") + "\n")
            else:
                out.append(f"{value}\n")
        return "".join(out)

    def flush(self) -> str:
        return ""


class TableWriter:
    def __init__(self) -> None:
        self.rows: list[list[str]] = [["NODE", "NAMESPACE", "TYPE", "ID", "VERSION"]]

    def write(self, node: str, resource: dict[str, Any]) -> str:
        md = resource["metadata"]
        plural = md["type"].split(".", 1)[0]  # LinkStatuses -> LinkStatus, Nodenames -> Nodename
        single = plural[:-2] if plural.endswith("uses") else plural[:-1]
        self.rows.append([node, md["namespace"], single, md["id"], str(md["version"])])
        return ""

    def flush(self) -> str:
        widths = [max(len(row[i]) for row in self.rows) for i in range(len(self.rows[0]))]
        lines = ["   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in self.rows]
        return "\n".join(lines) + "\n"


def new_writer(fmt: str) -> Writer:
    if fmt == "table":
        return TableWriter()
    if fmt == "yaml":
        return YAMLWriter()
    if fmt == "json":
        return JSONWriter()
    if fmt.startswith("jsonpath="):
        return JSONPathWriter(fmt[len("jsonpath=") :])
    raise TalosError(f'output format "{fmt}" is not supported')
