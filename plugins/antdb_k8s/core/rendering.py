"""Manifests as a dry run shows them: YAML a reader can apply by hand, with no secret in it."""

from __future__ import annotations

import copy
from typing import Any, Mapping

import yaml

REDACTED = "<not shown: generated or taken from a connection at apply time>"


def redacted(manifest: Mapping[str, Any]) -> dict:
    """A copy of `manifest` with every Secret value replaced, whatever the caller put there."""
    shown = copy.deepcopy(dict(manifest))
    if shown.get("kind") == "Secret":
        for field in ("data", "stringData"):
            if isinstance(shown.get(field), dict):
                shown[field] = {key: REDACTED for key in shown[field]}
    return shown


def as_yaml(manifest: Mapping[str, Any]) -> str:
    return yaml.safe_dump(redacted(manifest), sort_keys=False, default_flow_style=False)


def label(manifest: Mapping[str, Any]) -> str:
    meta = manifest.get("metadata") or {}
    name = meta.get("name") or (meta.get("generateName", "") + "*")
    return f"{manifest.get('kind')}/{name}"
