"""The real API's semantic validation that schemas cannot express, for the fields that bite.

Schemas catch types and unknown fields; the real API server also refuses bad names, bad label
keys, a Deployment whose selector does not match its template, a Pod mount of an undeclared
volume, a Job with `restartPolicy: Always`, and changes to immutable fields. Each rule here is
one the product could plausibly break; messages follow the real validators.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import InvalidFields
from .resources import ResourceType
from .selectors import labels_match, selector_from_label_selector

_L = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_LABEL = re.compile(rf"^{_L}$")
DNS1123_SUBDOMAIN = re.compile(rf"^{_L}(\.{_L})*$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")

MSG_SUBDOMAIN = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                 "characters, '-' or '.', and must start and end with an alphanumeric character "
                 "(e.g. 'example.com', regex used for validation is "
                 r"'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
MSG_LABEL = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
             "'-', and must start and end with an alphanumeric character (e.g. 'my-name',  or "
             "'123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
MSG_1035 = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
            "with an alphabetic character, and end with an alphanumeric character (e.g. "
            "'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")


def check_dns(errors: InvalidFields, fld: str, value: str, style: str) -> None:
    """style: 'subdomain' (253), 'label' (63), '1035' (63)."""
    limit = 253 if style == "subdomain" else 63
    if len(value) > limit:
        errors.invalid(fld, value, f"must be no more than {limit} characters")
    regex, msg = {"subdomain": (DNS1123_SUBDOMAIN, MSG_SUBDOMAIN), "label": (DNS1123_LABEL, MSG_LABEL),
                  "1035": (DNS1035_LABEL, MSG_1035)}[style]
    if not regex.match(value):
        errors.invalid(fld, value, msg)


def name_style(rtype: ResourceType) -> str:
    if rtype.key == ("", "namespaces"):
        return "label"
    if rtype.key == ("", "services"):
        return "1035"
    if rtype.group == "rbac.authorization.k8s.io":
        return "segment"
    return "subdomain"


def check_metadata(rtype: ResourceType, obj: dict[str, Any], errors: InvalidFields) -> None:
    meta = obj.get("metadata") or {}
    name = meta.get("name") or ""
    if not name:
        errors.required("metadata.name", "name or generateName is required")
    elif name_style(rtype) == "segment":
        if name in (".", "..") or "/" in name or "%" in name:
            errors.invalid("metadata.name", name, "may not contain '/' or '%' or be '.' or '..'")
    else:
        check_dns(errors, "metadata.name", name, name_style(rtype))
    for key, value in (meta.get("labels") or {}).items():
        check_qualified_name(errors, "metadata.labels", key)
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            errors.invalid("metadata.labels", value,
                           "a valid label must be an empty string or consist of alphanumeric "
                           "characters, '-', '_' or '.', and must start and end with an "
                           "alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', "
                           "regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
    annotations = meta.get("annotations") or {}
    for key in annotations:
        check_qualified_name(errors, "metadata.annotations", key)
    if sum(len(k) + len(str(v)) for k, v in annotations.items()) > 256 * 1024:
        errors.add("FieldValueTooLong", "metadata.annotations",
                   "Too long: must have at most 262144 bytes")


def check_qualified_name(errors: InvalidFields, fld: str, key: str) -> None:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix)):
        errors.invalid(fld, key, "prefix part " + MSG_SUBDOMAIN)
    if not name or len(name) > 63 or not _QUALIFIED_NAME.match(name):
        errors.invalid(fld, key, "name part must consist of alphanumeric characters, '-', '_' or "
                       "'.', and must start and end with an alphanumeric character (e.g. "
                       "'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
                       "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') and be at most 63 characters")


# ---------------------------------------------------------------- pods and templates

def check_pod_spec(spec: dict[str, Any], base: str, errors: InvalidFields,
                   restart_policies: tuple[str, ...]) -> None:
    containers = spec.get("containers") or []
    if not containers:
        errors.required(f"{base}.containers")
    volumes = {v.get("name") for v in spec.get("volumes") or [] if isinstance(v, dict)}
    seen: set[str] = set()
    for group in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(group) or []):
            _check_container(c, f"{base}.{group}[{i}]", seen, volumes, errors)
    for i, vol in enumerate(spec.get("volumes") or []):
        check_dns(errors, f"{base}.volumes[{i}].name", vol.get("name") or "", "label")
    policy = spec.get("restartPolicy")
    if policy is None and "Always" not in restart_policies:
        errors.required(f"{base}.restartPolicy", "valid values: " +
                        ", ".join(f'"{p}"' for p in restart_policies))
    elif policy is not None and policy not in restart_policies:
        errors.unsupported(f"{base}.restartPolicy", policy, list(restart_policies))


def _check_container(c: dict[str, Any], base: str, seen: set[str], volumes: set[Any],
                     errors: InvalidFields) -> None:
    name = c.get("name") or ""
    check_dns(errors, f"{base}.name", name, "label")
    if name in seen:
        errors.duplicate(f"{base}.name", name)
    seen.add(name)
    if not c.get("image"):
        errors.required(f"{base}.image")
    for j, port in enumerate(c.get("ports") or []):
        value = port.get("containerPort")
        if not isinstance(value, int) or not 1 <= value <= 65535:
            errors.invalid(f"{base}.ports[{j}].containerPort", value,
                           "must be between 1 and 65535, inclusive")
    for j, env in enumerate(c.get("env") or []):
        if not _ENV_NAME.match(env.get("name") or ""):
            errors.invalid(f"{base}.env[{j}].name", env.get("name"),
                           "a valid environment variable name must consist of alphabetic "
                           "characters, digits, '_', '-', or '.', and must not start with a digit")
    for j, mount in enumerate(c.get("volumeMounts") or []):
        if mount.get("name") not in volumes:
            errors.add("FieldValueNotFound", f"{base}.volumeMounts[{j}].name",
                       f'Not found: "{mount.get("name")}"')


def _check_workload(obj: dict[str, Any], errors: InvalidFields, policies: tuple[str, ...]) -> None:
    spec = obj.get("spec") or {}
    template = spec.get("template") or {}
    check_pod_spec(template.get("spec") or {}, "spec.template.spec", errors, policies)
    replicas = spec.get("replicas")
    if isinstance(replicas, int) and replicas < 0:
        errors.invalid("spec.replicas", replicas, "must be greater than or equal to 0")
    selector = spec.get("selector")
    reqs = selector_from_label_selector(selector)
    if not reqs:
        errors.invalid("spec.selector", selector, "empty selector is invalid for deployment")
    elif not labels_match(reqs, template):
        errors.invalid("spec.template.metadata.labels",
                       (template.get("metadata") or {}).get("labels"),
                       "`selector` does not match template `labels`")


def _check_service(obj: dict[str, Any], errors: InvalidFields) -> None:
    spec = obj.get("spec") or {}
    stype = spec.get("type", "ClusterIP")
    if stype not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
        errors.unsupported("spec.type", stype, ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"])
    if stype == "ExternalName" and not spec.get("externalName"):
        errors.required("spec.externalName")
    ports = spec.get("ports") or []
    if not ports and spec.get("clusterIP") != "None" and stype != "ExternalName":
        errors.required("spec.ports")
    names: set[str] = set()
    for i, port in enumerate(ports):
        name = port.get("name") or ""
        if len(ports) > 1 and not name:
            errors.required(f"spec.ports[{i}].name")
        if name and name in names:
            errors.duplicate(f"spec.ports[{i}].name", name)
        names.add(name)
        value = port.get("port")
        if not isinstance(value, int) or not 1 <= value <= 65535:
            errors.invalid(f"spec.ports[{i}].port", value, "must be between 1 and 65535, inclusive")
        if port.get("protocol", "TCP") not in ("TCP", "UDP", "SCTP"):
            errors.unsupported(f"spec.ports[{i}].protocol", port.get("protocol"), ["SCTP", "TCP", "UDP"])


def _check_config_keys(obj: dict[str, Any], errors: InvalidFields) -> None:
    seen: set[str] = set()
    for section in ("data", "binaryData", "stringData"):
        for key in obj.get(section) or {}:
            if len(key) > 253 or not _CONFIG_KEY.match(key):
                errors.invalid(f"{section}[{key}]", key,
                               "a valid config key must consist of alphanumeric characters, '-', "
                               "'_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', "
                               "regex used for validation is '[-._a-zA-Z0-9]+')")
            if section == "binaryData" and key in seen:
                errors.invalid(f"data[{key}]", key, "duplicate of key present in binaryData")
            seen.add(key)


def _check_pvc(obj: dict[str, Any], errors: InvalidFields) -> None:
    spec = obj.get("spec") or {}
    if not spec.get("accessModes"):
        errors.required("spec.accessModes")
    if not ((spec.get("resources") or {}).get("requests") or {}).get("storage"):
        errors.required("spec.resources[storage]")


def _check_crd(obj: dict[str, Any], errors: InvalidFields) -> None:
    spec = obj.get("spec") or {}
    names = spec.get("names") or {}
    expected = f"{names.get('plural')}.{spec.get('group')}"
    if (obj.get("metadata") or {}).get("name") != expected:
        errors.invalid("metadata.name", (obj.get("metadata") or {}).get("name"),
                       'must be spec.names.plural+"."+spec.group')
    versions = spec.get("versions") or []
    if not versions:
        errors.required("spec.versions", "must have exactly one version marked as storage version")
    elif sum(1 for v in versions if v.get("storage")) != 1:
        errors.invalid("spec.versions", [v.get("name") for v in versions],
                       "must have exactly one version marked as storage version")
    for i, ver in enumerate(versions):
        if not (ver.get("schema") or {}).get("openAPIV3Schema"):
            errors.required(f"spec.versions[{i}].schema.openAPIV3Schema",
                            "schemas are required")


def check_object(rtype: ResourceType, obj: dict[str, Any], errors: InvalidFields) -> None:
    """Kind-specific semantic checks on a complete object (after defaulting)."""
    check_metadata(rtype, obj, errors)
    key = rtype.key
    if key == ("", "pods"):
        check_pod_spec(obj.get("spec") or {}, "spec", errors, ("Always", "OnFailure", "Never"))
    elif key in (("apps", "deployments"), ("apps", "replicasets"), ("apps", "daemonsets")):
        _check_workload(obj, errors, ("Always",))
    elif key == ("batch", "jobs"):
        template = (obj.get("spec") or {}).get("template") or {}
        check_pod_spec(template.get("spec") or {}, "spec.template.spec", errors, ("OnFailure", "Never"))
    elif key == ("", "services"):
        _check_service(obj, errors)
    elif key in (("", "configmaps"), ("", "secrets")):
        _check_config_keys(obj, errors)
    elif key == ("", "persistentvolumeclaims"):
        _check_pvc(obj, errors)
    elif key == ("apiextensions.k8s.io", "customresourcedefinitions"):
        _check_crd(obj, errors)


# ---------------------------------------------------------------- updates

_POD_MUTABLE_NOTE = ("pod updates may not change fields other than `spec.containers[*].image`,"
                     "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
                     "`spec.tolerations` (only additions to existing tolerations),"
                     "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was "
                     "previously negative)")


def _pod_spec_without_mutables(spec: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in spec.items()
           if k not in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds")}
    for group in ("containers", "initContainers"):
        if group in out:
            out[group] = [{k: v for k, v in c.items() if k != "image"} for c in out[group]]
    return out


def _immutable(errors: InvalidFields, old: Any, new: Any, fld: str) -> None:
    if old != new:
        errors.invalid(fld, new, "field is immutable")


def check_update(rtype: ResourceType, old: dict[str, Any], new: dict[str, Any],
                 errors: InvalidFields) -> None:
    """Immutable-field rules the real API enforces on PUT and PATCH."""
    key = rtype.key
    old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
    if key == ("", "pods"):
        if _pod_spec_without_mutables(old_spec) != _pod_spec_without_mutables(new_spec):
            errors.forbidden("spec", _POD_MUTABLE_NOTE)
    elif key in (("apps", "deployments"), ("apps", "replicasets"), ("apps", "daemonsets")):
        _immutable(errors, old_spec.get("selector"), new_spec.get("selector"), "spec.selector")
    elif key == ("batch", "jobs"):
        _immutable(errors, old_spec.get("selector"), new_spec.get("selector"), "spec.selector")
        _immutable(errors, old_spec.get("template"), new_spec.get("template"), "spec.template")
    elif key in (("", "configmaps"), ("", "secrets")) and old.get("immutable"):
        if not new.get("immutable"):
            errors.forbidden("immutable", "field is immutable when `immutable` is set")
        for section in ("data", "binaryData"):
            if old.get(section) != new.get(section):
                errors.forbidden(section, "field is immutable when `immutable` is set")
    elif key == ("", "persistentvolumeclaims"):
        strip = lambda s: {k: v for k, v in s.items() if k not in ("resources", "volumeName")}  # noqa: E731
        if strip(old_spec) != strip(new_spec):
            errors.forbidden("spec", "spec is immutable after creation except resources.requests "
                             "and volumeAttributesClassName for bound claims")
    elif key in (("rbac.authorization.k8s.io", "rolebindings"),
                 ("rbac.authorization.k8s.io", "clusterrolebindings")):
        if old.get("roleRef") != new.get("roleRef"):
            errors.invalid("roleRef", new.get("roleRef"), "cannot change roleRef")
    elif key == ("apiextensions.k8s.io", "customresourcedefinitions"):
        _immutable(errors, old_spec.get("scope"), new_spec.get("scope"), "spec.scope")
