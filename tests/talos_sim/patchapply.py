"""Applying loaded patches to a machine config (configpatcher.Apply, client side in talosctl)."""

from __future__ import annotations

import copy
import json
from typing import Any

from talos_sim import schema, yamlio
from talos_sim.errors import TalosError
from talos_sim.patchload import (
    V1ALPHA1_KIND,
    JSONPatch,
    Patch,
    Selector,
    StrategicPatch,
    doc_id,
    scalar_text,
)

Doc = dict[str, Any] | Selector

# Lists merged by a key instead of appended (NetworkDeviceList.Merge, VlanList.Merge).
KEYED_LISTS: dict[tuple[str, ...], str] = {
    ("machine", "network", "interfaces"): "interface",
    ("machine", "network", "interfaces", "*", "vlans"): "vlanId",
}
# Lists and maps replaced wholesale (`merge:"replace"` tags in v1alpha1_types.go).
REPLACED = {
    ("cluster", "network", "podSubnets"),
    ("cluster", "network", "serviceSubnets"),
    ("cluster", "apiServer", "auditPolicy"),
}


# `omitempty` lists: once their last entry is deleted, Go's encoder drops the key altogether
# (`NetworkInterfaces NetworkDeviceList yaml:"interfaces,omitempty"` in v1alpha1_types.go).
OMITEMPTY_LISTS = {("machine", "network", "interfaces"), ("machine", "network", "interfaces", "*", "vlans")}


class _ZeroedDocument(Exception):
    """The selector deleted a whole document."""


def apply(docs: list[dict[str, Any]], patches: list[Patch]) -> list[Doc]:
    current: list[Doc] = copy.deepcopy(docs)
    for patch in patches:
        # JSON6902 works on the bytes of a single-document config; strategic on documents.
        current = [_json6902(current, patch)] if isinstance(patch, JSONPatch) else _strategic(current, patch)
    return current


def encode(docs: list[Doc]) -> str:
    """container.EncodeBytes: a leftover delete selector has no fields and encodes as `{}`."""
    return "---\n".join("{}\n" if isinstance(d, Selector) else yamlio.dump(d) for d in docs)


# -- strategic merge --------------------------------------------------------------------------


def _id(doc: Doc) -> str:
    return doc.doc_id if isinstance(doc, Selector) else doc_id(doc)


def _strategic(left: list[Doc], patch: StrategicPatch) -> list[Doc]:
    left = list(left)
    index = {_id(d): d for d in left}
    for right in copy.deepcopy(patch.documents):
        ident = _id(right)
        target = index.get(ident)
        if target is None or isinstance(target, Selector):
            # Talos appends an unmatched document - a delete selector included (it then
            # encodes as `{}`, which the node rejects; see validate.py).
            left.append(right)
            index[ident] = right
            continue
        if isinstance(right, Selector):
            try:
                _apply_selector(target, right)
            except _ZeroedDocument:
                left.remove(target)
                del index[ident]
            continue
        merge(target, right, ())
    # container.New(): the v1alpha1 document always comes first.
    v1 = [d for d in left if not isinstance(d, Selector) and _id(d) == f"/{V1ALPHA1_KIND}"]
    return v1 + [d for d in left if all(d is not x for x in v1)]


def merge(left: dict[str, Any], right: dict[str, Any], path: tuple[str, ...]) -> None:
    """merge.Merge on decoded documents: maps deep-merge, lists append unless keyed/replaced."""
    for key, rval in right.items():
        sub = (*path, str(key))
        lval = left.get(key)
        if sub in REPLACED or key not in left or lval is None:
            # omitempty: an empty value in the patch never shows up in the encoded config
            if rval is not None and rval != [] and rval != {}:
                left[key] = rval
            continue
        if isinstance(lval, dict) and isinstance(rval, dict):
            merge(lval, rval, sub)
        elif isinstance(lval, list) and isinstance(rval, list):
            _merge_list(lval, rval, sub)
        elif rval is None or (rval in ("", 0) and not isinstance(rval, bool)):
            continue  # Go leaves a field alone when the patch has its zero value
        else:
            left[key] = rval


def _merge_list(left: list[Any], right: list[Any], path: tuple[str, ...]) -> None:
    generic = tuple("*" if p.isdigit() else p for p in path)
    key = KEYED_LISTS.get(generic)
    if key is None:
        left.extend(right)
        return
    for item in right:
        match = None
        if isinstance(item, dict) and item.get(key) not in (None, ""):
            match = next((e for e in left if isinstance(e, dict) and e.get(key) == item.get(key)), None)
        if match is None:
            left.append(item)
        else:
            merge(match, item, (*path, str(left.index(match))))


def _apply_selector(doc: dict[str, Any], sel: Selector) -> None:
    """selector.ApplyTo / namedSelector.ApplyTo, with their error wrapping."""
    api_version = doc.get("apiVersion") or ""
    kind = doc.get("kind") or V1ALPHA1_KIND
    dotted = ".".join(sel.path)
    if not sel.path:
        if kind == V1ALPHA1_KIND and not api_version:
            raise TalosError(
                f"patch delete: path '' in document '/{V1ALPHA1_KIND}': can't delete the root of the legacy document"
            )
        raise _ZeroedDocument
    try:
        _delete_path(doc, sel.path, sel.key, sel.value)
        _drop_empty_list(doc, sel.path)
    except TalosError as exc:
        if sel.name:
            raise TalosError(
                f"named patch delete: document {api_version}/{kind}: failed to delete path '{dotted}': {exc.message}"
            ) from None
        raise TalosError(
            f"patch delete: path '{dotted}' in document '{api_version}/{kind}': "
            f"failed to delete path '{dotted}': {exc.message}"
        ) from None


def _drop_empty_list(doc: dict[str, Any], path: list[str]) -> None:
    """After a list entry is deleted: an emptied `omitempty` list is not encoded at all."""
    if len(path) < 2 or not path[-1].startswith("["):
        return
    parent: Any = doc
    for part in path[:-2]:
        parent = parent[int(part[1:-1])] if isinstance(parent, list) else parent.get(part)
        if parent is None:
            return
    generic = tuple("*" if p.startswith("[") else p for p in path[:-1])
    if isinstance(parent, dict) and generic in OMITEMPTY_LISTS and parent.get(path[-2]) == []:
        del parent[path[-2]]


def _delete_path(doc: dict[str, Any], path: list[str], key: str, value: str) -> None:
    node: Any = doc
    for depth, part in enumerate(path):
        last = depth == len(path) - 1
        if isinstance(node, list):
            if not last:
                raise TalosError("searching for complex paths in slices is not supported")
            for i, elem in enumerate(node):
                if isinstance(elem, dict) and key in elem and scalar_text(elem[key]) == value:
                    del node[i]
                    return
            raise TalosError("lookup failed")
        if not isinstance(node, dict):
            raise TalosError("lookup failed")
        if part not in node or node[part] is None:
            if last and not part.startswith("[") and schema.struct_field_known(path):
                return  # zeroing an unset struct field succeeds
            raise TalosError("lookup failed")
        if last:
            del node[part]
            return
        node = node[part]


# -- JSON6902 ---------------------------------------------------------------------------------


def _json6902(docs: list[Doc], patch: JSONPatch) -> dict[str, Any]:
    if len(docs) != 1:
        raise TalosError("JSON6902 patches are not supported for multi-document machine configuration")
    doc = copy.deepcopy(docs[0])
    try:
        for op in patch.ops:
            doc = _json_op(doc, op)
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        raise TalosError(f"failure applying rfc6902 patches to talos machine config: {exc}") from None
    return doc


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ValueError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _json_op(doc: Any, op: dict[str, Any]) -> Any:
    kind = op.get("op")
    parts = _pointer(op.get("path", ""))
    if kind in ("add", "replace"):
        return _set(doc, parts, copy.deepcopy(op["value"]), insert=kind == "add")
    if kind == "remove":
        _remove(doc, parts)
        return doc
    if kind == "test":
        if _get(doc, parts) != op.get("value"):
            raise ValueError(f"testing value {op.get('path')} failed: {json.dumps(op.get('value'))}")
        return doc
    if kind in ("move", "copy"):
        src = _pointer(op["from"])
        val = copy.deepcopy(_get(doc, src))
        if kind == "move":
            _remove(doc, src)
        return _set(doc, parts, val, insert=True)
    raise ValueError(f"unexpected operation {kind!r}")


def _get(doc: Any, parts: list[str]) -> Any:
    for p in parts:
        doc = doc[int(p)] if isinstance(doc, list) else doc[p]
    return doc


def _set(doc: Any, parts: list[str], value: Any, *, insert: bool) -> Any:
    if not parts:
        return value
    parent = _get(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif insert:
            parent.insert(int(last), value)
        else:
            parent[int(last)] = value
    else:
        if not insert and last not in parent:
            raise KeyError(f"replace operation does not apply: doc is missing key: /{'/'.join(parts)}")
        parent[last] = value
    return doc


def _remove(doc: Any, parts: list[str]) -> None:
    parent = _get(doc, parts[:-1])
    if isinstance(parent, list):
        del parent[int(parts[-1])]
    else:
        if parts[-1] not in parent:
            raise KeyError(f"remove operation does not apply: doc is missing path: /{'/'.join(parts)}")
        del parent[parts[-1]]
