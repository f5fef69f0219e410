"""Rendering of `pgxc_node` plans as AntDB node DDL, and reading the catalog back.

Node DDL takes no bind parameters, so every name, host and port is re-validated and
quoted here, at the last moment before it becomes SQL, even though the planner already
validated the topology: a plan may have been loaded from XCom (`PgxcPlan.from_dict`).
Statements carry no trailing semicolon because the applier runs them one at a time in
autocommit (AntDB refuses `ALTER NODE ... HOST` inside a transaction block).
"""

from __future__ import annotations

from typing import Sequence

from antdb_k8s.core.names import quote_ident, quote_literal, require_host, require_port
from antdb_k8s.core.pgxc import ALTERABLE_FIELDS, NODE_TYPE_WORDS, ChangeKind, NodeChange, PgxcPlan, PgxcRow

READ_PGXC_NODE_SQL = (
    "SELECT node_name, node_type, node_host, node_port, nodeis_primary, nodeis_preferred, nodeis_gtm "
    "FROM pgxc_node ORDER BY node_name"
)
POOL_RELOAD_SQL = "SELECT pgxc_pool_reload()"

_TRUE_WORDS = {"t", "true", "on", "1", "y", "yes"}
_FALSE_WORDS = {"f", "false", "off", "0", "n", "no"}


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _option(field: str, row: PgxcRow) -> str:
    """One `NAME = value` option of node DDL, validated."""
    if field == "host":
        return "HOST = " + quote_literal(require_host(row.node_host, f"node {row.node_name} host"))
    if field == "port":
        return f"PORT = {require_port(row.node_port, f'node {row.node_name} port')}"
    if field == "primary":
        return f"PRIMARY = {_bool(row.is_primary)}"
    if field == "preferred":
        return f"PREFERRED = {_bool(row.is_preferred)}"
    if field == "gtm":
        return f"GTM = {_bool(row.is_gtm)}"
    raise ValueError(f"node {row.node_name}: {field!r} is not an alterable pgxc_node attribute {ALTERABLE_FIELDS}")


def _render_create(row: PgxcRow) -> str:
    """Minimal valid CREATE: PRIMARY/PREFERRED only for datanodes, GTM only for the gtm row."""
    if row.node_type not in ("C", "D"):
        # A datanode slave needs `FOR master`, which the planner never produces.
        raise ValueError(f"node {row.node_name}: creating a node of type {row.node_type!r} is not supported")
    options = [f"TYPE = {quote_literal(NODE_TYPE_WORDS[row.node_type])}", _option("host", row), _option("port", row)]
    if row.node_type == "D":
        options += [_option("primary", row), _option("preferred", row)]
    if row.is_gtm:
        options.append(_option("gtm", row))
    return f"CREATE NODE {quote_ident(row.node_name)} WITH ({', '.join(options)})"


def _render_alter(change: NodeChange) -> str:
    """Only the attributes in `change.fields`, in canonical order, so reruns render alike."""
    if not change.fields:
        raise ValueError(f"ALTER of node {change.row.node_name} names no field to change")
    unknown = [f for f in change.fields if f not in ALTERABLE_FIELDS]
    if unknown:
        raise ValueError(f"ALTER of node {change.row.node_name}: unknown field(s) {unknown}")
    ordered = [f for f in ALTERABLE_FIELDS if f in change.fields]
    options = ", ".join(_option(f, change.row) for f in ordered)
    return f"ALTER NODE {quote_ident(change.row.node_name)} WITH ({options})"


def render_node_change(change: NodeChange) -> str:
    """One node DDL statement for `change`, without a trailing semicolon."""
    if change.kind is ChangeKind.CREATE:
        return _render_create(change.row)
    if change.kind is ChangeKind.ALTER:
        return _render_alter(change)
    if change.kind is ChangeKind.DROP:
        return f"DROP NODE {quote_ident(change.row.node_name)}"
    raise ValueError(f"unknown change kind {change.kind!r}")


def render_plan(plan: PgxcPlan) -> list[str]:
    """Every statement of `plan` in order, then `pgxc_pool_reload()` if anything changes.

    A plan with blockers is rendered too (dry runs show what would be done); refusing to
    apply it is the applier's job. A no-op plan renders to an empty list.
    """
    statements = [render_node_change(change) for change in plan.changes]
    if plan.reload_pool:
        statements.append(POOL_RELOAD_SQL)
    return statements


def _as_text(value: object, column: str) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8")
    if isinstance(value, str):
        return value
    raise ValueError(f"pgxc_node.{column}: expected text, got {type(value).__name__}")


def _as_bool(value: object, column: str) -> bool:
    """Accept real booleans and the text forms a driver without type adaptation returns ('t'/'f')."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE_WORDS | _FALSE_WORDS:
        return value.strip().lower() in _TRUE_WORDS
    raise ValueError(f"pgxc_node.{column}: expected a boolean, got {value!r}")


def row_from_record(record: Sequence[object]) -> PgxcRow:
    """A PgxcRow from one record of READ_PGXC_NODE_SQL (columns in that query's order)."""
    if len(record) != 7:
        raise ValueError(f"expected 7 columns from READ_PGXC_NODE_SQL, got {len(record)}")
    name, node_type, host, port, primary, preferred, gtm = record
    if isinstance(port, bool) or not isinstance(port, (int, str)):
        raise ValueError(f"pgxc_node.node_port: expected an integer, got {port!r}")
    return PgxcRow(
        node_name=_as_text(name, "node_name"),
        node_type=_as_text(node_type, "node_type"),
        node_host=_as_text(host, "node_host"),
        node_port=int(port),
        is_primary=_as_bool(primary, "nodeis_primary"),
        is_preferred=_as_bool(preferred, "nodeis_preferred"),
        is_gtm=_as_bool(gtm, "nodeis_gtm"),
    )
