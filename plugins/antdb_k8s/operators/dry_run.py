"""What a dry run shows of the objects it would apply: each logged at INFO as YAML, all in XCom `manifests`."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

MANIFESTS_KEY = "manifests"


def show_manifests(task: Any, context: Any, manifests: Iterable[Mapping[str, Any]], verb: str = "apply") -> list[str]:
    """Log and publish `manifests` (Secret values redacted); returns their Kind/name labels."""
    from antdb_k8s.core.rendering import as_yaml, label, redacted  # yaml: loaded only when a task runs

    shown = [redacted(m) for m in manifests]
    for manifest in shown:
        task.log.info("DRY RUN: would %s %s:\n---\n%s", verb, label(manifest), as_yaml(manifest))
    context["ti"].xcom_push(key=MANIFESTS_KEY, value=shown)
    return [label(m) for m in shown]
