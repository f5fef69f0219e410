"""AntDBHook's own logic, with the database calls replaced by recorders (no server needed)."""

from __future__ import annotations

import psycopg
import pytest

from antdb_k8s.core.pgxc import ChangeKind, NodeChange, PgxcPlan, PgxcRow, PlanBlockedError
from antdb_k8s.core.topology import NodeAddress, NodeRole
from antdb_k8s.hooks.antdb import AntDBHook

GC = NodeAddress("gc", NodeRole.GTM_COORD, "127.0.10.1")


@pytest.fixture
def hook(monkeypatch):
    hook = AntDBHook()
    hook.statements = []
    monkeypatch.setattr(hook, "execute", lambda address, sql, parameters=None: hook.statements.append((address.name, sql)))
    monkeypatch.setattr(hook, "query", lambda address, sql, parameters=None: hook.statements.append((address.name, sql)) or [(True,)])
    hook.connections = []
    monkeypatch.setattr(hook, "connect_to", lambda address: _RecordingConnection(hook, address))
    return hook


class _RecordingConnection:
    """Stands in for an autocommit psycopg connection: records statements and being opened/closed."""

    def __init__(self, hook, address):
        self.hook, self.address, self.closed = hook, address, False
        hook.connections.append(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.closed = True

    def cursor(self):
        return _RecordingCursor(self)


class _RecordingCursor:
    def __init__(self, connection):
        self.connection = connection

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def execute(self, sql, parameters=None):
        assert not self.connection.closed, "statement on a closed connection"
        self.connection.hook.statements.append((self.connection.address.name, sql))


def test_ddl_is_retried_after_a_lost_pooled_connection_then_succeeds(hook, monkeypatch):
    failures = iter([psycopg.OperationalError("server closed the connection unexpectedly")])

    def flaky(address, sql, parameters=None):
        error = next(failures, None)
        if error:
            raise error
        hook.statements.append((address.name, sql))

    monkeypatch.setattr(hook, "execute", flaky)
    hook.execute_ddl(GC, "DROP TABLE IF EXISTS t", pause=0)
    assert hook.statements == [("gc", "DROP TABLE IF EXISTS t")]


def test_ddl_gives_up_after_the_last_attempt_and_does_not_retry_sql_errors(hook, monkeypatch):
    calls = []

    def always(exc):
        def run(address, sql, parameters=None):
            calls.append(sql)
            raise exc
        return run

    monkeypatch.setattr(hook, "execute", always(psycopg.OperationalError("down")))
    with pytest.raises(psycopg.OperationalError):
        hook.execute_ddl(GC, "CREATE TABLE t (id int)", attempts=3, pause=0)
    assert len(calls) == 3
    calls.clear()
    monkeypatch.setattr(hook, "execute", always(psycopg.errors.DuplicateTable("exists")))
    with pytest.raises(psycopg.errors.DuplicateTable):
        hook.execute_ddl(GC, "CREATE TABLE t (id int)", attempts=3, pause=0)
    assert len(calls) == 1, "a SQL error is not a lost connection: no retry"


def test_a_blocked_plan_runs_no_statement_at_all(hook):
    change = NodeChange(ChangeKind.CREATE, PgxcRow("cn2", "C", "127.0.10.12", 5432))
    plan = PgxcPlan("gc", changes=(change,), blockers=("datanode dn9 is not in Kubernetes",))
    with pytest.raises(PlanBlockedError, match="dn9"):
        hook.apply_plan(GC, plan)
    assert hook.statements == []


def test_a_plan_runs_each_change_alone_then_reloads_the_pool_once(hook):
    changes = (NodeChange(ChangeKind.ALTER, PgxcRow("gc", "C", "127.0.10.1", 5432, is_gtm=True), ("host", "gtm")),
               NodeChange(ChangeKind.CREATE, PgxcRow("cn1", "C", "127.0.10.11", 5432)))
    assert hook.apply_plan(GC, PgxcPlan("gc", changes=changes)) == 2
    assert [sql for _, sql in hook.statements] == [
        "ALTER NODE \"gc\" WITH (HOST = '127.0.10.1', GTM = true)",
        "CREATE NODE \"cn1\" WITH (TYPE = 'coordinator', HOST = '127.0.10.11', PORT = 5432)",
        "SELECT pgxc_pool_reload()",
    ]
    assert len(hook.connections) == 1 and hook.connections[0].closed, "one connection for the whole plan, then closed"
    hook.statements.clear()
    hook.connections.clear()
    assert hook.apply_plan(GC, PgxcPlan("gc")) == 0
    assert hook.statements == [] and hook.connections == [], "nothing to change: no connection, not even a pool reload"
