"""The pod-restart check (runbook section 3) as data: which nodes to restart, what is recorded
before, and how the record after is judged.

A node's address is its Service ClusterIP, not its pod (ADR 0003), so deleting a database
pod must change nothing the cluster is wired by: ClusterIPs, `pgxc_node` on every catalog
holder, and the rows a table holds, counted from every coordinator and per datanode.
Keeping the comparison pure means the DAG's verdict is unit-tested without a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from antdb_k8s.core.names import is_dns1123_label
from antdb_k8s.core.smoke import scratch_table_name
from antdb_k8s.core.topology import Topology

ALL = "all"
TABLE_PREFIX = "antdb_restart_check"


class UnknownNodeError(ValueError):
    """The `pod` param names no node of the cluster; the message lists the ones it could name."""


def check_table_name(run_id: str) -> str:
    """The run's own check table: the same name in every task and try, so the drop always finds it."""
    return scratch_table_name(TABLE_PREFIX, run_id)


def choose_nodes(pod: object, topology: Topology) -> list[str]:
    """The nodes to restart, in order: one named node, or every node (gc, coordinators, datanodes)."""
    names = topology.names()
    if pod == ALL:
        return names
    if isinstance(pod, str) and is_dns1123_label(pod) and pod in names:
        return [pod]
    raise UnknownNodeError(f"pod {pod!r} is not a node of this cluster; choose one of {', '.join(names)} "
                           f"or {ALL!r}")


def _canonical_rows(rows: object) -> list[dict]:
    return sorted((dict(r) for r in rows or ()), key=lambda r: str(r.get("node_name")))


@dataclass(frozen=True)
class ClusterRecord:
    """What must survive a pod restart unchanged. Holds names, addresses and counts only."""

    cluster_ips: dict[str, str]
    pgxc: dict[str, list[dict]]
    counts: dict[str, int]
    per_datanode: dict[str, int]
    pods: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"cluster_ips": dict(self.cluster_ips), "pgxc": {h: list(r) for h, r in self.pgxc.items()},
                "counts": dict(self.counts), "per_datanode": dict(self.per_datanode), "pods": dict(self.pods)}

    @classmethod
    def from_dict(cls, data: Mapping) -> "ClusterRecord":
        return cls(cluster_ips={str(k): str(v) for k, v in (data.get("cluster_ips") or {}).items()},
                   pgxc={str(k): _canonical_rows(v) for k, v in (data.get("pgxc") or {}).items()},
                   counts={str(k): int(v) for k, v in (data.get("counts") or {}).items()},
                   per_datanode={str(k): int(v) for k, v in (data.get("per_datanode") or {}).items()},
                   pods={str(k): str(v) for k, v in (data.get("pods") or {}).items()})


def _map_changes(what: str, before: Mapping, after: Mapping) -> list[str]:
    lines = []
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            lines.append(f"{what} {key}: {before.get(key, 'absent')} -> {after.get(key, 'absent')}")
    return lines


def _pgxc_changes(holder: str, before: list[dict], after: list[dict]) -> list[str]:
    """Row by row (keyed by node_name) so the message names the node whose row moved."""
    old = {r.get("node_name"): r for r in before}
    new = {r.get("node_name"): r for r in after}
    lines = []
    for name in sorted(set(old) | set(new), key=str):
        if name not in new:
            lines.append(f"pgxc_node on {holder}: row {name} disappeared")
        elif name not in old:
            lines.append(f"pgxc_node on {holder}: row {name} appeared ({_row_text(new[name])})")
        elif old[name] != new[name]:
            lines.append(f"pgxc_node on {holder}: row {name} changed "
                         f"{_row_text(old[name])} -> {_row_text(new[name])}")
    return lines


def _row_text(row: Mapping) -> str:
    flags = [f for f, key in (("primary", "is_primary"), ("preferred", "is_preferred"), ("gtm", "is_gtm"))
             if row.get(key)]
    text = f"{row.get('node_type')} {row.get('node_host')}:{row.get('node_port')}"
    return text + (f" [{','.join(flags)}]" if flags else "")


def compare_records(before: ClusterRecord, after: ClusterRecord) -> list[str]:
    """Every difference that matters, one line each; empty when the restart changed nothing.

    Pod names are expected to change and are not compared.
    """
    lines = _map_changes("Service ClusterIP of", before.cluster_ips, after.cluster_ips)
    for holder in sorted(set(before.pgxc) | set(after.pgxc)):
        if holder not in after.pgxc:
            lines.append(f"pgxc_node on {holder}: not read after the restart")
        elif holder not in before.pgxc:
            lines.append(f"pgxc_node on {holder}: a catalog holder that was not there before")
        else:
            lines += _pgxc_changes(holder, _canonical_rows(before.pgxc[holder]),
                                   _canonical_rows(after.pgxc[holder]))
    lines += _map_changes("row count from", before.counts, after.counts)
    lines += _map_changes("rows on datanode", before.per_datanode, after.per_datanode)
    return lines


def summary_table(before: ClusterRecord, after: ClusterRecord, table: str) -> str:
    """Before/after per node for the task log: ClusterIP, pod, pgxc_node rows, count, rows held."""
    head = f"{'NODE':<6} {'CLUSTERIP':<33} {'POD':<50} {'PGXC':<7} {'COUNT':<13} DATANODE ROWS"
    lines = [f"restart check (table {table}): before -> after", head, "-" * len(head)]
    for node in before.cluster_ips or after.cluster_ips:
        ip = _pair(before.cluster_ips.get(node), after.cluster_ips.get(node))
        pod = _pair(before.pods.get(node), after.pods.get(node))
        pgxc = _pair(len(before.pgxc[node]), len(after.pgxc.get(node, []))) if node in before.pgxc else "-"
        count = _pair(before.counts.get(node), after.counts.get(node)) if node in before.counts else "-"
        held = _pair(before.per_datanode.get(node), after.per_datanode.get(node)) \
            if node in before.per_datanode or node in after.per_datanode else "-"
        lines.append(f"{node:<6} {ip:<33} {pod:<50} {pgxc:<7} {count:<13} {held}".rstrip())
    lines.append("-" * len(head))
    return "\n".join(lines)


def _pair(old: object, new: object) -> str:
    return f"{old}" if old == new else f"{old} -> {new}"
