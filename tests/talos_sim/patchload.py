"""Loading `--patch` arguments the way talosctl's configpatcher.LoadPatches does.

A patch is either a strategic merge patch (config documents, possibly with `$patch: delete`) or
a JSON6902 patch (a list of ops, as JSON or YAML). Strategic is tried first, like Talos.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import yaml

from talos_sim import schema, yamlio
from talos_sim.errors import TalosError
from talos_sim.versions import CLIENT_VERSION, LINES_FROM, known_kinds, parse_version

V1ALPHA1_KIND = "v1alpha1"
LEGACY_KEYS = ("machine", "cluster", "debug", "persist")


@dataclass
class Selector:
    """A `$patch: delete` statement (configloader's selector / namedSelector)."""

    path: list[str]
    api_version: str
    kind: str
    name: str = ""
    key: str = ""
    value: str = ""

    @property
    def doc_id(self) -> str:
        base = f"{self.api_version}/{self.kind}"
        return f"{base}/{self.name}" if self.name else base


@dataclass
class StrategicPatch:
    # In the order StrategicMerge sees them (container.Documents()): deletes aimed at the
    # v1alpha1 document, then the v1alpha1 document, then everything else as written.
    documents: list[dict[str, Any] | Selector] = field(default_factory=list)


@dataclass
class JSONPatch:
    ops: list[dict[str, Any]]


Patch = StrategicPatch | JSONPatch


def doc_id(doc: dict[str, Any]) -> str:
    """StrategicMerge's identity of a document: apiVersion/kind[/name]."""
    kind = doc.get("kind") or V1ALPHA1_KIND
    base = f"{doc.get('apiVersion') or ''}/{kind}"
    name = doc.get("name")
    return f"{base}/{name}" if name and kind != V1ALPHA1_KIND else base


def scalar_text(value: Any) -> str:
    """A scalar as its YAML text (what yaml.Node.Value holds in Go)."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None or isinstance(value, dict | list):
        return ""
    return str(value)


# -- reading the arguments --------------------------------------------------------------------


def read_patch_args(args: list[str]) -> list[tuple[str, str]]:
    """(source, contents) per `--patch` value: `@file`, a bare filename, or inline text."""
    out = []
    for arg in args:
        if arg.startswith("@"):
            out.append((arg, _read(arg[1:])))
        elif not any(c in arg for c in "\n ") and not arg.startswith(("[", "{")):
            # talosctl: an inline patch always has a space or newline, or starts with [ or {
            out.append((arg, _read(arg)))
        else:
            out.append(("inline", arg))
    return out


def _read(filename: str) -> str:
    try:
        with open(filename) as handle:
            return handle.read()
    except FileNotFoundError:
        raise TalosError(f"open {filename}: no such file or directory") from None
    except IsADirectoryError:
        raise TalosError(f"read {filename}: is a directory") from None


def load_patches(contents: list[str], client_version: str = CLIENT_VERSION) -> list[Patch]:
    """talosctl decodes the patches itself (configpatcher.LoadPatch), with the kinds it was built with."""
    patches: list[Patch] = []
    for text in contents:
        patch = load_patch(text, client_version)
        # consecutive JSON patches are merged into one, as in LoadPatches
        if isinstance(patch, JSONPatch) and patches and isinstance(patches[-1], JSONPatch):
            patches[-1].ops.extend(patch.ops)
        else:
            patches.append(patch)
    return patches


def load_patch(text: str, client_version: str = CLIENT_VERSION) -> Patch:
    try:
        return load_strategic(text, client_version)
    except TalosError as strategic_err:
        json_err = "invalid JSON patch"
        try:
            ops = json.loads(text)
            if isinstance(ops, list) and all(isinstance(op, dict) for op in ops):
                return JSONPatch(ops)
        except ValueError as exc:
            json_err = str(exc)
        try:
            ops = yamlio.load(text)
        except yaml.YAMLError:
            ops = None
        if isinstance(ops, list) and all(isinstance(op, dict) for op in ops):
            return JSONPatch(ops)
        if text.strip().startswith("["):
            raise TalosError(json_err) from None
        raise strategic_err from None


# -- strategic patches ------------------------------------------------------------------------


def load_strategic(text: str, client_version: str = CLIENT_VERSION) -> StrategicPatch:
    """configloader.NewFromBytes(patch, WithAllowPatchDelete()) of the talosctl client."""
    try:
        raw_docs = yamlio.load_docs_with_lines(text)
    except yaml.YAMLError as exc:
        raise TalosError(f"decode error: yaml: {_yaml_problem(exc)}") from None

    v1_deletes: list[Selector] = []
    v1_doc: dict[str, Any] | None = None
    rest: list[dict[str, Any] | Selector] = []
    seen: set[tuple[str, str, str]] = set()

    for line, doc in raw_docs:
        if isinstance(doc, dict):
            selectors, doc = extract_deletes(doc, line)
            for sel in selectors:
                (v1_deletes if sel.kind == V1ALPHA1_KIND else rest).append(sel)
            if doc is None:
                continue
        if not isinstance(doc, dict):
            raise TalosError(f"expected a YAML document at line {line}")
        ident = (doc.get("apiVersion") or "", doc.get("kind") or V1ALPHA1_KIND, str(doc.get("name") or ""))
        if ident in seen:
            raise TalosError(f"duplicate document {'/'.join(ident)} is not allowed (line {line})")
        seen.add(ident)
        check_document(doc, line, client_version)
        if ident[1] == V1ALPHA1_KIND and not doc.get("apiVersion"):
            v1_doc = doc
        else:
            rest.append(doc)

    ordered: list[dict[str, Any] | Selector] = [*v1_deletes]
    if v1_doc is not None:
        ordered.append(v1_doc)
    ordered.extend(rest)
    if not ordered:
        raise TalosError("config not found")
    return StrategicPatch(ordered)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    return f"line {mark.line + 1}: {problem}" if mark else problem


def check_document(doc: dict[str, Any], line: int, version: str) -> None:
    """Kind lookup and strict (unknown key) decoding of one document, as `version` does it."""
    ident = f"{doc.get('apiVersion') or ''}/{doc.get('kind') or V1ALPHA1_KIND}/{doc.get('name') or ''}"
    try:
        kind = _resolve_kind(doc, version)
        unknown = schema.unknown_keys(doc, schema.BY_KIND.get(kind, schema.ANY))
        if unknown is not None:
            raise TalosError("unknown keys found during decoding:\n" + yamlio.dump(unknown))
    except TalosError as exc:
        if parse_version(version) < LINES_FROM:  # older decoders return the bare error
            raise
        raise TalosError(f"error decoding document {ident} (line {line}): {exc.message}") from None


def _resolve_kind(doc: dict[str, Any], version: str) -> str:
    """decoder.decode(): which registered document type the manifest is."""
    api_version = str(doc.get("apiVersion") or "")
    kind = str(doc.get("kind") or "")
    if any(key in doc for key in LEGACY_KEYS):
        api_version = "v1alpha1"
    if api_version == "v1alpha1" and not kind:
        return V1ALPHA1_KIND
    if not kind:
        raise TalosError("missing kind")
    if not api_version:
        raise TalosError("missing apiVersion")
    if api_version != "v1alpha1" or kind not in known_kinds(version):
        raise TalosError(f'"{kind}" "{api_version}": not registered')
    return kind


# -- `$patch: delete` -------------------------------------------------------------------------


def extract_deletes(doc: dict[str, Any], line: int) -> tuple[list[Selector], dict[str, Any] | None]:
    """Pull `$patch: delete` statements out of a patch document (decoder/delete.go).

    Returns the selectors and what is left of the document (None when nothing is left).
    """
    found: list[tuple[list[str], str, dict[str, Any]]] = []
    try:
        _, delete_root = _process("doc", doc, [], found)
        selectors = [_selector(path, parent, node, doc) for path, parent, node in found]
    except TalosError as exc:
        raise TalosError(f"error processing patch delete statements at line {line}: {exc.message}") from None
    if delete_root or _is_empty_doc(doc):
        return selectors, None
    return selectors, doc


def _process(parent: str, value: Any, path: list[str], found: list[Any]) -> tuple[bool, bool]:
    """(keep going, delete this node) - the walk of processNode()."""
    if isinstance(value, dict):
        for key in list(value):
            sub = value[key]
            if key == "$patch" and sub == "delete":
                if parent != "seq" and any(p.startswith("[") for p in path):
                    raise TalosError(f"cannot delete an inner key in '{'.'.join(path)}'")
                found.append((list(path), parent, value))
                return True, True
            go_on, delete = _process("map", sub, [*path, str(key)], found)
            if not go_on:
                return False, delete
            if delete:
                del value[key]
                if not value:
                    return True, True
    elif isinstance(value, list):
        i = 0
        while i < len(value):
            # Go re-visits index i after a removal, so later elements reuse the same "[i]".
            go_on, delete = _process("seq", value[i], [*path, f"[{i}]"], found)
            if not go_on:
                return False, delete
            if delete:
                value.pop(i)
                if not value:
                    return True, True
                continue
            i += 1
    return True, False


def _is_empty_doc(doc: dict[str, Any]) -> bool:
    return all(k in ("version", "kind", "name") and not isinstance(v, dict | list) for k, v in doc.items())


def _selector(path: list[str], parent: str, node: dict[str, Any], root: dict[str, Any]) -> Selector:
    key = value = ""
    if parent == "seq":
        for k, v in node.items():
            if k == "$patch" and v == "delete":
                continue
            key, value = str(k), scalar_text(v)
            break
        else:
            raise TalosError("no key:val found in sequence node for path " + ".".join(path))
    required = not path
    api_version = scalar_text(root.get("apiVersion"))
    kind = scalar_text(root.get("kind"))
    if required and not api_version:
        raise TalosError("missing apiVersion in document for which $patch: delete is used")
    if required and not kind:
        raise TalosError("missing kind in document for which $patch: delete is used")
    if not kind and not api_version:
        kind = V1ALPHA1_KIND  # legacy document
    elif not (kind and api_version):
        raise TalosError("kind and apiVersion must be both set for path " + ".".join(path))
    return Selector(path, api_version, kind, scalar_text(root.get("name")), key, value)
