"""What happens to an object between the request and storage: server-set fields, defaulting,
status handling and validation. Pure functions of (type, old, new) so the store only has to
deal with locking, storage, events and cascades.
"""

from __future__ import annotations

import copy
import secrets
import uuid
from datetime import datetime, timezone
from typing import Any

from . import defaults, semantics, validation
from .errors import ApiError, InvalidFields, bad_request, conflict
from .resources import ResourceType

_SERVER_META = ("uid", "creationTimestamp", "generation", "resourceVersion", "selfLink",
                "deletionTimestamp", "deletionGracePeriodSeconds")
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def generate_name(prefix: str) -> str:
    """`generateName` + 5 random characters from the real API's alphabet."""
    return prefix[:58] + "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))


def spec_content(obj: dict[str, Any]) -> dict[str, Any]:
    """Everything that counts towards `metadata.generation` (all but metadata and status)."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def check_type_fields(rtype: ResourceType, obj: dict[str, Any]) -> None:
    """Body apiVersion/kind must name the endpoint's type; missing ones are filled in."""
    if obj.get("apiVersion") not in (None, rtype.api_version):
        raise bad_request(f"the API version in the data ({obj['apiVersion']}) does not match "
                          f"the expected API version ({rtype.api_version})")
    if obj.get("kind") not in (None, rtype.kind):
        raise bad_request(f"the kind in the data ({obj['kind']}) does not match the expected "
                          f"kind ({rtype.kind})")
    obj["apiVersion"], obj["kind"] = rtype.api_version, rtype.kind


def validate(rtype: ResourceType, obj: dict[str, Any], errors: InvalidFields) -> None:
    """Schema, then semantic validation; built-ins by official schema, CRs by their CRD.

    Semantic rules only run on schema-valid objects (the real API cannot even decode a
    wrongly typed body), which also keeps them free of type guards.
    """
    name = (obj.get("metadata") or {}).get("name") or ""
    if rtype.crd is not None:
        validation.validate_custom(rtype, obj, errors)
        validation.validate_object_meta(obj, errors)
        errors.raise_if_any(rtype.kind, rtype.group, name)
        semantics.check_metadata(rtype, obj, errors)
    else:
        validation.validate_builtin(rtype, obj, errors)
        errors.raise_if_any(rtype.kind, rtype.group, name)
        semantics.check_object(rtype, obj, errors)


def _apply_defaults(rtype: ResourceType, obj: dict[str, Any]) -> None:
    if rtype.crd is None:
        defaults.apply_defaults(rtype, obj)
        return
    schema = validation.crd_version_schema(rtype.crd, rtype.version)
    if schema:
        validation.apply_schema_defaults(schema, obj)


def prepare_create(rtype: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
    """Fill server-set fields and defaults, then validate (raises 422)."""
    obj = copy.deepcopy(obj)
    check_type_fields(rtype, obj)
    meta = obj.setdefault("metadata", {})
    if meta.get("resourceVersion"):
        raise bad_request("resourceVersion should not be set on objects to be created")
    for key in _SERVER_META:
        meta.pop(key, None)
    if not meta.get("name") and meta.get("generateName"):
        meta["name"] = generate_name(meta["generateName"])
    meta.update(uid=str(uuid.uuid4()), creationTimestamp=now_rfc3339(), generation=1)
    if rtype.crd is not None:
        if rtype.has_status:
            obj.pop("status", None)          # create cannot set a CR's status subresource
    else:
        status = defaults.initial_status(rtype, obj)
        if status is not None:
            obj["status"] = status
    _apply_defaults(rtype, obj)
    if rtype.key == ("batch", "jobs") and meta.get("name"):
        defaults.job_selector(obj)
    errors = InvalidFields()
    validate(rtype, obj, errors)
    errors.raise_if_any(rtype.kind, rtype.group, meta.get("name") or meta.get("generateName") or "")
    return obj


def _carry_server_fields(rtype: ResourceType, old: dict[str, Any], new: dict[str, Any]) -> None:
    old_meta, meta = old["metadata"], new.setdefault("metadata", {})
    name = old_meta["name"]
    if meta.get("uid") not in (None, "", old_meta["uid"]):
        raise conflict(rtype.plural, rtype.group, name,
                       f"Precondition failed: UID in precondition: {meta['uid']}, "
                       f"UID in object meta: {old_meta['uid']}")
    if meta.get("resourceVersion") not in (None, "", old_meta["resourceVersion"]):
        raise conflict(rtype.plural, rtype.group, name)
    for key in ("uid", "creationTimestamp", "generation", "resourceVersion", "name"):
        meta[key] = old_meta[key]
    if "namespace" in old_meta:
        meta["namespace"] = old_meta["namespace"]
    else:
        meta.pop("namespace", None)


def prepare_update(rtype: ResourceType, old: dict[str, Any], new: dict[str, Any],
                   status_only: bool = False) -> dict[str, Any]:
    """Merge server-owned parts of `old` into `new`, default, validate (raises 409/422).

    With a status subresource, the main endpoint ignores status changes and the status
    endpoint ignores everything but status, exactly like the real API.
    """
    new = copy.deepcopy(new)
    check_type_fields(rtype, new)
    _carry_server_fields(rtype, old, new)
    if status_only:
        status = new.get("status")
        new = copy.deepcopy(old)
        new["apiVersion"] = rtype.api_version
        if status is None:
            new.pop("status", None)
        else:
            new["status"] = status
    elif rtype.has_status:
        if "status" in old:
            new["status"] = copy.deepcopy(old["status"])
        else:
            new.pop("status", None)
    _apply_defaults(rtype, new)
    errors = InvalidFields()
    validate(rtype, new, errors)
    semantics.check_update(rtype, old, new, errors)
    errors.raise_if_any(rtype.kind, rtype.group, old["metadata"]["name"])
    if spec_content(new) != spec_content(old):
        new["metadata"]["generation"] = int(old["metadata"].get("generation") or 1) + 1
    return new


def check_preconditions(rtype: ResourceType, obj: dict[str, Any],
                        preconditions: dict[str, Any] | None) -> None:
    """DeleteOptions.preconditions (uid / resourceVersion) -> 409 Conflict on mismatch."""
    meta = obj["metadata"]
    for key, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
        wanted = (preconditions or {}).get(key)
        if wanted and wanted != meta.get(key):
            raise conflict(rtype.plural, rtype.group, meta["name"],
                           f"Precondition failed: {label} in precondition: {wanted}, "
                           f"{label} in object meta: {meta.get(key)}")


def internal_error(message: str) -> ApiError:
    return ApiError(500, "InternalError", f"Internal error occurred: {message}")
