"""Schema validation: built-in kinds against the official schemas, custom resources against
their CRD's `openAPIV3Schema`.

Why: a manifest the real API server would refuse (a misspelt field, a wrong type, a missing
required value) must fail in tests exactly where it would fail in production, with a 422 whose
causes name the field. Unknown fields are rejected (strict), which is what the real API does
with `fieldValidation=Strict`; it *drops* them by default, which would hide the typo.

Built-in schemas come from `kubernetes_validate` (the bundled 1.30 strict schemas). Its own
`validate()` re-reads a 1.2 MB definitions file on every call (~13 ms), so validators are
built once per kind and cached here.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from typing import Any

import jsonschema
from kubernetes_validate import utils as kv_utils
from referencing import Registry, Resource

from .errors import InvalidFields
from .resources import ResourceType

K8S_VERSION = "1.30"


def field_path(parts: Any) -> str:
    """`["spec", "containers", 0, "image"]` -> `spec.containers[0].image` (the API's notation)."""
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


# ---------------------------------------------------------------- built-in kinds

@functools.lru_cache(maxsize=None)
def _schema_dir(strict: bool) -> str:
    versions = [v for v in kv_utils.all_versions()
                if kv_utils.major_minor(v) <= K8S_VERSION]
    return f"v{versions[-1]}-local" + ("-strict" if strict else "")


@functools.lru_cache(maxsize=None)
def _definitions(schema_dir: str) -> Registry:
    defs = kv_utils.schema_contents(f"kubernetes-json-schema/{schema_dir}/_definitions.json",
                                    K8S_VERSION)
    return Resource.from_contents(defs) @ Registry()


@functools.lru_cache(maxsize=None)
def _builtin_validator(api_version: str, kind: str, strict: bool) -> jsonschema.Validator | None:
    schema_dir = _schema_dir(strict)
    short_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = kv_utils.schema_contents(
            f"kubernetes-json-schema/{schema_dir}/{kind.lower()}-{short_version}.json", K8S_VERSION)
    except FileNotFoundError:
        return None
    registry = Resource.from_contents(schema) @ _definitions(schema_dir)
    return jsonschema.Draft202012Validator(schema, registry=registry)


def validate_builtin(rtype: ResourceType, obj: dict[str, Any], errors: InvalidFields,
                     strict: bool = True) -> None:
    """Check a built-in object against its official schema, adding causes to `errors`."""
    validator = _builtin_validator(rtype.api_version, rtype.kind, strict)
    if validator is None:
        return
    _collect(validator, obj, errors)


def validate_object_meta(obj: dict[str, Any], errors: InvalidFields) -> None:
    """A custom resource's metadata, checked against the built-in ObjectMeta schema."""
    validator = _builtin_validator("v1", "ConfigMap", True)   # any kind: only metadata is probed
    if validator is None:
        return
    probe = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": obj.get("metadata")}
    _collect(validator, probe, errors)


def warm_up() -> None:
    """Build the validators the product uses most, so the first request is not the slow one."""
    for api_version, kind in (("v1", "Pod"), ("v1", "Service"), ("apps/v1", "Deployment")):
        _builtin_validator(api_version, kind, True)


# ---------------------------------------------------------------- error conversion

def _collect(validator: jsonschema.Validator, obj: dict[str, Any], errors: InvalidFields,
             limit: int = 20) -> None:
    found = sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))
    for err in found[:limit]:
        _convert(err, errors)


def _convert(err: jsonschema.ValidationError, errors: InvalidFields) -> None:
    path = list(err.absolute_path)
    where = field_path(path)
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        known = set((err.schema or {}).get("properties") or {})
        patterns = list(((err.schema or {}).get("patternProperties") or {}))
        for extra in err.instance:
            if extra in known or any(re.search(p, extra) for p in patterns):
                continue
            full = field_path(path + [extra])
            errors.add("FieldValueInvalid", full, f'unknown field "{full}"')
        return
    if err.validator == "required":
        missing = re.match(r"'([^']+)' is a required property", err.message)
        name = missing.group(1) if missing else "?"
        errors.required(field_path(path + [name]))
        return
    if err.validator == "enum":
        errors.unsupported(where, err.instance, [str(v) for v in err.validator_value if v is not None])
        return
    if err.validator == "type":
        expected = err.validator_value
        expected = [t for t in expected if t != "null"] if isinstance(expected, list) else [expected]
        errors.add("FieldValueTypeInvalid", where,
                   f"Invalid value: {_short(err.instance)}: must be of type {' or '.join(expected)}")
        return
    if err.validator in ("oneOf", "anyOf"):
        errors.add("FieldValueTypeInvalid", where,
                   f"Invalid value: {_short(err.instance)}: must be an integer or a string")
        return
    errors.add("FieldValueInvalid", where, f"Invalid value: {_short(err.instance)}: {err.message}")


def _short(value: Any) -> str:
    text = f'"{value}"' if isinstance(value, str) else repr(value)
    return text if len(text) < 80 else text[:77] + "..."


# ---------------------------------------------------------------- custom resources

_DROP = {"description", "title", "example", "externalDocs", "default", "nullable"}


def crd_version_schema(crd: dict[str, Any], version: str) -> dict[str, Any] | None:
    """The `openAPIV3Schema` of one version of a CRD (None if the version has none)."""
    for ver in (crd.get("spec") or {}).get("versions") or []:
        if ver.get("name") == version:
            return ((ver.get("schema") or {}).get("openAPIV3Schema")) or None
    return None


def to_jsonschema(node: Any, root: bool = False) -> Any:
    """Translate a structural OpenAPI v3 schema to a draft-4 JSON schema, strict on unknowns."""
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key in _DROP:
            continue
        if key in ("properties", "patternProperties"):
            out[key] = {k: to_jsonschema(v) for k, v in value.items()}
        elif key in ("items", "not") or (key == "additionalProperties" and isinstance(value, dict)):
            out[key] = to_jsonschema(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [to_jsonschema(v) for v in value]
        else:
            out[key] = value
    _apply_extensions(node, out, root)
    return out


def _apply_extensions(node: dict[str, Any], out: dict[str, Any], root: bool) -> None:
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if node.get("nullable"):
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = list(out["enum"]) + [None]
    if root or node.get("x-kubernetes-embedded-resource"):
        props = out.setdefault("properties", {})
        props["apiVersion"] = {"type": "string"}
        props["kind"] = {"type": "string"}
        props["metadata"] = {"type": "object"}     # ObjectMeta is validated by the server itself
    is_object = node.get("type") == "object" or "properties" in node
    if (is_object and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False


@functools.lru_cache(maxsize=256)
def _cr_validator(schema_json: str) -> jsonschema.Validator:
    """Keyed by the schema text, so an edited CRD gets a fresh validator."""
    schema = to_jsonschema(json.loads(schema_json), root=True)
    return jsonschema.Draft4Validator(schema)


def validate_custom(rtype: ResourceType, obj: dict[str, Any], errors: InvalidFields) -> None:
    """Validate a custom resource against the served version's schema."""
    schema = crd_version_schema(rtype.crd or {}, rtype.version)
    if schema is None:
        return
    validator = _cr_validator(json.dumps(schema, sort_keys=True))
    _collect(validator, obj, errors)


def apply_schema_defaults(schema: Any, value: Any) -> Any:
    """Fill `default`s from a structural schema, as the API server does for custom resources."""
    if not isinstance(schema, dict):
        return value
    if isinstance(value, dict):
        for name, sub in (schema.get("properties") or {}).items():
            if name not in value and isinstance(sub, dict) and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                value[name] = apply_schema_defaults(sub, value[name])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for name in value:
                if name not in (schema.get("properties") or {}):
                    value[name] = apply_schema_defaults(extra, value[name])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_schema_defaults(schema["items"], v) for v in value]
    return value
