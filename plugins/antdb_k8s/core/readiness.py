"""When is an AntDB node up? The one readiness decision, shared by the sensor and its trigger.

A node counts as ready when exactly its primary database pod reports the `Ready` condition.
Crunchy puts other pods beside it (pgBackRest repo, stanza-create and backup jobs) with
the same `pg-cluster` label; those never count. A pod that is being deleted never counts
either: during a restart the old pod may still say Ready while it is going away.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence


def _labels(pod: Mapping) -> Mapping[str, str]:
    return (pod.get("metadata") or {}).get("labels") or {}


def is_primary_database_pod(pod: Mapping) -> bool:
    """True for the pod running a node's database, false for backrest repo and job pods."""
    labels = _labels(pod)
    if labels.get("pgo-pg-database") != "true" or labels.get("pgo-backrest-repo") == "true":
        return False
    if "job-name" in labels or "controller-uid" in labels:
        return False
    return not (pod.get("metadata") or {}).get("deletionTimestamp")


def pod_is_ready(pod: Mapping) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def pod_wait_reason(pod: Mapping) -> str:
    """A short reason a DBA would recognise from `kubectl get pods` (ContainerCreating, CrashLoopBackOff...)."""
    status = pod.get("status") or {}
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason"):
            return waiting["reason"]
    return status.get("phase") or "Unknown"


@dataclass(frozen=True)
class NodeReadiness:
    node: str
    ready: bool
    pod: str | None
    reason: str


@dataclass(frozen=True)
class ReadinessReport:
    nodes: tuple[NodeReadiness, ...]
    expected: tuple[str, ...] = field(default=())

    @property
    def ready(self) -> tuple[str, ...]:
        return tuple(n.node for n in self.nodes if n.ready)

    @property
    def not_ready(self) -> tuple[NodeReadiness, ...]:
        return tuple(n for n in self.nodes if not n.ready)

    @property
    def done(self) -> bool:
        return not self.not_ready

    def progress_line(self) -> str:
        """`4/6 ready: waiting for cn2 (ContainerCreating), dn3 (no pod)`."""
        head = f"{len(self.ready)}/{len(self.nodes)} ready"
        if self.done:
            return f"{head}: {', '.join(self.ready)}"
        waiting = ", ".join(f"{n.node} ({n.reason})" for n in self.not_ready)
        return f"{head}: waiting for {waiting}"

    def to_dict(self) -> dict:
        return {"nodes": [n.__dict__ for n in self.nodes], "done": self.done}


def _assess_node(node: str, pods: Sequence[Mapping]) -> NodeReadiness:
    if not pods:
        return NodeReadiness(node, False, None, "no pod")
    ready = [p for p in pods if pod_is_ready(p)]
    if len(ready) == 1 and len(pods) == 1:
        return NodeReadiness(node, True, ready[0]["metadata"]["name"], "Ready")
    if len(pods) > 1:
        names = ", ".join(sorted(p["metadata"]["name"] for p in pods))
        return NodeReadiness(node, False, None, f"{len(pods)} primary pods ({names})")
    pod = pods[0]
    return NodeReadiness(node, False, pod["metadata"]["name"], pod_wait_reason(pod))


def assess_readiness(expected_nodes: Iterable[str], pods: Iterable[Mapping]) -> ReadinessReport:
    """Pure: which of `expected_nodes` have exactly one Ready primary database pod."""
    by_node: dict[str, list[Mapping]] = {}
    for pod in pods:
        if is_primary_database_pod(pod):
            by_node.setdefault(_labels(pod).get("pg-cluster", ""), []).append(pod)
    expected = tuple(expected_nodes)
    return ReadinessReport(tuple(_assess_node(n, by_node.get(n, [])) for n in expected), expected)


def format_timeout_report(report: ReadinessReport, events: Mapping[str, Sequence[Mapping]], waited: float) -> str:
    """Names every node not Ready, its pod and that pod's last events: what a DBA checks first."""
    lines = [f"timed out after {waited:.0f}s: {report.progress_line()}"]
    for node in report.not_ready:
        lines.append(f"  {node.node}: pod {node.pod or '-'} is {node.reason}")
        for event in list(events.get(node.pod or "", ()))[-5:]:
            lines.append(f"    {event.get('type', '')} {event.get('reason', '')}: {event.get('message', '')}")
    return "\n".join(lines)
