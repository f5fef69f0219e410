"""P4 catalog apply: the package's applier against the floor, on a real AntDB coordinator.

Workload: CREATE 64 datanode rows then DROP them (64 + 64 node DDL + 2 pool reloads =
130 statements). Baseline: the same 130 rendered statements over one psycopg connection
in autocommit. Also shown: one connection per statement (the applier before it shared a
session). Goal: applier <= 1.3x the baseline.
"""

from __future__ import annotations

import time

ROWS = 64
ROUNDS = 5


def _plans(network_prefix: str):
    from antdb_k8s.core.pgxc import ChangeKind, NodeChange, PgxcPlan, PgxcRow

    rows = [PgxcRow(f"dn{100 + i}", "D", f"{network_prefix}.{100 + i}", 5432) for i in range(ROWS)]
    create = PgxcPlan("cn1", changes=tuple(NodeChange(ChangeKind.CREATE, row) for row in rows))
    drop = PgxcPlan("cn1", changes=tuple(NodeChange(ChangeKind.DROP, row) for row in rows))
    return create, drop


def _timed(run) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def _one_connection(hook, address, plans) -> None:
    from antdb_k8s.core.sql import render_plan

    with hook.connect_to(address) as connection, connection.cursor() as cursor:
        for plan in plans:
            for statement in render_plan(plan):
                cursor.execute(statement)


def _connection_per_statement(hook, address, plans) -> None:
    for plan in plans:
        for change in plan.changes:
            hook.apply_node_change(address, change)  # no shared connection: one connect per statement
        hook.reload_pool(address)


def _start_nodes(cluster) -> tuple[str, str]:
    """gc and cn1 of real AntDB on the cluster's reserved loopback network; returns (prefix, cn1 host)."""
    from tests.support.cluster import PASSWORD, SUPERUSER
    from sandbox.nodes import NodeProcessSpec

    # The cluster's reserved 127.0.N.0/24 (its ClusterIP range); .250/.251 stay clear of allocations.
    prefix = str(cluster.store._ips.network.network_address).rsplit(".", 1)[0]
    hosts = {"gc": f"{prefix}.250", "cn1": f"{prefix}.251"}
    for name, role in (("gc", "gtm_coord"), ("cn1", "coordinator")):
        cluster.backend.start_node(NodeProcessSpec(
            namespace="bench", name=name, role=role, host=hosts[name], port=5432, agtm_host=hosts["gc"],
            agtm_port=5432, superuser=SUPERUSER, superuser_password=PASSWORD, parameters={"shared_buffers": "32MB"}))
    return prefix, hosts["cn1"]


def bench_catalog_apply() -> list[tuple[str, float]]:
    import os

    from antdb_k8s.core.topology import NodeAddress, NodeRole
    from antdb_k8s.hooks.antdb import AntDBHook
    from tests.support.cluster import start_cluster, stop_cluster

    cluster = start_cluster()
    saved = {key: os.environ.get(key) for key in cluster.env}
    os.environ.update(cluster.env)
    try:
        prefix, cn1_host = _start_nodes(cluster)
        hook, address = AntDBHook(), NodeAddress("cn1", NodeRole.COORDINATOR, cn1_host)
        plans = _plans(prefix)
        ways = {"one connection, 130 statements (baseline)": lambda: _one_connection(hook, address, plans),
                "package applier (apply_plan)": lambda: [hook.apply_plan(address, plan) for plan in plans],
                "one connection per statement": lambda: _connection_per_statement(hook, address, plans)}
        _one_connection(hook, address, plans)  # warm caches and the pooler once
        best = {label: min(_timed(way) for _ in range(ROUNDS)) for label, way in ways.items()}
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
        stop_cluster(cluster)
    base = best["one connection, 130 statements (baseline)"]
    print(f"\n== P4 catalog apply: create then drop {ROWS} datanode rows on a real AntDB coordinator "
          f"(best of {ROUNDS}; goal applier <= 1.3x)")
    for label, seconds in best.items():
        print(f"  {label:44s} {seconds * 1000:8.1f} ms  {seconds / base:5.2f}x")
    return [(label, seconds / base) for label, seconds in best.items()]
