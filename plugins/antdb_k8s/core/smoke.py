"""The distribution smoke test: its SQL and the judgement of what the nodes answered.

A scratch table with a unique name is filled from one coordinator; the rows must land
on every datanode (AntDB tags each row with `xc_node_id`, the `node_id` of the datanode
holding it) and every coordinator must count the same total.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from antdb_k8s.core.names import quote_ident, require_sql_identifier
from antdb_k8s.core.topology import Topology


def scratch_table_name(prefix: str, run_id: str) -> str:
    """A table name unique to one run, safe as an identifier whatever the run id holds."""
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:12]
    return require_sql_identifier(f"{prefix}_{digest}", "scratch table")


@dataclass(frozen=True)
class SmokeSql:
    table: str
    rows: int

    @property
    def create(self) -> str:
        return f"CREATE TABLE {quote_ident(self.table)} (id int, payload text)"

    @property
    def fill(self) -> str:
        return f"INSERT INTO {quote_ident(self.table)} SELECT g, md5(g::text) FROM generate_series(1, {int(self.rows)}) g"

    @property
    def per_datanode(self) -> str:
        return (f"SELECT n.node_name, count(*) FROM {quote_ident(self.table)} t "
                "JOIN pgxc_node n ON t.xc_node_id = n.node_id GROUP BY n.node_name ORDER BY n.node_name")

    @property
    def count(self) -> str:
        return f"SELECT count(*) FROM {quote_ident(self.table)}"

    @property
    def drop(self) -> str:
        return f"DROP TABLE IF EXISTS {quote_ident(self.table)}"


@dataclass(frozen=True)
class SmokeResult:
    table: str
    rows: int
    per_datanode: dict[str, int]
    counts: dict[str, int]
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {"table": self.table, "rows": self.rows, "per_datanode": self.per_datanode,
                "counts": self.counts, "problems": list(self.problems), "ok": self.ok}


def judge_smoke(topology: Topology, table: str, rows: int, per_datanode: dict[str, int], counts: dict[str, int]) -> SmokeResult:
    """Pure: every datanode holds rows, none are lost, every coordinator counts `rows`."""
    problems = [f"datanode {dn.name} holds no rows" for dn in topology.datanodes if per_datanode.get(dn.name, 0) <= 0]
    unknown = sorted(set(per_datanode) - {dn.name for dn in topology.datanodes})
    if unknown:
        problems.append(f"rows landed on nodes that are not datanodes: {', '.join(unknown)}")
    if sum(per_datanode.values()) != rows:
        problems.append(f"datanodes hold {sum(per_datanode.values())} rows, {rows} were inserted")
    for holder in topology.catalog_holders:
        if counts.get(holder.name) != rows:
            problems.append(f"{holder.name} counts {counts.get(holder.name)} rows, expected {rows}")
    return SmokeResult(table, rows, dict(per_datanode), dict(counts), tuple(problems))
