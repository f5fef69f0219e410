"""The package's only door to AntDB: one credential connection, pointed at each node in turn.

Every node shares the superuser from the `antdb_default` connection; only host and port
change, and they come from Kubernetes (the node's Service ClusterIP). Node DDL runs in
autocommit, one statement per round trip, because AntDB refuses `ALTER NODE ... HOST`
inside a transaction that already touched that node.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Sequence

import psycopg
from airflow.providers.postgres.hooks.postgres import PostgresHook
from airflow.sdk import BaseHook, Connection

from antdb_k8s.core.pgxc import NodeChange, PgxcPlan, PgxcRow, PlanBlockedError
from antdb_k8s.core.sql import POOL_RELOAD_SQL, READ_PGXC_NODE_SQL, render_node_change, row_from_record
from antdb_k8s.core.smoke import SmokeResult, SmokeSql, judge_smoke
from antdb_k8s.core.topology import NodeAddress, Topology

log = logging.getLogger(__name__)

NODE_SETTINGS_SQL = (
    "SELECT name, setting FROM pg_settings WHERE name IN ('pgxc_node_name', 'agtm_host', 'agtm_port')"
)


@dataclass(frozen=True)
class NodeIdentity:
    """What a node says about itself: the facts verification compares with Kubernetes."""

    address: NodeAddress
    version: str
    node_name: str | None
    agtm_host: str | None
    agtm_port: int | None

    def to_dict(self) -> dict:
        return {"node": self.address.name, "version": self.version, "node_name": self.node_name,
                "agtm_host": self.agtm_host, "agtm_port": self.agtm_port}


class AntDBHook(BaseHook):
    """Connect to any AntDB node by address with the credentials of one Airflow connection."""

    conn_name_attr = "antdb_conn_id"
    default_conn_name = "antdb_default"
    conn_type = "postgres"
    hook_name = "AntDB"

    def __init__(self, antdb_conn_id: str = default_conn_name, database: str | None = None, connect_timeout: int = 10):
        super().__init__()
        self.antdb_conn_id = antdb_conn_id
        self.database = database
        self.connect_timeout = connect_timeout

    @cached_property
    def credentials(self):
        """The connection with login and password; host/port in it are ignored on purpose."""
        return self.get_connection(self.antdb_conn_id)

    def connect_to(self, address: NodeAddress):
        """An autocommit psycopg connection to `address`, authenticated as the connection's user."""
        conn = self.credentials
        target = Connection(
            conn_id=f"{self.antdb_conn_id}-{address.name}", conn_type="postgres", host=address.host,
            port=address.port, login=conn.login, password=conn.password,
            schema=self.database or conn.schema or "postgres",
            extra=json.dumps({"connect_timeout": self.connect_timeout, "application_name": "antdb-airflow"}),
        )
        connection = PostgresHook(connection=target).get_conn()
        connection.autocommit = True
        return connection

    def query(self, address: NodeAddress, sql: str, parameters: Sequence[Any] | None = None) -> list[tuple]:
        with self.connect_to(address) as connection, connection.cursor() as cursor:
            cursor.execute(sql, parameters)
            return list(cursor.fetchall()) if cursor.description else []

    def execute(self, address: NodeAddress, sql: str, parameters: Sequence[Any] | None = None) -> None:
        with self.connect_to(address) as connection, connection.cursor() as cursor:
            cursor.execute(sql, parameters)

    def execute_ddl(self, address: NodeAddress, statement: str, attempts: int = 10, pause: float = 1.0) -> None:
        """Cluster-wide DDL, retried on a lost connection (observed on real AntDB).

        A coordinator runs DDL on its peers through pooled connections; one pooled to a
        peer whose pod was replaced fails once ("server closed the connection
        unexpectedly") and is then discarded, so the next attempt goes through. Only
        statements that are safe to repeat (DROP ... IF EXISTS, or CREATE after one) belong here.
        """
        for attempt in range(1, attempts + 1):
            try:
                self.execute(address, statement)
                return
            except psycopg.OperationalError as exc:
                if attempt == attempts:
                    raise
                log.warning("%s: DDL attempt %d/%d failed (%s); retrying in %.0fs", address.name, attempt,
                            attempts, str(exc).splitlines()[0] if str(exc) else type(exc).__name__, pause)
                time.sleep(pause)

    def read_pgxc_nodes(self, address: NodeAddress) -> list[PgxcRow]:
        return [row_from_record(record) for record in self.query(address, READ_PGXC_NODE_SQL)]

    def identity(self, address: NodeAddress) -> NodeIdentity:
        version = self.query(address, "SELECT version()")[0][0]
        settings = dict(self.query(address, NODE_SETTINGS_SQL))
        port = settings.get("agtm_port")
        return NodeIdentity(address, version, settings.get("pgxc_node_name"), settings.get("agtm_host"),
                            int(port) if port not in (None, "") else None)

    def apply_node_change(self, address: NodeAddress, change: NodeChange, connection: Any = None) -> None:
        """Run one CREATE/ALTER/DROP NODE on `address`, alone, in autocommit.

        `connection` (autocommit, to `address`) lets a whole plan share one session; without
        it the statement gets a connection of its own. Tests on vanilla PostgreSQL (which has
        no node DDL) substitute exactly this method.
        """
        statement = render_node_change(change)
        log.debug("%s: %s", address.name, statement)  # the operator logs the whole plan's SQL before applying
        if connection is None:
            self.execute(address, statement)
            return
        with connection.cursor() as cursor:
            cursor.execute(statement)

    def reload_pool(self, address: NodeAddress, connection: Any = None) -> None:
        log.info("%s: %s", address.name, POOL_RELOAD_SQL)
        if connection is None:
            self.query(address, POOL_RELOAD_SQL)
            return
        with connection.cursor() as cursor:
            cursor.execute(POOL_RELOAD_SQL)

    def apply_plan(self, address: NodeAddress, plan: PgxcPlan) -> int:
        """Apply a planned catalog change on `address` over one connection; the pool reload comes last.

        Each statement is still its own autocommit transaction (AntDB refuses `ALTER NODE
        ... HOST` in a transaction that touched the node); sharing the session only saves
        a connect and authentication per statement, which was most of the applier's cost.
        A plan with blockers is refused whole, before any statement, so a catalog is
        never left half-way between two topologies by a refusal.
        """
        if plan.blockers:
            raise PlanBlockedError(plan)
        if not plan.changes and not plan.reload_pool:
            return 0
        with self.connect_to(address) as connection:
            for change in plan.changes:
                self.apply_node_change(address, change, connection)
            if plan.reload_pool:
                self.reload_pool(address, connection)
        return len(plan.changes)

    def run_smoke_test(self, topology: Topology, table: str, rows: int) -> SmokeResult:
        """Create, fill and count a scratch table from gc, count it from every coordinator.

        The table is dropped in all cases, including a failed count, so a failed smoke
        test leaves nothing behind on the cluster.
        """
        sql = SmokeSql(table, rows)
        origin = topology.gtm_coord
        try:
            self.execute_ddl(origin, sql.drop)  # a retried try starts from nothing
            self.execute_ddl(origin, sql.create)
            self.execute(origin, sql.fill)
            per_datanode = {name: int(count) for name, count in self.query(origin, sql.per_datanode)}
            counts = {holder.name: int(self.query(holder, sql.count)[0][0]) for holder in topology.catalog_holders}
        finally:
            try:
                self.execute_ddl(origin, sql.drop, attempts=3)
            except Exception:  # noqa: BLE001 - the original error matters more; this one is logged
                log.exception("could not drop scratch table %s on %s", table, origin.name)
        return judge_smoke(topology, table, rows, per_datanode, counts)
