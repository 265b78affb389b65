"""Talos version arithmetic and what each version knows (read from the Talos source tags)."""

from __future__ import annotations

# The talosctl build the simulator pretends to be (FACTS.md: facts gathered at v1.13.9).
CLIENT_VERSION = "v1.13.9"
GO_VERSION = "go1.25.5"
# configloader's decoder wraps its errors as `error decoding document A/K/N (line N): ...` and adds
# `(line N)` to duplicates from v1.12.3 on (pkg/machinery/config/configloader/internal/decoder/decoder.go)
LINES_FROM = (1, 12, 3)


def parse_version(tag: str) -> tuple[int, int, int]:
    """`v1.13.0` / `1.11.5-alpha.1` -> (1, 13, 0)."""
    core = tag.lstrip("v").split("-", 1)[0]
    parts = [int(p) for p in core.split(".")[:3]]
    while len(parts) < 3:
        parts.append(0)
    return parts[0], parts[1], parts[2]


def semver(tag: str) -> str:
    """How Go's semver prints a tag: `v1.11.5` -> `1.11.5`."""
    return tag.lstrip("v")


def multidoc(version: str) -> bool:
    """Talos >= 1.12 generates multi-document configs and knows Layer2VIPConfig."""
    return parse_version(version) >= (1, 12, 0)


# Config document kinds each minor release registers (pkg/machinery/config/types at the tag;
# a few registry/CRI kinds defined outside the grep pattern are added by hand).
_KINDS_1_11 = frozenset(
    {
        "EthernetConfig", "EventSinkConfig", "ExistingVolumeConfig", "ExtensionServiceConfig",
        "KmsgLogConfig", "KubeSpanEndpointsConfig", "NetworkRuleConfig", "RawVolumeConfig",
        "SideroLinkConfig", "SwapVolumeConfig", "UserVolumeConfig", "VolumeConfig",
        "WatchdogTimerConfig", "ZswapConfig", "NetworkDefaultActionConfig", "TrustedRootsConfig",
        "RegistryMirrorConfig", "RegistryAuthConfig", "RegistryTLSConfig", "PCIDriverRebindConfig",
    }
)  # fmt: skip
_KINDS_1_12 = _KINDS_1_11 | {
    "BondConfig", "BridgeConfig", "DHCPv4Config", "DHCPv6Config", "DummyLinkConfig",
    "HCloudVIPConfig", "HostnameConfig", "Layer2VIPConfig", "LinkAliasConfig", "LinkConfig",
    "OOMConfig", "ResolverConfig", "StaticHostConfig", "TimeSyncConfig", "VLANConfig",
    "WireguardConfig",
}  # fmt: skip
_KINDS_1_13 = _KINDS_1_12 | {
    "BlackholeRouteConfig", "EnvironmentConfig", "ExternalVolumeConfig", "ImageVerificationConfig",
    "KubeSpanConfig", "RoutingRuleConfig", "TCPProbeConfig", "VRFConfig",
}  # fmt: skip


def known_kinds(version: str) -> frozenset[str]:
    minor = parse_version(version)[:2]
    if minor >= (1, 13):
        return _KINDS_1_13
    if minor >= (1, 12):
        return _KINDS_1_12
    return _KINDS_1_11
