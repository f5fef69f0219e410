"""Discovery documents (`/version`, `/api`, `/apis`, resource lists).

`KubernetesHook.test_connection()` calls `/version/`, and `kubernetes.dynamic.DynamicClient`
builds its whole resource map from `/api` and `/apis/...`, so these must list exactly what
the store serves (including CRD-registered custom resources).
"""

from __future__ import annotations

from typing import Any

from .resources import ResourceType

VERSION_INFO = {
    "major": "1", "minor": "30", "gitVersion": "v1.30.0-kubeapi-test",
    "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
    "buildDate": "2024-04-17T00:00:00Z", "goVersion": "go1.22.2", "compiler": "gc",
    "platform": "linux/amd64",
}


def api_versions(server_address: str) -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                            "serverAddress": server_address}]}


def _group_doc(group: str, versions: list[str]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": entries, "preferredVersion": entries[0]}


def api_group_list(types: list[ResourceType]) -> dict[str, Any]:
    groups: dict[str, list[str]] = {}
    for t in types:
        if t.group and t.version not in groups.setdefault(t.group, []):
            groups[t.group].append(t.version)
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [_group_doc(g, v) for g, v in groups.items()]}


def api_group(types: list[ResourceType], group: str) -> dict[str, Any] | None:
    versions: list[str] = []
    for t in types:
        if t.group == group and t.version not in versions:
            versions.append(t.version)
    if not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_doc(group, versions)}


def resource_list(types: list[ResourceType], group: str, version: str) -> dict[str, Any] | None:
    served = [t for t in types if (t.group, t.version) == (group, version)]
    if not served:
        return None
    resources = [entry for t in served for entry in t.discovery_entries()]
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version, "resources": resources}
