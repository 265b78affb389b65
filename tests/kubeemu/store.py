"""In-memory object store with resourceVersions, uids, generations and an event log for watches."""

from __future__ import annotations

import bisect
import contextlib
import copy
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import errors
from .resources import Registry, ResourceType
from .selectors import Predicate

Obj = dict[str, Any]
Key = tuple[str, str, str, str]  # group, plural, namespace ("" when cluster-scoped), name
Listener = Callable[[str, ResourceType, Obj], None]


@dataclass(frozen=True)
class Event:
    rv: int
    type: str  # ADDED | MODIFIED | DELETED
    rt: ResourceType
    obj: Obj


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _content(obj: Obj) -> Obj:
    """What counts for `metadata.generation`: everything but metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


class Store:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._cond = threading.Condition()
        self._objects: dict[Key, Obj] = {}
        self._types: dict[Key, ResourceType] = {}
        self._rv = 0
        self._events: list[Event] = []
        self._applied: dict[tuple[str, str], Obj] = {}  # (uid, fieldManager) -> last applied intent
        self.closed = False
        # Called after each committed write, outside the lock (controllers, garbage collector).
        self.listeners: list[Listener] = []

    # --- reading -------------------------------------------------------------------------------
    @staticmethod
    def key(rt: ResourceType, namespace: str | None, name: str) -> Key:
        return (rt.group, rt.plural, (namespace or "") if rt.namespaced else "", name)

    @property
    def resource_version(self) -> int:
        with self._cond:
            return self._rv

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> Obj:
        with self._cond:
            obj = self._objects.get(self.key(rt, namespace, name))
            if obj is None:
                raise errors.not_found(rt.plural, name, rt.group)
            return copy.deepcopy(obj)

    def find(self, rt: ResourceType, namespace: str | None, name: str) -> Obj | None:
        try:
            return self.get(rt, namespace, name)
        except errors.ApiError:
            return None

    def list(self, rt: ResourceType, namespace: str | None = None,
             match: Predicate | None = None) -> tuple[list[Obj], int]:
        with self._cond:
            items = [
                copy.deepcopy(o) for (g, p, ns, _), o in sorted(self._objects.items())
                if g == rt.group and p == rt.plural
                and (namespace is None or ns == namespace)
                and (match is None or match(o))
            ]
            return items, self._rv

    # --- writing -------------------------------------------------------------------------------
    def _commit(self, etype: str, rt: ResourceType, key: Key, obj: Obj | None) -> Obj:
        """Record a write under the lock; returns the stored copy."""
        self._rv += 1
        if obj is None:
            old = self._objects.pop(key)
            self._types.pop(key, None)
            old["metadata"]["resourceVersion"] = str(self._rv)
            stored = old
        else:
            obj["metadata"]["resourceVersion"] = str(self._rv)
            self._objects[key] = obj
            self._types[key] = rt
            stored = obj
        self._events.append(Event(self._rv, etype, rt, copy.deepcopy(stored)))
        self._cond.notify_all()
        return copy.deepcopy(stored)

    def _notify(self, etype: str, rt: ResourceType, obj: Obj) -> None:
        for listener in list(self.listeners):
            listener(etype, rt, copy.deepcopy(obj))

    def create(self, rt: ResourceType, namespace: str | None, obj: Obj, *, dry_run: bool = False) -> Obj:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        name = meta.get("name")
        if not name:
            raise errors.invalid(rt.kind, "", "metadata.name: Required value: name or generateName is required")
        if rt.namespaced:
            namespace = namespace or meta.get("namespace") or "default"
            meta["namespace"] = namespace
            ns_type = self.registry.lookup("", "v1", "namespaces")
            if ns_type is not None and self.find(ns_type, None, namespace) is None:
                raise errors.not_found("namespaces", namespace)
        else:
            meta.pop("namespace", None)
        obj["apiVersion"], obj["kind"] = rt.group_version, rt.kind
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=now(), generation=1)
        for drop in ("resourceVersion", "deletionTimestamp", "managedFields", "selfLink"):
            meta.pop(drop, None)
        key = self.key(rt, namespace, name)
        with self._cond:
            if key in self._objects:
                raise errors.already_exists(rt.plural, name, rt.group)
            if dry_run:
                return obj
            stored = self._commit("ADDED", rt, key, obj)
        self._notify("ADDED", rt, stored)
        return stored

    def update(self, rt: ResourceType, namespace: str | None, name: str, obj: Obj, *,
               subresource: str | None = None, dry_run: bool = False) -> Obj:
        key = self.key(rt, namespace, name)
        obj = copy.deepcopy(obj)
        with self._cond:
            old = self._objects.get(key)
            if old is None:
                raise errors.not_found(rt.plural, name, rt.group)
            meta = obj.setdefault("metadata", {})
            rv = meta.get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise errors.conflict(rt.plural, name, rt.group)
            if subresource == "status":
                new = copy.deepcopy(old)
                new["status"] = obj.get("status", {})
            else:
                new = obj
                new["apiVersion"], new["kind"] = rt.group_version, rt.kind
                # Identity fields are the server's, whatever the client sent.
                for field in ("uid", "creationTimestamp", "namespace", "name", "generation"):
                    if field in old["metadata"]:
                        meta[field] = old["metadata"][field]
                    else:
                        meta.pop(field, None)
                if rt.has_status:
                    if "status" in old:
                        new["status"] = old["status"]
                    else:
                        new.pop("status", None)
                if _content(new) != _content(old):
                    meta["generation"] = int(old["metadata"].get("generation", 1)) + 1
            if _same(new, old):
                return copy.deepcopy(old)  # no-op writes do not bump resourceVersion (like etcd3 store)
            if dry_run:
                return new
            stored = self._commit("MODIFIED", rt, key, new)
        self._notify("MODIFIED", rt, stored)
        return stored

    def delete(self, rt: ResourceType, namespace: str | None, name: str, *, dry_run: bool = False,
               propagation: str = "Background") -> Obj:
        key = self.key(rt, namespace, name)
        with self._cond:
            if key not in self._objects:
                raise errors.not_found(rt.plural, name, rt.group)
            if dry_run:
                return copy.deepcopy(self._objects[key])
            stored = self._commit("DELETED", rt, key, None)
            uid = stored["metadata"].get("uid", "")
            for k in [k for k in self._applied if k[0] == uid]:
                del self._applied[k]
        self._notify("DELETED", rt, stored)
        if propagation != "Orphan":
            self._collect_garbage(stored["metadata"].get("uid", ""))
        return stored

    def _collect_garbage(self, owner_uid: str) -> None:
        """Delete what the deleted object owned (the garbage collector, run inline)."""
        with self._cond:
            dependents = [
                (self._types[k], k[2] or None, k[3]) for k, o in self._objects.items()
                if any(r.get("uid") == owner_uid for r in o["metadata"].get("ownerReferences") or [])
            ]
        for rt, namespace, name in dependents:
            with contextlib.suppress(errors.ApiError):  # deleted meanwhile
                self.delete(rt, namespace, name)

    def objects_in(self, namespace: str) -> list[tuple[ResourceType, str]]:
        """(type, name) of every object in a namespace: what a namespace deletion removes."""
        with self._cond:
            return [(self._types[k], k[3]) for k in self._objects if k[2] == namespace]

    # --- server-side apply bookkeeping ----------------------------------------------------------
    def last_applied(self, uid: str, manager: str) -> Obj | None:
        with self._cond:
            return copy.deepcopy(self._applied.get((uid, manager)))

    def remember_applied(self, uid: str, manager: str, intent: Obj) -> None:
        with self._cond:
            self._applied[(uid, manager)] = copy.deepcopy(intent)

    # --- watching ------------------------------------------------------------------------------
    def events_after(self, rv: int) -> list[Event]:
        with self._cond:
            # rvs are appended in increasing order: bisect instead of scanning the whole log
            return self._events[bisect.bisect_right(self._events, rv, key=lambda e: e.rv):]

    def wait_for_change(self, rv: int, timeout: float) -> None:
        """Block until an event newer than `rv` exists, the store closes, or `timeout` passes."""
        with self._cond:
            self._cond.wait_for(lambda: self._rv > rv or self.closed, timeout=timeout)

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()


def _same(a: Obj, b: Obj) -> bool:
    strip = ("resourceVersion",)
    ma = {k: v for k, v in a.get("metadata", {}).items() if k not in strip}
    mb = {k: v for k, v in b.get("metadata", {}).items() if k not in strip}
    return ma == mb and {k: v for k, v in a.items() if k != "metadata"} == {
        k: v for k, v in b.items() if k != "metadata"
    }
