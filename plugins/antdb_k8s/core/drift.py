"""Comparing a live Kubernetes object with the one the package wants: pure, on plain dicts.

`contains` decides whether an apply has anything to send (server-added fields ignored);
`spec_drift` names, for a human, the fields that differ where the package will not patch.
"""

from __future__ import annotations

from typing import Any, Mapping


def contains(actual: Any, desired: Any) -> bool:
    """Whether `actual` already has every field `desired` sets (server defaults are ignored)."""
    if isinstance(desired, Mapping):
        return isinstance(actual, Mapping) and all(contains(actual.get(k), v) for k, v in desired.items())
    if isinstance(desired, list):
        return isinstance(actual, list) and len(actual) == len(desired) and all(
            contains(a, d) for a, d in zip(actual, desired))
    return actual == desired


def spec_drift(current: Mapping, desired: Mapping, prefix: str = "spec") -> list[str]:
    """Fields of `desired` whose live value differs, as `path: live -> desired` lines."""
    lines: list[str] = []
    for key, want in desired.items():
        have = current.get(key) if isinstance(current, Mapping) else None
        if isinstance(want, Mapping) and isinstance(have, Mapping):
            lines += spec_drift(have, want, f"{prefix}.{key}")
        elif have != want:
            lines.append(f"{prefix}.{key}: {have!r} -> {want!r}")
    return lines
