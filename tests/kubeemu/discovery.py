"""Discovery and OpenAPI documents, all built from the Registry so CRDs show up as they are added.

Aggregated discovery (`Accept: ...;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList`) is not
offered: answering plain `application/json` makes client-go fall back to the legacy per-group
documents. OpenAPI v3 advertises, for every kind, PATCH/POST with the `fieldValidation` query
parameter: cli-runtime's query-param verifier then leaves validation to the server instead of
fetching schemas to validate client-side.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .resources import ALL_VERBS, Registry, ResourceType

Obj = dict[str, Any]

KUBE_VERSION = "v1.35.0"


def version(git_version: str = KUBE_VERSION) -> Obj:
    major, minor = git_version.lstrip("v").split(".")[:2]
    return {"major": major, "minor": minor, "gitVersion": git_version, "gitCommit": "0" * 40,
            "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.25.0",
            "compiler": "gc", "platform": "linux/amd64"}


def core_versions(server_address: str) -> Obj:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}


def _group(name: str, versions: list[str]) -> Obj:
    gvs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": gvs, "preferredVersion": gvs[0]}


def group_list(registry: Registry) -> Obj:
    groups = [_group(g, vs) for g, vs in registry.groups().items() if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def group(registry: Registry, name: str) -> Obj | None:
    versions = registry.groups().get(name)
    if not name or not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name, versions)}


def resource_list(registry: Registry, group_name: str, ver: str) -> Obj | None:
    types = [t for t in registry.all() if t.group == group_name and t.version == ver]
    if not types:
        return None
    resources: list[Obj] = []
    for t in types:
        entry: Obj = {"name": t.plural, "singularName": t.singular, "namespaced": t.namespaced,
                      "kind": t.kind, "verbs": list(ALL_VERBS)}
        if t.short_names:
            entry["shortNames"] = list(t.short_names)
        if t.categories:
            entry["categories"] = list(t.categories)
        resources.append(entry)
        if t.has_status:
            resources.append({"name": f"{t.plural}/status", "singularName": "", "namespaced": t.namespaced,
                              "kind": t.kind, "verbs": ["get", "patch", "update"]})
    # groupVersion is "v1" for the core group, never "/v1" (that breaks helm's RESTMapper).
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": types[0].group_version, "resources": resources}


# --- OpenAPI -------------------------------------------------------------------------------------
def _gvk(t: ResourceType) -> list[Obj]:
    return [{"group": t.group, "version": t.version, "kind": t.kind}]


def _query(*names: str) -> list[Obj]:
    return [{"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}} for n in names]


def _schema_name(t: ResourceType) -> str:
    if t.group == "":
        prefix = "io.k8s.api.core"
    elif t.group.endswith(".k8s.io") or "." not in t.group:
        prefix = "io.k8s.api." + t.group.split(".")[0]
    else:
        prefix = ".".join(reversed(t.group.split(".")))
    return f"{prefix}.{t.version}.{t.kind}"


def openapi_v3_gv(registry: Registry, gv_path: str) -> Obj | None:
    """The OpenAPI v3 document for `api/v1` or `apis/<group>/<version>`."""
    types = [t for t in registry.all() if t.base_path == "/" + gv_path]
    if not types:
        return None
    paths: Obj = {}
    schemas: Obj = {}
    for t in types:
        ns = "/namespaces/{namespace}" if t.namespaced else ""
        ext = {"x-kubernetes-group-version-kind": _gvk(t)[0]}
        write_params = _query("dryRun", "fieldManager", "fieldValidation")
        ref = {"$ref": f"#/components/schemas/{_schema_name(t)}"}
        body = {"content": {"application/json": {"schema": ref}}}
        ok = {"200": {"description": "OK", "content": {"application/json": {"schema": ref}}}}
        paths[f"{t.base_path}{ns}/{t.plural}"] = {
            "get": {"operationId": f"list{t.kind}", **ext, "x-kubernetes-action": "list", "responses": ok},
            "post": {"operationId": f"create{t.kind}", **ext, "x-kubernetes-action": "post",
                     "parameters": write_params, "requestBody": body, "responses": ok},
        }
        paths[f"{t.base_path}{ns}/{t.plural}/{{name}}"] = {
            "get": {"operationId": f"read{t.kind}", **ext, "x-kubernetes-action": "get", "responses": ok},
            "put": {"operationId": f"replace{t.kind}", **ext, "x-kubernetes-action": "put",
                    "parameters": write_params, "requestBody": body, "responses": ok},
            "patch": {"operationId": f"patch{t.kind}", **ext, "x-kubernetes-action": "patch",
                      "parameters": [*write_params, *_query("force")], "requestBody": body, "responses": ok},
            "delete": {"operationId": f"delete{t.kind}", **ext, "x-kubernetes-action": "delete",
                       "parameters": _query("dryRun", "propagationPolicy"), "responses": ok},
        }
        schemas[_schema_name(t)] = {
            "type": "object",
            "x-kubernetes-group-version-kind": _gvk(t),
            "x-kubernetes-preserve-unknown-fields": True,
            "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                           "metadata": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
        }
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": KUBE_VERSION},
            "paths": paths, "components": {"schemas": schemas}}


def openapi_v3_root(registry: Registry) -> Obj:
    entries: Obj = {}
    seen = {t.base_path.lstrip("/") for t in registry.all()}
    for gv in sorted(seen):
        doc = openapi_v3_gv(registry, gv)
        digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32].upper()
        entries[gv] = {"serverRelativeURL": f"/openapi/v3/{gv}?hash={digest}"}
    return {"paths": entries}
