"""Kubernetes RBAC authorization for the test API: what kube-apiserver's RequestInfoFactory,
RBAC authorizer and escalation check do, over Roles, ClusterRoles and bindings stored in the
API itself.

Why this exists: the package ships a ClusterRole for Airflow and the operator ships its own;
only an API that refuses what they do not grant proves them sufficient (and not `*`).

Followed from kubernetes v1.30 (read, not copied): request attributes from the URL
(staging/src/k8s.io/apiserver/pkg/endpoints/request/requestinfo.go), rule matching
(pkg/apis/rbac/v1/evaluation_helpers.go), subject matching and the denial message
(plugin/pkg/auth/authorizer/rbac/rbac.go, endpoints/handlers/responsewriters/errors.go),
escalation prevention (pkg/registry/rbac/escalation_check.go, validation/rule.go).

Differences, on purpose: the bootstrap policy (system:discovery, system:basic-user,
system:public-info-viewer bound to system:authenticated) is built in, not stored;
aggregated ClusterRoles are not aggregated; the group system:masters bypasses RBAC as the
real authorizer chain's privileged-group check does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from .errors import ApiError

RBAC_GROUP = "rbac.authorization.k8s.io"
RBAC_V1 = f"{RBAC_GROUP}/v1"
MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
_NAMESPACE_SUBRESOURCES = ("status", "finalize")
_BOOTSTRAP_RULES: tuple[dict[str, Any], ...] = (
    # system:discovery + system:public-info-viewer
    {"verbs": ["get"], "nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez",
                                           "/readyz", "/openapi", "/openapi/*", "/version", "/version/"]},
    # system:basic-user
    {"verbs": ["create"], "apiGroups": ["authorization.k8s.io"],
     "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]},
)


@dataclass(frozen=True)
class UserInfo:
    name: str
    groups: tuple[str, ...] = ()

    @property
    def privileged(self) -> bool:
        return MASTERS in self.groups


@dataclass(frozen=True)
class Attributes:
    """What the authorizer decides on (authorizer.Attributes)."""

    user: UserInfo
    verb: str
    resource_request: bool
    path: str = ""
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    namespace: str = ""

    @property
    def combined_resource(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


_VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch",
          "DELETE": "delete"}


def request_attributes(user: UserInfo, method: str, path: str, query: dict[str, str]) -> Attributes:
    """Attributes from the URL alone, as the real RequestInfoFactory (no store lookups)."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, rest = "", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, rest = parts[1], parts[3:]
    else:
        rest = None
    if not rest:
        return Attributes(user, method.lower(), False, path=path or "/")
    verb = _VERBS.get(method, method.lower())
    if rest[0] == "watch":
        verb, rest = "watch", rest[1:]
    namespace = ""
    if rest and rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0] if rest else ""
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    if not name and verb == "get":
        verb = "watch" if query.get("watch") in ("true", "1", "True") else "list"
    if not name and verb == "delete":
        verb = "deletecollection"
    return Attributes(user, verb, True, path, group, resource, sub, name, namespace)


# ---------------------------------------------------------------------------- rule matching

def _verb_matches(rule: dict, verb: str) -> bool:
    verbs = rule.get("verbs") or []
    return "*" in verbs or verb in verbs


def _group_matches(rule: dict, group: str) -> bool:
    groups = rule.get("apiGroups") or []
    return "*" in groups or group in groups


def _resource_matches(rule: dict, combined: str, sub: str) -> bool:
    for res in rule.get("resources") or []:
        if res in ("*", combined) or (sub and res == f"*/{sub}"):
            return True
    return False


def _name_matches(rule: dict, name: str) -> bool:
    names = rule.get("resourceNames") or []
    return not names or name in names


def _url_matches(rule: dict, path: str) -> bool:
    for url in rule.get("nonResourceURLs") or []:
        if url in ("*", path) or (url.endswith("*") and path.startswith(url[:-1])):
            return True
    return False


def rule_allows(rule: dict, attrs: Attributes) -> bool:
    """Whether one PolicyRule grants the request (RuleAllows)."""
    if not _verb_matches(rule, attrs.verb):
        return False
    if not attrs.resource_request:
        return _url_matches(rule, attrs.path)
    return (_group_matches(rule, attrs.api_group)
            and _resource_matches(rule, attrs.combined_resource, attrs.subresource)
            and _name_matches(rule, attrs.name))


def _subject_matches(subject: dict, user: UserInfo, binding_namespace: str) -> bool:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return name == user.name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return user.name == f"system:serviceaccount:{namespace}:{name}"
    return False


class RbacAuthorizer:
    """Decides requests from the Roles, ClusterRoles and bindings in `store` (read per request,
    so a rule removed in a test takes effect on the next call)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def _objects(self, kind: str, namespace: str | None = None) -> list[dict]:
        return self.store.list(RBAC_V1, kind, namespace)

    def _role_rules(self, ref: dict, namespace: str) -> list[dict]:
        kind, name = ref.get("kind"), ref.get("name") or ""
        try:
            if kind == "ClusterRole":
                role = self.store.get(RBAC_V1, "ClusterRole", None, name)
            elif kind == "Role" and namespace:
                role = self.store.get(RBAC_V1, "Role", namespace, name)
            else:
                return []
        except ApiError:
            return []                   # a binding to a missing role grants nothing
        return list(role.get("rules") or [])

    def rules_for(self, user: UserInfo, namespace: str) -> Iterator[dict]:
        """Every rule that applies to `user` for a request in `namespace` ("" = cluster scope)."""
        if AUTHENTICATED in user.groups:
            yield from _BOOTSTRAP_RULES
        for binding in self._objects("ClusterRoleBinding"):
            if any(_subject_matches(s, user, "") for s in binding.get("subjects") or []):
                yield from self._role_rules(binding.get("roleRef") or {}, "")
        if not namespace:
            return
        for binding in self._objects("RoleBinding", namespace):
            if any(_subject_matches(s, user, namespace) for s in binding.get("subjects") or []):
                yield from (r for r in self._role_rules(binding.get("roleRef") or {}, namespace)
                            if not r.get("nonResourceURLs"))

    def allowed(self, attrs: Attributes) -> bool:
        if attrs.user.privileged:
            return True
        namespace = attrs.namespace if attrs.resource_request else ""
        return any(rule_allows(rule, attrs) for rule in self.rules_for(attrs.user, namespace))

    def authorize(self, attrs: Attributes) -> None:
        """Raise the real 403 Status when `attrs` is not allowed."""
        if not self.allowed(attrs):
            raise forbidden(attrs)


def forbidden(attrs: Attributes, reason: str = "") -> ApiError:
    """The kube-apiserver 403: `<res> "<name>" is forbidden: User "<u>" cannot <verb> ...`."""
    user = attrs.user.name
    if not attrs.resource_request:
        msg = f'User "{user}" cannot {attrs.verb} path "{attrs.path}"'
        return ApiError(403, "Forbidden", f"forbidden: {msg}" + (f": {reason}" if reason else ""))
    scope = (f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope")
    msg = (f'User "{user}" cannot {attrs.verb} resource "{attrs.combined_resource}" in API group '
           f'"{attrs.api_group}" {scope}')
    if reason:
        msg = f"{msg}: {reason}"
    qualified = f"{attrs.resource}.{attrs.api_group}" if attrs.api_group else attrs.resource
    head = f'{qualified} "{attrs.name}"' if attrs.name else qualified
    return ApiError(403, "Forbidden", f"{head} is forbidden: {msg}", name=attrs.name or None,
                    group=attrs.api_group or None, kind=attrs.resource)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


# ---------------------------------------------------------------------------- escalation

def _atomic(rule: dict, namespace: str, user: UserInfo) -> Iterator[Attributes]:
    """One request per verb x group x resource x name of `rule`, wildcards kept literal, so
    only an owner rule with the same wildcard covers it (validation.Covers)."""
    for verb in rule.get("verbs") or []:
        for url in rule.get("nonResourceURLs") or []:
            yield Attributes(user, verb, False, path=url)
        for group in rule.get("apiGroups") or []:
            for res in rule.get("resources") or []:
                resource, _, sub = res.partition("/")
                for name in rule.get("resourceNames") or [""]:
                    yield Attributes(user, verb, True, "", group, resource, sub, name, namespace)


def uncovered(authorizer: RbacAuthorizer, user: UserInfo, rules: Iterable[dict],
              namespace: str) -> list[dict]:
    """The rules (of a role being written or bound) the user does not hold themselves."""
    missing = []
    for rule in rules:
        if not all(authorizer.allowed(a) for a in _atomic(rule, namespace, user)):
            missing.append(rule)
    return missing


def _grant_refusal(kind: str, name: str, user: UserInfo, missing: list[dict]) -> ApiError:
    plural = {"Role": "roles", "ClusterRole": "clusterroles", "RoleBinding": "rolebindings",
              "ClusterRoleBinding": "clusterrolebindings"}[kind]
    groups = ", ".join(f'"{g}"' for g in user.groups)
    rules = "\n".join(_rule_text(r) for r in missing)
    return ApiError(403, "Forbidden", f'{plural}.{RBAC_GROUP} "{name}" is forbidden: user "{user.name}" '
                    f"(groups=[{groups}]) is attempting to grant RBAC permissions not currently held:\n"
                    f"{rules}", name=name, group=RBAC_GROUP, kind=plural)


def _rule_text(rule: dict) -> str:
    fields = []
    for key, label in (("apiGroups", "APIGroups"), ("resources", "Resources"),
                       ("resourceNames", "ResourceNames"), ("nonResourceURLs", "NonResourceURLs"),
                       ("verbs", "Verbs")):
        if rule.get(key):
            fields.append(f"{label}:[" + " ".join(f'"{v}"' for v in rule[key]) + "]")
    return "{" + ", ".join(fields) + "}"


def check_escalation(authorizer: RbacAuthorizer, user: UserInfo | None, obj: dict) -> None:
    """Refuse a Role/ClusterRole or binding write that would grant more than `user` holds,
    unless they may `escalate` (roles) or `bind` (bindings) it. No-op for other kinds."""
    if user is None or user.privileged or not isinstance(obj, dict):
        return
    kind = obj.get("kind")
    if obj.get("apiVersion") != RBAC_V1 or kind not in ("Role", "ClusterRole", "RoleBinding",
                                                         "ClusterRoleBinding"):
        return
    meta = obj.get("metadata") or {}
    name = meta.get("name") or ""
    namespace = (meta.get("namespace") or "") if kind in ("Role", "RoleBinding") else ""
    if kind in ("Role", "ClusterRole"):
        verb, resource, rules = "escalate", kind.lower() + "s", obj.get("rules") or []
    else:
        ref = obj.get("roleRef") or {}
        verb, resource, name = "bind", str(ref.get("kind", "")).lower() + "s", ref.get("name") or ""
        rules = authorizer._role_rules(ref, namespace)
        if not rules and not authorizer.allowed(Attributes(user, verb, True, "", RBAC_GROUP, resource,
                                                           "", name, namespace)):
            rules = [{"verbs": ["bind"], "apiGroups": [RBAC_GROUP], "resources": [resource],
                      "resourceNames": [name]}]
    if authorizer.allowed(Attributes(user, verb, True, "", RBAC_GROUP, resource, "", name, namespace)):
        return
    missing = uncovered(authorizer, user, rules, namespace)
    if missing:
        raise _grant_refusal(kind, meta.get("name") or "", user, missing)


