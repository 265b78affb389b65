"""Known keys of the config documents labup touches, for Talos' strict decoding.

Talos rejects unknown keys (`unknown keys found during decoding:`). The simulator checks the
parts of the schema that matter for a VIP (machine.network, interfaces, vip, Layer2VIPConfig)
and accepts anything elsewhere (ANY).
"""

from __future__ import annotations

from typing import Any

ANY: dict[str, Any] = {"*": None}  # a subtree the simulator does not check


def _keys(*names: str) -> dict[str, Any]:
    return dict.fromkeys(names, ANY)


VIP = _keys("ip", "equinixMetal", "hcloud")
VLAN = {**_keys("addresses", "cidr", "routes", "dhcp", "vlanId", "mtu", "dhcpOptions"), "vip": VIP}
DEVICE = {
    **_keys(
        "interface", "deviceSelector", "addresses", "cidr", "routes", "bond", "bridge", "bridgePort",
        "mtu", "dhcp", "ignore", "dummy", "dhcpOptions", "wireguard",
    ),
    "vlans": [VLAN],
    "vip": VIP,
}  # fmt: skip
NETWORK = {
    **_keys("hostname", "nameservers", "searchDomains", "extraHostEntries", "kubespan", "disableSearchDomain"),
    "interfaces": [DEVICE],
}
MACHINE = {
    **_keys(
        "type", "token", "ca", "acceptedCAs", "certSANs", "controlPlane", "kubelet", "pods", "disks",
        "install", "files", "env", "time", "sysctls", "sysfs", "registries", "systemDiskEncryption",
        "features", "udev", "logging", "kernel", "seccompProfiles", "baseRuntimeSpecOverrides",
        "nodeLabels", "nodeAnnotations", "nodeTaints",
    ),
    "network": NETWORK,
}  # fmt: skip
V1ALPHA1 = {**_keys("version", "debug", "persist", "cluster"), "machine": MACHINE}

BY_KIND: dict[str, dict[str, Any]] = {
    "v1alpha1": V1ALPHA1,
    "Layer2VIPConfig": _keys("apiVersion", "kind", "name", "link"),
    "HostnameConfig": _keys("apiVersion", "kind", "auto", "hostname"),
}

# Map-typed fields: deleting an absent key under them fails (`lookup failed`), while deleting an
# absent field of a known struct just zeroes it (Talos' deleteForPath, selector.go).
MAP_FIELDS = {("machine", "sysctls"), ("machine", "sysfs"), ("machine", "env"), ("machine", "nodeLabels"),
              ("machine", "nodeAnnotations"), ("machine", "nodeTaints")}  # fmt: skip


def unknown_keys(value: Any, schema: Any) -> Any:
    """The part of `value` the schema does not know (None if all is known), shaped like the input."""
    if schema is ANY or schema is None:
        return None
    if isinstance(schema, list):
        if not isinstance(value, list):
            return None
        pruned = [u for item in value if (u := unknown_keys(item, schema[0])) is not None]
        return pruned or None
    if not isinstance(value, dict):
        return None
    out: dict[str, Any] = {}
    for key, sub in value.items():
        if key not in schema:
            out[key] = sub
            continue
        inner = unknown_keys(sub, schema[key])
        if inner is not None:
            out[key] = inner
    return out or None


def struct_field_known(path: list[str]) -> bool:
    """Whether `path` names a field of a struct the simulator knows (so deleting it is a no-op)."""
    schema: Any = V1ALPHA1
    for part in path:
        if not isinstance(schema, dict) or schema is ANY or part not in schema:
            return False
        schema = schema[part]
    return tuple(path[:-1]) not in MAP_FIELDS
