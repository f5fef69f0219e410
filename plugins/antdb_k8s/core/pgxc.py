"""`pgxc_node` rows, the changes that move a catalog to the desired topology, and the planner.

The planner is a pure function (no I/O, no clock, no randomness): given the topology
Kubernetes reports and the rows one coordinator currently holds, it returns the ordered
changes that make the rows match, plus the blockers that make applying unsafe. One
applier (`hooks.antdb.AntDBHook.apply_plan`) executes a plan; nothing else edits
`pgxc_node`. The rules it obeys are AntDB's, recorded in ADR 0002.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Sequence

from antdb_k8s.core.names import require_dns1123_label, require_host, require_port
from antdb_k8s.core.topology import NodeAddress, NodeRole, Topology


class ChangeKind(str, enum.Enum):
    CREATE = "create"
    ALTER = "alter"
    DROP = "drop"


@dataclass(frozen=True)
class PgxcRow:
    """One `pgxc_node` row as the applier reads it (node_id/node_master_oid are not compared)."""

    node_name: str
    node_type: str  # 'C' coordinator (gc included), 'D' datanode, 'E' datanode slave
    node_host: str
    node_port: int
    is_primary: bool = False
    is_preferred: bool = False
    is_gtm: bool = False

    def to_dict(self) -> dict:
        return {
            "node_name": self.node_name,
            "node_type": self.node_type,
            "node_host": self.node_host,
            "node_port": self.node_port,
            "is_primary": self.is_primary,
            "is_preferred": self.is_preferred,
            "is_gtm": self.is_gtm,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "PgxcRow":
        return cls(
            node_name=data["node_name"],
            node_type=data["node_type"],
            node_host=data["node_host"],
            node_port=int(data["node_port"]),
            is_primary=bool(data.get("is_primary", False)),
            is_preferred=bool(data.get("is_preferred", False)),
            is_gtm=bool(data.get("is_gtm", False)),
        )


@dataclass(frozen=True)
class NodeChange:
    """One node DDL statement, as data.

    For CREATE, every field of `row` is meant. For ALTER, `row` is the full desired row
    and `fields` names the attributes that differ (subset of host, port, primary,
    preferred, gtm) so that only those are rendered. For DROP only `row.node_name`
    and `row.node_type` matter.
    """

    kind: ChangeKind
    row: PgxcRow
    fields: tuple[str, ...] = ()
    reason: str = ""

    def to_dict(self) -> dict:
        return {"kind": self.kind.value, "row": self.row.to_dict(), "fields": list(self.fields), "reason": self.reason}

    @classmethod
    def from_dict(cls, data: dict) -> "NodeChange":
        return cls(
            kind=ChangeKind(data["kind"]),
            row=PgxcRow.from_dict(data["row"]),
            fields=tuple(data.get("fields", ())),
            reason=data.get("reason", ""),
        )


@dataclass(frozen=True)
class PgxcPlan:
    """What one catalog holder (gc or a coordinator) needs; applied in `changes` order.

    `blockers` are reasons not to apply anything (a datanode Kubernetes no longer has,
    a row whose type differs from the topology). `reload_pool` is true when at least
    one change is to be applied: `pgxc_pool_reload()` runs once, after them.
    """

    target: str
    changes: tuple[NodeChange, ...] = ()
    blockers: tuple[str, ...] = ()

    @property
    def is_noop(self) -> bool:
        return not self.changes and not self.blockers

    @property
    def reload_pool(self) -> bool:
        return bool(self.changes)

    def to_dict(self) -> dict:
        return {
            "target": self.target,
            "changes": [c.to_dict() for c in self.changes],
            "blockers": list(self.blockers),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "PgxcPlan":
        return cls(
            target=data["target"],
            changes=tuple(NodeChange.from_dict(c) for c in data.get("changes", ())),
            blockers=tuple(data.get("blockers", ())),
        )


class PlanBlockedError(RuntimeError):
    """Raised by the applier when a plan has blockers: nothing was applied."""

    def __init__(self, plan: PgxcPlan):
        self.plan = plan
        super().__init__(f"refusing to change pgxc_node on {plan.target}: " + "; ".join(plan.blockers))


# --------------------------------------------------------------------------- planner

ALTERABLE_FIELDS = ("host", "port", "primary", "preferred", "gtm")
NODE_TYPE_WORDS = {"C": "coordinator", "D": "datanode", "E": "datanode slave"}
_ROW_ATTRS = {"host": "node_host", "port": "node_port", "primary": "is_primary",
              "preferred": "is_preferred", "gtm": "is_gtm"}


def _type_word(node_type: str) -> str:
    return NODE_TYPE_WORDS.get(node_type, f"node of unknown type {node_type!r}")


def _name_sort_key(name: str) -> tuple:
    """Natural order for names outside the topology (cn2 before cn10), then the name itself."""
    match = re.fullmatch(r"(.*?)(\d+)", name)
    return (match.group(1), int(match.group(2)), name) if match else (name, -1, name)


def validate_topology(topology: Topology) -> None:
    """Refuse a topology no correct catalog can be planned from (a ValueError says why).

    Names, hosts and ports are validated here rather than at render time so that a bad
    Service address is reported before anything is planned, not halfway through applying.
    """
    names = topology.names()
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"topology lists node(s) more than once: {', '.join(duplicates)}")
    gtm_coords = [n.name for n in topology.nodes if n.role is NodeRole.GTM_COORD]
    if not gtm_coords:
        raise ValueError("topology has no gtm_coord node: every AntDB cluster needs exactly one (gc)")
    if len(gtm_coords) > 1:
        raise ValueError(f"topology has more than one gtm_coord node: {', '.join(gtm_coords)}")
    if not topology.datanodes:
        raise ValueError("topology has no datanode: a cluster without datanodes cannot store data")
    for node in topology.nodes:
        require_dns1123_label(node.name, f"node {node.name!r} name")
        require_host(node.host, f"node {node.name} host")
        require_port(node.port, f"node {node.name} port")


def _desired_row(node: NodeAddress, primary_name: str) -> PgxcRow:
    return PgxcRow(
        node_name=node.name,
        node_type=node.role.pgxc_type,
        node_host=node.host,
        node_port=node.port,
        is_primary=node.name == primary_name,
        is_preferred=False,
        is_gtm=node.role is NodeRole.GTM_COORD,
    )


def desired_rows(topology: Topology) -> dict[str, PgxcRow]:
    """The rows gc and every coordinator must hold, keyed by name, in topology order.

    The lowest-numbered datanode is the one primary (writes to replicated tables go there
    first); no node is preferred, as in the runbook's observed catalog.
    """
    validate_topology(topology)
    primary_name = topology.datanodes[0].name
    return {node.name: _desired_row(node, primary_name) for node in topology.nodes}


def row_differences(current: PgxcRow, desired: PgxcRow) -> tuple[str, ...]:
    """The ALTER-able attributes (in ALTERABLE_FIELDS order) in which two rows differ."""
    return tuple(f for f in ALTERABLE_FIELDS if getattr(current, _ROW_ATTRS[f]) != getattr(desired, _ROW_ATTRS[f]))


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, str) else str(value)


def _alter_reason(current: PgxcRow, desired: PgxcRow, fields: tuple[str, ...], target: str) -> str:
    diffs = ", ".join(
        f"{f} {_show(getattr(current, _ROW_ATTRS[f]))} -> {_show(getattr(desired, _ROW_ATTRS[f]))}" for f in fields
    )
    text = f"pgxc_node on {target} has {desired.node_name} out of date with Kubernetes: {diffs}"
    if desired.node_name == target:
        text += f" ({target}'s own row, inserted by initdb as localhost:5432)"
    if "primary" in fields and current.is_primary:
        text += "; only one datanode may be primary, so this is cleared before the new primary is set"
    return text


def _type_conflict(current: PgxcRow, desired: PgxcRow, target: str) -> str:
    return (
        f"{current.node_name} is registered in pgxc_node on {target} as a {_type_word(current.node_type)} "
        f"but Kubernetes runs it as a {_type_word(desired.node_type)}; AntDB cannot change a node's type "
        f"and dropping the row could break distributed tables. Check which is right and fix the row by hand"
    )


def _extra_row_blocker(row: PgxcRow, target: str) -> str:
    if row.node_type in ("D", "E"):
        return (
            f"{_type_word(row.node_type)} {row.node_name} is in pgxc_node on {target} but not in Kubernetes; "
            f"refusing to drop a datanode: its data would be lost. Restore its Pgcluster or remove it by hand "
            f"after moving its data off (AntDB 5 does not support datanode scale-in)"
        )
    return (
        f"{row.node_name} is in pgxc_node on {target} with unknown node_type {row.node_type!r} and is not in "
        f"Kubernetes; refusing to touch a row this planner does not understand"
    )


def _index_current(current: Sequence[PgxcRow], target: str) -> dict[str, PgxcRow]:
    """Rows by name; a name listed twice cannot come from a real catalog (unique index)."""
    rows: dict[str, PgxcRow] = {}
    for row in current:
        if row.node_name in rows:
            raise ValueError(f"current pgxc_node rows of {target} list {row.node_name!r} twice")
        rows[row.node_name] = row
    return rows


@dataclass
class _Draft:
    """Changes sorted into the groups that fix their order, plus blockers, while planning."""

    clear_primary: list[NodeChange]
    alters: list[NodeChange]
    creates: list[NodeChange]
    drops: list[NodeChange]
    blockers: list[str]


def _plan_desired(draft: _Draft, desired: dict[str, PgxcRow], rows: dict[str, PgxcRow], target: str) -> None:
    """CREATE what is missing, ALTER what differs, block on type conflicts (topology order)."""
    for name, want in desired.items():
        have = rows.get(name)
        if have is None:
            reason = (f"{_type_word(want.node_type)} {name} is in Kubernetes at {want.node_host}:{want.node_port} "
                      f"but missing from pgxc_node on {target}")
            draft.creates.append(NodeChange(ChangeKind.CREATE, want, reason=reason))
            continue
        if have.node_type != want.node_type:
            draft.blockers.append(_type_conflict(have, want, target))
            continue
        fields = row_differences(have, want)
        if not fields:
            continue
        change = NodeChange(ChangeKind.ALTER, want, fields, _alter_reason(have, want, fields, target))
        if "primary" in fields and have.is_primary:
            draft.clear_primary.append(change)
        elif name == target:
            draft.alters.insert(0, change)
        else:
            draft.alters.append(change)


def _plan_extra(draft: _Draft, desired: dict[str, PgxcRow], rows: dict[str, PgxcRow], target: str) -> None:
    """DROP coordinators Kubernetes no longer has; block on anything else it no longer has."""
    extra = sorted((n for n in rows if n not in desired), key=_name_sort_key)
    for name in extra:
        row = rows[name]
        if name == target:  # unreachable (target is in the topology), kept as a last line of defence
            continue
        if row.node_type != "C":
            draft.blockers.append(_extra_row_blocker(row, target))
            continue
        reason = f"coordinator {name} is in pgxc_node on {target} but Kubernetes no longer has it"
        draft.drops.append(NodeChange(ChangeKind.DROP, row, reason=reason))


def plan_pgxc_changes(topology: Topology, current: Sequence[PgxcRow], target: str) -> PgxcPlan:
    """The ordered node DDL that makes `target`'s `pgxc_node` match Kubernetes.

    Pure and deterministic: the order of `current` does not matter. Existing rows are
    only ever ALTERed (a re-created datanode gets a new OID and breaks distributed
    tables). Order: ALTERs clearing a stale primary, other ALTERs (the target's own row
    first), CREATEs in topology order, DROPs. Blockers never stop planning: the full
    picture is returned and the applier refuses a plan that has any.
    """
    desired = desired_rows(topology)
    holder = topology.by_name(target)
    if holder is None:
        raise ValueError(f"target {target!r} is not a node of the topology ({', '.join(topology.names())})")
    if holder.role is NodeRole.DATANODE:
        raise ValueError(f"target {target!r} is a datanode; only gc and coordinators hold the pgxc_node list")
    rows = _index_current(current, target)
    draft = _Draft([], [], [], [], [])
    _plan_desired(draft, desired, rows, target)
    _plan_extra(draft, desired, rows, target)
    changes = draft.clear_primary + draft.alters + draft.creates + draft.drops
    return PgxcPlan(target=target, changes=tuple(changes), blockers=tuple(draft.blockers))


def diff_summary(plan: PgxcPlan) -> list[str]:
    """Lines for task logs and reports: a headline, each change with its reason, each blocker."""
    if plan.is_noop:
        return [f"pgxc_node on {plan.target}: up to date with Kubernetes, nothing to do"]
    head = f"pgxc_node on {plan.target}: {len(plan.changes)} change(s)"
    if plan.blockers:
        head += f", {len(plan.blockers)} blocker(s): nothing will be applied until they are resolved"
    lines = [head]
    for number, change in enumerate(plan.changes, start=1):
        what = f"{change.kind.value.upper()} {change.row.node_name}"
        if change.kind is ChangeKind.ALTER:
            what += f" [{', '.join(change.fields)}]"
        lines.append(f"  {number}. {what}: {change.reason}")
    lines.extend(f"  BLOCKER: {blocker}" for blocker in plan.blockers)
    return lines
