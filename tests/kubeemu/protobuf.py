"""Read the few Kubernetes protobuf bodies clients send (helm 4 writes its release Secrets this way).

Wire format: b"k8s\\x00" + runtime.Unknown{typeMeta=1{apiVersion=1, kind=2}, raw=2, ...}; `raw` is the
typed message. Only the fields of ObjectMeta, Secret and ConfigMap are understood; field numbers come
from k8s.io/api and k8s.io/apimachinery generated.proto.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from .errors import ApiError

PROTOBUF = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) pairs; value is an int for varints, bytes for length-delimited."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        num, wire = key >> 3, key & 7
        if wire == 0:
            val, pos = _varint(buf, pos)
            yield num, val
        elif wire == 2:
            length, pos = _varint(buf, pos)
            yield num, buf[pos:pos + length]
            pos += length
        elif wire == 1:
            yield num, int.from_bytes(buf[pos:pos + 8], "little")
            pos += 8
        elif wire == 5:
            yield num, int.from_bytes(buf[pos:pos + 4], "little")
            pos += 4
        else:
            raise ApiError(400, f"unsupported protobuf wire type {wire}")


def _str(v: int | bytes) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _map_entry(v: int | bytes) -> tuple[str, bytes]:
    key, value = "", b""
    for n, x in fields(v if isinstance(v, bytes) else b""):
        if n == 1:
            key = _str(x)
        elif n == 2 and isinstance(x, bytes):
            value = x
    return key, value


def _time(v: int | bytes) -> str:
    seconds = 0
    for n, x in fields(v if isinstance(v, bytes) else b""):
        if n == 1 and isinstance(x, int):
            seconds = x
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _owner_ref(v: bytes) -> dict[str, Any]:
    names = {1: "kind", 3: "name", 4: "uid", 5: "apiVersion"}
    ref: dict[str, Any] = {}
    for n, x in fields(v):
        if n in names:
            ref[names[n]] = _str(x)
        elif n == 6:
            ref["controller"] = bool(x)
        elif n == 7:
            ref["blockOwnerDeletion"] = bool(x)
    return ref


def object_meta(buf: bytes) -> dict[str, Any]:
    strings = {1: "name", 2: "generateName", 3: "namespace", 5: "uid", 6: "resourceVersion"}
    meta: dict[str, Any] = {}
    for n, v in fields(buf):
        if n in strings:
            meta[strings[n]] = _str(v)
        elif n == 7:
            meta["generation"] = v
        elif n == 8:
            meta["creationTimestamp"] = _time(v)
        elif n in (11, 12):
            k, val = _map_entry(v)
            meta.setdefault("labels" if n == 11 else "annotations", {})[k] = val.decode()
        elif n == 13 and isinstance(v, bytes):
            meta.setdefault("ownerReferences", []).append(_owner_ref(v))
        elif n == 14:
            meta.setdefault("finalizers", []).append(_str(v))
    return meta


def _secret(raw: bytes) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "metadata": {}}
    for n, v in fields(raw):
        if n == 1 and isinstance(v, bytes):
            obj["metadata"] = object_meta(v)
        elif n == 2:
            k, val = _map_entry(v)
            obj.setdefault("data", {})[k] = base64.b64encode(val).decode()  # JSON form of []byte
        elif n == 3:
            obj["type"] = _str(v)
        elif n == 4:
            k, val = _map_entry(v)
            obj.setdefault("stringData", {})[k] = val.decode()
        elif n == 5:
            obj["immutable"] = bool(v)
    return obj


def _configmap(raw: bytes) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}
    for n, v in fields(raw):
        if n == 1 and isinstance(v, bytes):
            obj["metadata"] = object_meta(v)
        elif n == 2:
            k, val = _map_entry(v)
            obj.setdefault("data", {})[k] = val.decode()
        elif n == 3:
            k, val = _map_entry(v)
            obj.setdefault("binaryData", {})[k] = base64.b64encode(val).decode()
        elif n == 4:
            obj["immutable"] = bool(v)
    return obj


DECODERS = {("v1", "Secret"): _secret, ("v1", "ConfigMap"): _configmap}


def decode(body: bytes) -> dict[str, Any]:
    """A protobuf request body as the JSON-shaped dict the store keeps."""
    if not body.startswith(MAGIC):
        raise ApiError(415, "protobuf body without the k8s envelope")
    api_version = kind = ""
    raw = b""
    for n, v in fields(body[len(MAGIC):]):
        if n == 1 and isinstance(v, bytes):
            for m, x in fields(v):
                if m == 1:
                    api_version = _str(x)
                elif m == 2:
                    kind = _str(x)
        elif n == 2 and isinstance(v, bytes):
            raw = v
    decoder = DECODERS.get((api_version, kind))
    if decoder is None:
        raise ApiError(415, f"the emulator cannot read protobuf for {api_version}/{kind}; send JSON")
    return decoder(raw)
