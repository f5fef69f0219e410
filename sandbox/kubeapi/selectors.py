"""Label and field selectors with the real API's grammar and its 400s on bad input.

The product finds its pods and services by label (`pg-cluster=gc,role=master`); a selector
the real API would reject must be rejected here too, or a typo passes every test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from .errors import bad_request

_LABEL_NAME = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_KEY_RE = re.compile(rf"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?{_LABEL_NAME}$")
_VALUE_RE = re.compile(rf"^({_LABEL_NAME})?$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str                 # "=", "!=", "in", "notin", "exists", "!", "gt", "lt"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("=", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        try:                                   # gt / lt compare integers, absent never matches
            number = int(value) if present else None
        except (TypeError, ValueError):
            return False
        limit = int(self.values[0])
        return number is not None and (number > limit if self.op == "gt" else number < limit)


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside `( ... )` value sets."""
    parts, depth, current = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


_SET_RE = re.compile(r"^\s*(\S+?)\s+(in|notin)\s*\((.*)\)\s*$")
_CMP_RE = re.compile(r"^\s*([^!=<>\s]+)\s*(==|!=|=|>|<)\s*(.*?)\s*$")


def _parse_requirement(text: str) -> Requirement:
    m = _SET_RE.match(text)
    if m:
        key, op, vals = m.group(1), m.group(2), tuple(v.strip() for v in m.group(3).split(","))
        if vals == ("",):
            raise bad_request("unable to parse requirement: for 'in', 'notin' operators, "
                              "values set can't be empty")
        return _checked(Requirement(key, op, tuple(sorted(set(vals)))))
    m = _CMP_RE.match(text)
    if m:
        key, op, val = m.groups()
        op = {"==": "=", ">": "gt", "<": "lt"}.get(op, op)
        if op in ("gt", "lt") and not re.fullmatch(r"-?\d+", val):
            raise bad_request(f"unable to parse requirement: for 'Gt', 'Lt' operators, the value "
                              f"must be an integer: {val!r}")
        return _checked(Requirement(key, op, (val,)))
    stripped = text.strip()
    if stripped.startswith("!"):
        return _checked(Requirement(stripped[1:].strip(), "!"))
    if stripped and " " not in stripped:
        return _checked(Requirement(stripped, "exists"))
    raise bad_request(f"unable to parse requirement: found '{stripped}', expected: '=', '!=', "
                      "'==', 'in', notin'")


def _checked(req: Requirement) -> Requirement:
    if not _KEY_RE.match(req.key) or len(req.key.rsplit("/", 1)[-1]) > 63:
        raise bad_request(f"unable to parse requirement: values[0][key]: Invalid value: "
                          f'"{req.key}": name part must consist of alphanumeric characters, '
                          "'-', '_' or '.', and must start and end with an alphanumeric character")
    for v in req.values:
        if req.op not in ("gt", "lt") and (len(v) > 63 or not _VALUE_RE.match(v)):
            raise bad_request(f'unable to parse requirement: values[0][{req.key}]: Invalid value: '
                              f'"{v}": a valid label must be an empty string or consist of '
                              "alphanumeric characters, '-', '_' or '.'")
    return req


def parse_label_selector(text: str | None) -> list[Requirement]:
    """Parse a labelSelector query string; empty/None selects everything."""
    if not text or not text.strip():
        return []
    return [_parse_requirement(part) for part in _split_top_level(text)]


def labels_match(requirements: list[Requirement], obj: dict[str, Any]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(r.matches(labels) for r in requirements)


def selector_from_label_selector(sel: dict[str, Any] | None) -> list[Requirement]:
    """A metav1.LabelSelector (matchLabels/matchExpressions) as requirements."""
    sel = sel or {}
    reqs = [Requirement(k, "=", (str(v),)) for k, v in (sel.get("matchLabels") or {}).items()]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expr in sel.get("matchExpressions") or []:
        reqs.append(Requirement(expr["key"], ops.get(expr.get("operator"), "in"),
                                tuple(expr.get("values") or ())))
    return reqs


def format_label_selector(sel: dict[str, Any] | None) -> str:
    """Scale.status.selector form: `a=b,c in (d)`."""
    parts = []
    for r in selector_from_label_selector(sel):
        if r.op == "=":
            parts.append(f"{r.key}={r.values[0]}")
        elif r.op in ("in", "notin"):
            parts.append(f"{r.key} {r.op} ({','.join(r.values)})")
        else:
            parts.append(r.key if r.op == "exists" else f"!{r.key}")
    return ",".join(parts)


# ---------------------------------------------------------------- field selectors

_COMMON_FIELDS = ("metadata.name", "metadata.namespace")
SUPPORTED_FIELDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "pods"): ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
                   "spec.serviceAccountName", "spec.hostNetwork", "status.phase", "status.podIP",
                   "status.nominatedNodeName"),
    ("", "events"): ("involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                     "involvedObject.uid", "involvedObject.apiVersion",
                     "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason",
                     "reportingComponent", "source", "type"),
    ("", "secrets"): ("type",),
    ("", "namespaces"): ("status.phase",),
    ("", "nodes"): ("spec.unschedulable",),
    ("", "persistentvolumeclaims"): ("status.phase",),
    ("", "persistentvolumes"): ("status.phase",),
    ("", "services"): ("spec.clusterIP", "spec.type"),
    ("apps", "replicasets"): ("status.replicas",),
    ("batch", "jobs"): ("status.successful",),
}


@dataclass(frozen=True)
class FieldRequirement:
    path: str
    negate: bool
    value: str

    def matches(self, obj: dict[str, Any]) -> bool:
        actual = _field_value(obj, self.path)
        return (actual != self.value) if self.negate else (actual == self.value)


def _field_value(obj: dict[str, Any], path: str) -> str:
    if path == "source":                       # events: source.component
        path = "source.component"
    cur: Any = obj
    for part in path.split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return "" if cur is None else str(cur)


def parse_field_selector(text: str | None, type_key: tuple[str, str]) -> list[FieldRequirement]:
    """Parse a fieldSelector; fields the type does not index are a 400, as in the real API."""
    if not text or not text.strip():
        return []
    allowed = _COMMON_FIELDS + SUPPORTED_FIELDS.get(type_key, ())
    out = []
    for part in text.split(","):
        m = re.match(r"^\s*([^!=\s]+)\s*(==|!=|=)\s*(.*?)\s*$", part)
        if not m:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        path, op, value = m.groups()
        if path not in allowed:
            raise bad_request(f"field label not supported: {path}")
        out.append(FieldRequirement(path, op == "!=", value))
    return out


def fields_match(requirements: list[FieldRequirement], obj: dict[str, Any]) -> bool:
    return all(r.matches(obj) for r in requirements)


def make_filter(label_selector: str | None, field_selector: str | None,
                type_key: tuple[str, str]) -> Callable[[dict[str, Any]], bool]:
    """Parse both selectors once (raising 400 early) and return a predicate."""
    labels = parse_label_selector(label_selector)
    fields = parse_field_selector(field_selector, type_key)
    return lambda obj: labels_match(labels, obj) and fields_match(fields, obj)
