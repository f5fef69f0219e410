"""Kubernetes-shaped API errors.

The product reacts to the *reason* and *code* of a failed call (404 -> create, 409 -> re-read,
422 -> a bug in the manifest), so every failure must carry exactly what the real API server
would put in its `Status` body; the HTTP layer serialises `ApiError.to_status()` verbatim.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Cause:
    """One `details.causes[]` entry: which field failed and why."""

    reason: str   # FieldValueInvalid | FieldValueRequired | FieldValueNotSupported | FieldValueForbidden ...
    message: str
    field: str

    def to_dict(self) -> dict[str, str]:
        # The real API omits empty members (a JSON-patch failure has only a message).
        out = {"reason": self.reason, "message": self.message, "field": self.field}
        return {k: v for k, v in out.items() if v}


class ApiError(Exception):
    """A failed API call, carrying the real API's code, reason, message and details."""

    def __init__(self, code: int, reason: str, message: str, *, name: str | None = None,
                 group: str | None = None, kind: str | None = None,
                 causes: list[Cause] | None = None) -> None:
        super().__init__(f"{code} {reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message
        self.name = name
        self.group = group
        self.kind = kind
        self.causes = list(causes or [])

    def to_status(self) -> dict[str, Any]:
        """The exact `Status` document the real API returns for this failure."""
        details: dict[str, Any] = {}
        if self.name:
            details["name"] = self.name
        if self.group:
            details["group"] = self.group
        if self.kind:
            details["kind"] = self.kind
        if self.causes:
            details["causes"] = [c.to_dict() for c in self.causes]
        status: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                  "status": "Failure", "message": self.message,
                                  "reason": self.reason}
        if details:
            status["details"] = details
        status["code"] = self.code
        return status


@dataclass
class InvalidFields:
    """Collects field errors so one 422 reports all of them, like the real validators."""

    causes: list[Cause] = field(default_factory=list)

    def add(self, reason: str, fld: str, message: str) -> None:
        self.causes.append(Cause(reason, message, fld))

    def required(self, fld: str, detail: str = "") -> None:
        self.add("FieldValueRequired", fld, "Required value" + (f": {detail}" if detail else ""))

    def invalid(self, fld: str, value: Any, detail: str) -> None:
        self.add("FieldValueInvalid", fld, f"Invalid value: {_go_repr(value)}: {detail}")

    def unsupported(self, fld: str, value: Any, supported: list[str]) -> None:
        allowed = ", ".join(f'"{s}"' for s in supported)
        self.add("FieldValueNotSupported", fld,
                 f"Unsupported value: {_go_repr(value)}: supported values: {allowed}")

    def forbidden(self, fld: str, detail: str) -> None:
        self.add("FieldValueForbidden", fld, f"Forbidden: {detail}")

    def duplicate(self, fld: str, value: Any) -> None:
        self.add("FieldValueDuplicate", fld, f"Duplicate value: {_go_repr(value)}")

    def raise_if_any(self, kind: str, group: str, name: str) -> None:
        if self.causes:
            unique = list({(c.reason, c.field, c.message): c for c in self.causes}.values())
            raise invalid_error(kind, group, name, unique)


def _go_repr(value: Any) -> str:
    """Render a value the way the Go validators print it (strings quoted, rest bare)."""
    if isinstance(value, str):
        return f'"{value}"'
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def qualified(plural_or_kind: str, group: str) -> str:
    """`pods`, `deployments.apps`, `Pgcluster.crunchydata.com`: how messages name a type."""
    return f"{plural_or_kind}.{group}" if group else plural_or_kind


def not_found(plural: str, group: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{qualified(plural, group)} "{name}" not found',
                    name=name, group=group or None, kind=plural)


def already_exists(plural: str, group: str, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{qualified(plural, group)} "{name}" already exists',
                    name=name, group=group or None, kind=plural)


def conflict(plural: str, group: str, name: str, detail: str | None = None) -> ApiError:
    detail = detail or ("the object has been modified; please apply your changes to the "
                        "latest version and try again")
    return ApiError(409, "Conflict",
                    f'Operation cannot be fulfilled on {qualified(plural, group)} "{name}": {detail}',
                    name=name, group=group or None, kind=plural)


def invalid_error(kind: str, group: str, name: str, causes: list[Cause]) -> ApiError:
    """422 Invalid, message formatted like apimachinery's NewInvalid."""
    parts = [f"{c.field}: {c.message}" if c.field else c.message for c in causes]
    summary = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    return ApiError(422, "Invalid", f'{qualified(kind, group)} "{name}" is invalid: {summary}',
                    name=name, group=group or None, kind=kind, causes=causes)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def no_such_resource() -> ApiError:
    """What the real API answers for a resource type it does not serve."""
    return ApiError(404, "NotFound", "the server could not find the requested resource")


def method_not_allowed(method: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", f"the server does not allow this method on the "
                    f"requested resource ({method})")
