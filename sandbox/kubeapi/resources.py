"""The resource types the test API serves: built-ins plus whatever CRDs register.

One table drives routing (URL plural -> type), the store (api_version + kind -> type) and
discovery (`/api/v1`, `/apis/<group>/<version>`), so the three can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    """One served resource (a group/version/kind and its REST plural)."""

    group: str                    # "" for core
    version: str
    kind: str
    plural: str
    namespaced: bool
    subresources: tuple[str, ...] = ()       # "status", "log", "scale"
    short_names: tuple[str, ...] = ()
    crd: dict[str, Any] | None = field(default=None, compare=False, hash=False, repr=False)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def key(self) -> tuple[str, str]:
        """Storage identity: one bucket per group+plural regardless of served version."""
        return (self.group, self.plural)

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    def discovery_entries(self) -> list[dict[str, Any]]:
        """This type's entries in an APIResourceList (the resource and its subresources)."""
        main = {"name": self.plural, "singularName": self.singular, "namespaced": self.namespaced,
                "kind": self.kind, "verbs": list(ALL_VERBS)}
        if self.short_names:
            main["shortNames"] = list(self.short_names)
        entries = [main]
        for sub in self.subresources:
            kind, verbs = {"status": (self.kind, ["get", "patch", "update"]),
                           "log": ("Pod", ["get"]),
                           "scale": ("Scale", ["get", "patch", "update"])}[sub]
            entry = {"name": f"{self.plural}/{sub}", "singularName": "", "namespaced": self.namespaced,
                     "kind": kind, "verbs": verbs}
            if sub == "scale":
                entry.update(group="autoscaling", version="v1")
            entries.append(entry)
        return entries


def _t(api_version: str, kind: str, plural: str, namespaced: bool = True,
       subresources: tuple[str, ...] = (), short: tuple[str, ...] = ()) -> ResourceType:
    group, _, version = api_version.rpartition("/")
    return ResourceType(group, version, kind, plural, namespaced, subresources, short)


_S = ("status",)
BUILTIN_TYPES: tuple[ResourceType, ...] = (
    _t("v1", "Namespace", "namespaces", False, _S, ("ns",)),
    _t("v1", "Pod", "pods", True, ("status", "log"), ("po",)),
    _t("v1", "Service", "services", True, _S, ("svc",)),
    _t("v1", "ConfigMap", "configmaps", True, (), ("cm",)),
    _t("v1", "Secret", "secrets"),
    _t("v1", "Event", "events", True, (), ("ev",)),
    _t("v1", "Node", "nodes", False, _S, ("no",)),
    _t("v1", "PersistentVolumeClaim", "persistentvolumeclaims", True, _S, ("pvc",)),
    _t("v1", "PersistentVolume", "persistentvolumes", False, _S, ("pv",)),
    _t("v1", "ServiceAccount", "serviceaccounts", True, (), ("sa",)),
    _t("v1", "Endpoints", "endpoints", True, (), ("ep",)),
    _t("apps/v1", "Deployment", "deployments", True, ("status", "scale"), ("deploy",)),
    _t("apps/v1", "ReplicaSet", "replicasets", True, ("status", "scale"), ("rs",)),
    _t("apps/v1", "DaemonSet", "daemonsets", True, _S, ("ds",)),
    _t("batch/v1", "Job", "jobs", True, _S),
    _t("rbac.authorization.k8s.io/v1", "Role", "roles"),
    _t("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings"),
    _t("rbac.authorization.k8s.io/v1", "ClusterRole", "clusterroles", False),
    _t("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "clusterrolebindings", False),
    _t("apiextensions.k8s.io/v1", "CustomResourceDefinition", "customresourcedefinitions", False,
       _S, ("crd", "crds")),
)

CRD_TYPE = BUILTIN_TYPES[-1]


def types_from_crd(crd: dict[str, Any], served_only: bool = True) -> list[ResourceType]:
    """One ResourceType per served version of a CustomResourceDefinition."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    out = []
    for ver in spec.get("versions") or []:
        if served_only and not ver.get("served", True):
            continue
        subs = ("status",) if "status" in (ver.get("subresources") or {}) else ()
        if "scale" in (ver.get("subresources") or {}):
            subs += ("scale",)
        out.append(ResourceType(spec.get("group", ""), ver["name"], names.get("kind", ""),
                                names.get("plural", ""), spec.get("scope", "Namespaced") == "Namespaced",
                                subs, tuple(names.get("shortNames") or ()), crd=crd))
    return out


class TypeRegistry:
    """Lookup of served types by (group, version, plural) and by (apiVersion, kind)."""

    def __init__(self) -> None:
        self._builtin = list(BUILTIN_TYPES)
        self._custom: dict[str, list[ResourceType]] = {}   # source id -> types

    def set_custom(self, source: str, types: list[ResourceType]) -> None:
        if types:
            self._custom[source] = types
        else:
            self._custom.pop(source, None)

    def all(self) -> list[ResourceType]:
        seen: dict[tuple[str, str, str], ResourceType] = {}
        for t in self._builtin:
            seen[(t.group, t.version, t.plural)] = t
        # CRD objects ("crd:" sources) override pre-registered schemas ("static:" sources).
        for source in sorted(self._custom, key=lambda s: not s.startswith("static:")):
            for t in self._custom[source]:
                seen[(t.group, t.version, t.plural)] = t
        return list(seen.values())

    def by_plural(self, group: str, version: str, plural: str) -> ResourceType | None:
        for t in self.all():
            if (t.group, t.version, t.plural) == (group, version, plural):
                return t
        return None

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        """Accepts the Kind (`Pod`) or, for convenience, the plural (`pods`)."""
        group, _, version = api_version.rpartition("/")
        for t in self.all():
            if (t.group, t.version) == (group, version) and kind in (t.kind, t.plural):
                return t
        return None

    def versions_of(self, group: str, plural: str) -> list[ResourceType]:
        return [t for t in self.all() if (t.group, t.plural) == (group, plural)]

    def groups(self) -> dict[str, list[str]]:
        """group -> served versions, in first-seen order (core group "" included)."""
        out: dict[str, list[str]] = {}
        for t in self.all():
            versions = out.setdefault(t.group, [])
            if t.version not in versions:
                versions.append(t.version)
        return out
