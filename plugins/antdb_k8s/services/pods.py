"""Pod actions built from hook calls: replace a node's database pod, wait for pods to be gone.

Repair (`repair: full`), the restart check and anything later restart a node the same
way: delete its primary pod, then wait, bounded, for a Ready replacement with another
name whose database passes the caller's health check.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Callable, Iterable

from antdb_k8s.core.readiness import ReadinessReport
from antdb_k8s.core.verify import first_line
from antdb_k8s.services.discovery import read_readiness
from antdb_k8s.services.wait import Poll, wait_until

if TYPE_CHECKING:
    from antdb_k8s.hooks.kube import AntDBKubeHook

log = logging.getLogger(__name__)
# describe(old pod, last readiness report, last state line, seconds waited) -> the timeout message
Describe = Callable[[str | None, ReadinessReport, str, float], str]


def _replacement(kube: "AntDBKubeHook", namespace: str, node: str, old: str | None,
                 healthy: Callable[[], bool], seen: dict) -> Poll[str]:
    report = read_readiness(kube, namespace, [node])
    seen["report"], state = report, report.nodes[0]
    if state.ready and state.pod != old:
        try:
            if healthy():
                return Poll(True, state.pod)
            return Poll(False, state=f"pod {state.pod} Ready but not healthy yet")
        except Exception as exc:  # noqa: BLE001 - a starting database refuses connections
            return Poll(False, state=f"pod {state.pod} Ready, database: {first_line(exc)}")
    if state.pod is not None and state.pod != old:
        return Poll(False, state=f"pod {state.pod} not Ready")
    return Poll(False, state="no replacement pod yet")


def replace_pod(kube: "AntDBKubeHook", namespace: str, node: str, healthy: Callable[[], bool], *,
                deadline: float, interval: float, describe: Describe, old_pod: str | None = None) -> tuple[str | None, str]:
    """Delete `node`'s primary database pod and wait until a new Ready one is `healthy()`.

    `old_pod` is the pod to delete when the caller has read it already (else it is read).
    `deadline` is on `time.monotonic()`. Returns (old pod, new pod); on timeout raises
    `WaitTimeout` with `describe(...)`'s message.
    """
    old = old_pod if old_pod is not None else read_readiness(kube, namespace, [node]).nodes[0].pod
    if old is not None:
        kube.delete("v1", "Pod", old, namespace)
        log.info("%s: deleted pod %s; waiting for its replacement", node, old)
    seen: dict = {}
    new = wait_until(lambda: _replacement(kube, namespace, node, old, healthy, seen), deadline, interval,
                     lambda poll, waited: describe(old, seen["report"], poll.state, waited), what=f"{node}'s new pod")
    log.info("%s: pod %s Ready and healthy", node, new)
    return old, new


def node_pod_names(kube: "AntDBKubeHook", namespace: str, nodes: Iterable[str]) -> list[str]:
    """Every pod of `nodes` (database, pgBackRest repo and job pods; Terminating ones included)."""
    wanted = set(nodes)
    return sorted(p["metadata"]["name"] for p in kube.list("v1", "Pod", namespace)
                  if ((p["metadata"].get("labels") or {}).get("pg-cluster")) in wanted)


def wait_pods_gone(kube: "AntDBKubeHook", namespace: str, nodes: Iterable[str], *, deadline: float,
                   interval: float, describe: Callable[[list[str], float], str]) -> None:
    """Until no pod of `nodes` exists, so no volume is released under a running database; bounded."""
    wanted, seen = list(nodes), {"left": []}

    def look() -> Poll[None]:
        seen["left"] = node_pod_names(kube, namespace, wanted)
        return Poll(not seen["left"], None, f"{len(seen['left'])} pod(s) to go: {', '.join(seen['left'])}")

    wait_until(look, deadline, interval, lambda poll, waited: describe(seen["left"], waited), what="pods to go")


def monotonic_deadline(seconds: float) -> float:
    """`seconds` from now on the clock `wait_until` uses by default."""
    return time.monotonic() + seconds
