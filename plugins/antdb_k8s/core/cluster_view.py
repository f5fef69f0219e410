"""What the AntDB page shows of one cluster, as data: node rows, the pgxc_node agreement matrix, health.

The facts come from the same discovery verification uses; the judgement of each catalog
holder's `pgxc_node` comes from the deploy planner (`plan_pgxc_changes`): a cell is
"missing" because the planner would CREATE it, "wrong host or port" because it would
ALTER host/port, and so on. Nothing here decides drift a second way. Pure: no Airflow,
Kubernetes or driver import, so the page's logic is unit-tested without a cluster.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping, Sequence

from antdb_k8s.core.pgxc import ChangeKind, PgxcRow, desired_rows, plan_pgxc_changes
from antdb_k8s.core.readiness import is_primary_database_pod, pod_is_ready
from antdb_k8s.core.topology import NodeAddress, NodeRole, Topology
from antdb_k8s.core.verify import agtm_finding, first_line


class Cell(str, enum.Enum):
    """One holder's view of one node in its `pgxc_node`."""

    OK = "ok"
    MISSING = "missing"
    WRONG_ADDRESS = "wrong host or port"
    WRONG_FLAG = "wrong flag"
    WRONG_TYPE = "wrong type"
    EXTRA = "extra"
    UNKNOWN = "not checked"

    @property
    def good(self) -> bool:
        return self is Cell.OK


class Health(str, enum.Enum):
    """A node's colour in the picture and the table: green, red (drift), grey (down), or unknown."""

    OK = "ok"
    DRIFT = "drift"
    DOWN = "down"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class MatrixCell:
    state: Cell
    detail: str = ""

    def to_dict(self) -> dict:
        return {"state": self.state.value, "detail": self.detail}


@dataclass(frozen=True)
class MatrixRow:
    """One catalog holder (gc or a coordinator) and its verdict on every node it should list."""

    holder: str
    cells: dict[str, MatrixCell]
    error: str | None = None  # why the row could not be read

    def to_dict(self) -> dict:
        return {"holder": self.holder, "error": self.error, "cells": {k: v.to_dict() for k, v in self.cells.items()}}


def _cell_of_alter(fields: Sequence[str]) -> Cell:
    return Cell.WRONG_ADDRESS if {"host", "port"} & set(fields) else Cell.WRONG_FLAG


def agreement_row(topology: Topology, holder: str, rows: Sequence[PgxcRow]) -> MatrixRow:
    """The holder's catalog judged by the planner: each planned change names one cell.

    Blockers (a type conflict, a datanode Kubernetes no longer has) are not changes, so
    they are read off the rows against the same desired rows the planner uses.
    """
    plan = plan_pgxc_changes(topology, rows, holder)
    cells = {name: MatrixCell(Cell.OK) for name in topology.names()}
    for change in plan.changes:
        name = change.row.node_name
        if change.kind is ChangeKind.CREATE:
            cells[name] = MatrixCell(Cell.MISSING, change.reason)
        elif change.kind is ChangeKind.DROP:
            cells[name] = MatrixCell(Cell.EXTRA, change.reason)
        else:
            cells[name] = MatrixCell(_cell_of_alter(change.fields), change.reason)
    desired = desired_rows(topology)
    for row in rows:
        want = desired.get(row.node_name)
        if want is None and row.node_name not in cells:
            cells[row.node_name] = MatrixCell(Cell.EXTRA, f"{row.node_name} is in pgxc_node on {holder} but not in "
                                                          f"Kubernetes (planner refuses to drop it)")
        elif want is not None and want.node_type != row.node_type:
            cells[row.node_name] = MatrixCell(Cell.WRONG_TYPE, f"registered as type {row.node_type!r}, Kubernetes "
                                                               f"runs it as {want.node_type!r}")
    return MatrixRow(holder, cells)


def unreadable_row(topology: Topology, holder: str, error: str) -> MatrixRow:
    return MatrixRow(holder, {n: MatrixCell(Cell.UNKNOWN, error) for n in topology.names()}, error)


def agreement_matrix(topology: Topology, catalogs: Mapping[str, Sequence[PgxcRow] | BaseException],
                     scrub: Callable[[str], str] = str) -> list[MatrixRow]:
    """One row per catalog holder, in topology order; an unreadable catalog is a row of 'not checked'."""
    matrix = []
    for holder in topology.catalog_holders:
        rows = catalogs.get(holder.name)
        if rows is None:
            matrix.append(unreadable_row(topology, holder.name, "not read"))
        elif isinstance(rows, BaseException):
            matrix.append(unreadable_row(topology, holder.name, scrub(first_line(rows))))
        else:
            matrix.append(agreement_row(topology, holder.name, rows))
    return matrix


def matrix_columns(matrix: Sequence[MatrixRow], topology: Topology) -> list[str]:
    """The topology's nodes, then any extra name some catalog lists."""
    names = topology.names()
    for row in matrix:
        names += [n for n in row.cells if n not in names]
    return names


# --------------------------------------------------------------------------- node rows

@dataclass(frozen=True)
class PodFacts:
    name: str | None
    ready: bool
    restarts: int
    image: str | None


def pod_facts(pods: Sequence[Mapping], node: str) -> PodFacts:
    """The primary database pod of `node` (the one readiness counts), or an absent pod."""
    mine = [p for p in pods if ((p.get("metadata") or {}).get("labels") or {}).get("pg-cluster") == node
            and is_primary_database_pod(p)]
    if not mine:
        return PodFacts(None, False, 0, None)
    pod = mine[0]
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    containers = (pod.get("spec") or {}).get("containers") or []
    database = next((c for c in containers if c.get("name") == "database"), containers[0] if containers else {})
    return PodFacts(pod["metadata"]["name"], pod_is_ready(pod), sum(int(s.get("restartCount") or 0) for s in statuses),
                    database.get("image"))


@dataclass(frozen=True)
class NodeRow:
    """One line of the node table."""

    name: str
    role: str
    pod: PodFacts
    address: str | None  # Service ClusterIP:port
    version: str | None
    reachable: bool | None  # None: not probed (no address)
    error: str | None
    agtm: str | None  # the node's agtm_host:agtm_port as it runs
    agtm_ok: bool | None
    health: Health = Health.UNKNOWN

    def to_dict(self) -> dict:
        return {"name": self.name, "role": self.role, "pod": self.pod.name, "ready": self.pod.ready,
                "restarts": self.pod.restarts, "image": self.pod.image, "address": self.address,
                "version": self.version, "reachable": self.reachable, "error": self.error, "agtm": self.agtm,
                "agtm_ok": self.agtm_ok, "health": self.health.value}


def short_version(version: str | None) -> str | None:
    """`PostgreSQL 11.6 (AntDB ...) on x86_64...` -> the part before ' on ', which names the product."""
    return version.split(" on ", 1)[0] if version else version


def node_row(name: str, role: NodeRole, pod: PodFacts, address: NodeAddress | None, identity, gc: NodeAddress | None,
             scrub: Callable[[str], str] = str) -> NodeRow:
    """`identity` is the node's NodeIdentity, an exception from probing it, or None (not probed)."""
    where = f"{address.host}:{address.port}" if address else None
    if identity is None:
        return NodeRow(name, role.value, pod, where, None, None, None, None, None)
    if isinstance(identity, BaseException):
        return NodeRow(name, role.value, pod, where, None, False, scrub(first_line(identity)), None, None)
    agtm = f"{identity.agtm_host}:{identity.agtm_port}" if identity.agtm_host else None
    agtm_ok = agtm_finding(address, identity.agtm_host, identity.agtm_port, gc).ok if gc else None
    return NodeRow(name, role.value, pod, where, short_version(identity.version), True, None, agtm, agtm_ok)


def node_health(row: NodeRow, matrix: Sequence[MatrixRow]) -> Health:
    """Down when its pod is not Ready or it does not answer; drift when any catalog or its agtm disagrees."""
    if not row.pod.ready or row.reachable is False:
        return Health.DOWN
    if row.reachable is None:
        return Health.UNKNOWN
    column = [r.cells.get(row.name) for r in matrix]
    own = next((r for r in matrix if r.holder == row.name), None)
    cells = [c for c in column if c is not None] + (list(own.cells.values()) if own else [])
    if row.agtm_ok is False or any(c.state not in (Cell.OK, Cell.UNKNOWN) for c in cells):
        return Health.DRIFT
    return Health.OK


@dataclass
class ClusterView:
    """Everything the cluster page and its JSON endpoint show of one namespace."""

    namespace: str
    nodes: list[NodeRow] = field(default_factory=list)
    matrix: list[MatrixRow] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    gc_address: str | None = None
    problems: list[str] = field(default_factory=list)  # why parts could not be read (unreachable, timed out)

    @property
    def expected(self) -> int:
        return len(self.nodes)

    @property
    def ready(self) -> int:
        return sum(1 for n in self.nodes if n.pod.ready)

    @property
    def health(self) -> Health:
        if self.problems and not self.nodes:
            return Health.UNKNOWN
        states = {n.health for n in self.nodes}
        for worst in (Health.DOWN, Health.DRIFT, Health.UNKNOWN):
            if worst in states:
                return worst
        return Health.OK if not self.problems else Health.UNKNOWN

    def to_dict(self) -> dict:
        return {"namespace": self.namespace, "health": self.health.value, "ready": self.ready,
                "expected": self.expected, "gc_address": self.gc_address, "problems": list(self.problems),
                "nodes": [n.to_dict() for n in self.nodes], "columns": list(self.columns),
                "matrix": [r.to_dict() for r in self.matrix]}


def build_view(namespace: str, members: Mapping[str, NodeRole], topology: Topology | None, pods: Sequence[Mapping],
               identities: Mapping[str, object], catalogs: Mapping[str, Sequence[PgxcRow] | BaseException],
               problems: Sequence[str] = (), scrub: Callable[[str], str] = str) -> ClusterView:
    """Assemble the page's data from discovered facts (nothing here reads anything).

    `scrub` masks secrets in error texts (a driver message might echo a password).
    """
    gc = topology.gtm_coord if topology else None
    view = ClusterView(namespace, problems=list(problems), gc_address=f"{gc.host}:{gc.port}" if gc else None)
    if topology is not None and _plannable(topology):
        view.matrix = agreement_matrix(topology, catalogs, scrub)
        view.columns = matrix_columns(view.matrix, topology)
    rows = []
    order = (topology.names() if topology else []) + [m for m in members if not topology or m not in topology.names()]
    for name in order:
        address = topology.by_name(name) if topology else None
        rows.append(node_row(name, members[name], pod_facts(pods, name), address, identities.get(name), gc, scrub))
    view.nodes = [_with_health(r, view.matrix) for r in rows]
    return view


def _plannable(topology: Topology) -> bool:
    try:
        desired_rows(topology)
    except ValueError:
        return False
    return True


def _with_health(row: NodeRow, matrix: Sequence[MatrixRow]) -> NodeRow:
    return replace(row, health=node_health(row, matrix))
