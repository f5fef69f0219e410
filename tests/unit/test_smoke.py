"""The distribution smoke test (runbook 2.13): scratch table naming, its SQL, and the verdict."""

from __future__ import annotations

import json
import re

import pytest

from antdb_k8s.core.names import InvalidName
from antdb_k8s.core.smoke import SmokeSql, judge_smoke, scratch_table_name
from antdb_k8s.core.topology import NodeAddress, NodeRole, Topology

IDENTIFIER_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
HOSTILE_RUN_IDS = [
    'manual__2024-05-01T10:00:00+00:00',
    'x"; DROP TABLE pgxc_node; --',
    "Robert'); DROP TABLE students;--",
    "run\x00id",
    "ünïcødé-rün",
    "",
    "a" * 10_000,
    "UPPER CASE RUN",
]


def topology() -> Topology:
    hosts = {"gc": "127.0.50.1", "cn1": "127.0.50.11", "cn2": "127.0.50.12",
             "dn1": "127.0.50.21", "dn2": "127.0.50.22", "dn3": "127.0.50.23"}
    roles = {"gc": NodeRole.GTM_COORD, "cn": NodeRole.COORDINATOR, "dn": NodeRole.DATANODE}
    return Topology.of(NodeAddress(name, roles[name[:2]], host) for name, host in hosts.items())


# The runbook's own result: 10000 rows over dn1..dn3, every coordinator counts 10000.
RUNBOOK_SPLIT = {"dn1": 3249, "dn2": 3361, "dn3": 3390}
ALL_COUNT = {"gc": 10_000, "cn1": 10_000, "cn2": 10_000}


# --- scratch_table_name ------------------------------------------------------------------


@pytest.mark.parametrize("run_id", HOSTILE_RUN_IDS)
def test_scratch_table_name_is_a_plain_identifier_for_any_run_id(run_id):
    name = scratch_table_name("antdb_smoke", run_id)
    assert IDENTIFIER_RE.match(name)
    assert name.startswith("antdb_smoke_")


def test_scratch_table_name_is_deterministic_per_run_id():
    assert scratch_table_name("antdb_smoke", "run-1") == scratch_table_name("antdb_smoke", "run-1")


def test_scratch_table_name_differs_across_run_ids():
    run_ids = HOSTILE_RUN_IDS + [f"manual__2024-05-01-{i}" for i in range(200)] + ["run-1-1", "run-1-2"]
    names = {scratch_table_name("antdb_smoke", run_id) for run_id in run_ids}
    assert len(names) == len(run_ids)


def test_longest_prefix_that_fits():
    name = scratch_table_name("p" * 50, "run")
    assert len(name) == 63 and IDENTIFIER_RE.match(name)


@pytest.mark.parametrize("prefix", ["AntDB", "1smoke", "smoke-test", "p" * 51, "smoke; drop"])
def test_bad_prefix_is_refused(prefix):
    with pytest.raises(InvalidName, match="scratch table"):
        scratch_table_name(prefix, "run")


# --- SmokeSql ----------------------------------------------------------------------------


def test_statements_quote_the_table():
    sql = SmokeSql("antdb_smoke_0123456789ab", 10_000)
    quoted = '"antdb_smoke_0123456789ab"'
    assert sql.create == f"CREATE TABLE {quoted} (id int, payload text)"
    assert sql.fill == f"INSERT INTO {quoted} SELECT g, md5(g::text) FROM generate_series(1, 10000) g"
    assert sql.count == f"SELECT count(*) FROM {quoted}"
    assert sql.drop == f"DROP TABLE IF EXISTS {quoted}"
    assert sql.per_datanode.startswith(f"SELECT n.node_name, count(*) FROM {quoted} t ")
    assert "JOIN pgxc_node n ON t.xc_node_id = n.node_id" in sql.per_datanode  # runbook 2.13's query


def test_statements_escape_a_hostile_table_name():
    sql = SmokeSql('t"; DROP TABLE pgxc_node; --', 1)
    for statement in (sql.create, sql.fill, sql.per_datanode, sql.count, sql.drop):
        assert '"t""; DROP TABLE pgxc_node; --"' in statement


def test_row_count_is_forced_to_an_integer():
    assert "generate_series(1, 42)" in SmokeSql("t", "42").fill
    with pytest.raises(ValueError):
        SmokeSql("t", "1); DROP TABLE pgxc_node; --").fill  # noqa: B018


# --- judge_smoke -------------------------------------------------------------------------


def test_the_runbooks_result_is_ok():
    result = judge_smoke(topology(), "t", 10_000, RUNBOOK_SPLIT, ALL_COUNT)
    assert result.ok and result.problems == ()
    assert json.loads(json.dumps(result.to_dict())) == {
        "table": "t", "rows": 10_000, "per_datanode": RUNBOOK_SPLIT, "counts": ALL_COUNT, "problems": [], "ok": True}


@pytest.mark.parametrize("split", [{"dn1": 5000, "dn2": 5000}, {"dn1": 5000, "dn2": 5000, "dn3": 0}])
def test_datanode_with_no_rows(split):
    result = judge_smoke(topology(), "t", 10_000, split, ALL_COUNT)
    assert not result.ok
    assert result.problems == ("datanode dn3 holds no rows",)


def test_lost_row():
    result = judge_smoke(topology(), "t", 10_000, {**RUNBOOK_SPLIT, "dn1": 3248}, {**ALL_COUNT})
    assert result.problems == ("datanodes hold 9999 rows, 10000 were inserted",)


def test_coordinator_counting_differently():
    result = judge_smoke(topology(), "t", 10_000, RUNBOOK_SPLIT, {**ALL_COUNT, "cn2": 9999})
    assert result.problems == ("cn2 counts 9999 rows, expected 10000",)


def test_coordinator_that_did_not_answer():
    counts = {k: v for k, v in ALL_COUNT.items() if k != "gc"}
    result = judge_smoke(topology(), "t", 10_000, RUNBOOK_SPLIT, counts)
    assert result.problems == ("gc counts None rows, expected 10000",)


def test_rows_on_a_node_that_is_not_a_datanode():
    split = {"dn1": 3000, "dn2": 3000, "dn3": 3000, "cn1": 1000}
    result = judge_smoke(topology(), "t", 10_000, split, ALL_COUNT)
    assert result.problems == ("rows landed on nodes that are not datanodes: cn1",)


def test_every_problem_is_reported():
    result = judge_smoke(topology(), "t", 100, {"dn1": 90, "gc": 5}, {"gc": 100, "cn1": 95})
    assert result.problems == (
        "datanode dn2 holds no rows",
        "datanode dn3 holds no rows",
        "rows landed on nodes that are not datanodes: gc",
        "datanodes hold 95 rows, 100 were inserted",
        "cn1 counts 95 rows, expected 100",
        "cn2 counts None rows, expected 100",
    )
    assert result.to_dict()["ok"] is False


def test_result_does_not_alias_its_inputs():
    split, counts = dict(RUNBOOK_SPLIT), dict(ALL_COUNT)
    result = judge_smoke(topology(), "t", 10_000, split, counts)
    split["dn1"] = 0
    counts["gc"] = 0
    assert result.per_datanode == RUNBOOK_SPLIT and result.counts == ALL_COUNT
