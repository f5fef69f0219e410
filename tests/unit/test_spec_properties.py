"""Generated bad confs through the deploy DAG's two gates: never a traceback, always a named field.

A conf meets Airflow's Param gate when the run is created (the schemas in `core/params.py`,
applied exactly as the scheduler applies them to the serialized DAG), then the `validate`
task (`ValidateSpecOperator`, which calls `parse_spec`). Whatever hypothesis generates
(wrong types, unicode, huge and negative numbers, long strings, nested garbage, unknown
keys), each conf must end in exactly one of: accepted, `ParamValidationError` naming a
param, or `SpecError` whose every problem starts with a field of the conf. The gates open
no socket, so a refused conf has created nothing (the end-to-end counterpart checks the
test API's store).
"""

from __future__ import annotations

import socket
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from antdb_k8s.core.spec import DEFAULTS, MAX_CONF_DEPTH, SpecError, field_label, parse_spec

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
EXAMPLES = 400
PROBLEM_MAX_CHARS = 600  # a refusal echoes values shortened: a 10 kB string must not become a 10 kB error

numbers = st.one_of(st.integers(), st.integers(min_value=-10**40, max_value=10**40),
                    st.floats(allow_nan=False), st.sampled_from([0, -1, 1, 2**31, 2**63, -2**63, 10**30]))
texts = st.one_of(st.text(max_size=20), st.text(min_size=500, max_size=10_000),
                  st.sampled_from(["", " ", "gc", "pgouser1", "DROP NODE dn1", "a\x00b", "a\nb", "ⅆⓝ１", "🐘" * 40,
                                   "0.0.0.0/0", "host all all 0.0.0.0/0 trust", "../../etc", "10Gi", "on"]))
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
garbage = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(texts, inner, max_size=4)), max_leaves=12)


def _near(shape):
    """Values shaped like `shape` (the right keys) holding garbage, or garbage outright."""
    if isinstance(shape, dict):
        blocks = st.fixed_dictionaries({}, optional={key: _near(value) for key, value in shape.items()})
        with_unknown = st.builds(lambda block, extra: {**block, **extra}, blocks, st.dictionaries(texts, garbage, max_size=2))
        return st.one_of(blocks, with_unknown, garbage)
    if isinstance(shape, list):
        return st.one_of(st.lists(st.one_of(texts, garbage), max_size=4), garbage)
    return st.one_of(st.just(shape), scalars, garbage)


confs = st.builds(
    lambda known, unknown: {**unknown, **known},
    st.fixed_dictionaries({}, optional={key: _near(value) for key, value in DEFAULTS.items()}),
    st.dictionaries(texts.filter(lambda key: key not in DEFAULTS), garbage, max_size=3),
)


@pytest.fixture(scope="module")
def scheduler_dag():
    """deploy_antdb as the scheduler holds it (serialized), whose params gate a new run."""
    from airflow.models import DagBag
    from airflow.serialization.serialized_objects import DagSerialization

    dag = DagBag(dag_folder=str(DAGS_DIR / "deploy_antdb.py")).dags["deploy_antdb"]
    return DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))


@pytest.fixture(scope="module")
def no_network():
    """The gates must not reach anything: any connection attempt fails the test."""
    mp = pytest.MonkeyPatch()

    def refuse(*args, **kwargs):
        raise AssertionError(f"validation opened a connection: {args[:2]}")

    mp.setattr(socket.socket, "connect", refuse)
    mp.setattr(socket, "create_connection", refuse)
    yield
    mp.undo()


class _Ti:
    def __init__(self):
        self.pushed = {}

    def xcom_push(self, key, value):
        self.pushed[key] = value


def run_gates(scheduler_dag, conf: dict):
    """What a triggered run does with `conf`: the Param gate, then the `validate` task's execute."""
    from antdb_k8s.operators.spec import ValidateSpecOperator

    params = scheduler_dag.params.deep_merge(conf).validate()
    ti = _Ti()
    members = ValidateSpecOperator(task_id="validate").execute(
        {"dag_run": SimpleNamespace(conf=conf), "params": params, "ti": ti})
    return members, ti.pushed


def assert_refusal_names_fields(problems: list[str], conf: dict) -> None:
    labels = set(DEFAULTS) | {field_label(key) for key in conf} | {"conf"}
    assert problems, "a SpecError lists at least one problem"
    for problem in problems:
        assert any(problem.startswith(label) and problem[len(label):len(label) + 1] in (".", "[", ":")
                   for label in labels), f"refusal does not name a field of the conf: {problem[:200]!r}"
        assert len(problem) <= PROBLEM_MAX_CHARS, f"refusal echoes too much ({len(problem)} chars): {problem[:120]!r}"


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(conf=confs)
def test_any_generated_conf_is_accepted_or_refused_naming_a_field(scheduler_dag, no_network, conf):
    from airflow.sdk.exceptions import ParamValidationError

    try:
        members, pushed = run_gates(scheduler_dag, conf)
    except ParamValidationError as refused:
        event("refused by the Param gate")
        message = str(refused)
        assert message.startswith("Invalid input for param "), message[:200]
        assert message.split()[4].rstrip(":") in DEFAULTS, message[:200]
    except SpecError as refused:
        event("refused by the validate task")
        assert_refusal_names_fields(refused.problems, conf)
    else:
        event("accepted")
        assert {"plan", "nodes"} <= set(pushed)
        assert pushed["nodes"][0] == "gc" and members == pushed["plan"]["members"]
        assert all(key in DEFAULTS for key in conf), "an unknown key must never be accepted"


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(conf=confs)
def test_parse_spec_alone_refuses_with_named_fields_or_accepts(conf):
    """`parse_spec` is also called without the Param gate (day-2 DAGs, `dags test -c`)."""
    try:
        spec = parse_spec(conf)
    except SpecError as refused:
        assert_refusal_names_fields(refused.problems, conf)
    else:
        assert spec.node_names()[0] == "gc"
        assert all(key in DEFAULTS for key in conf)


def _nested(depth: int, leaf="x", in_list: bool = False):
    value = leaf
    for _ in range(depth):
        value = [value] if in_list else {"a": value}
    return value


@pytest.mark.parametrize("depth", [MAX_CONF_DEPTH + 1, 300, 5_000, 100_000])
@pytest.mark.parametrize("key", ["postgres_parameters", "storage", "pg_hba", "unknown_key", "namespace"])
def test_a_deeply_nested_conf_is_refused_naming_its_field_not_a_recursion_error(key, depth):
    conf = {key: _nested(depth, in_list=key == "pg_hba"), "coordinators": 2}
    with pytest.raises(SpecError) as refused:
        parse_spec(conf)
    assert refused.value.problems == [f"{key}: nested deeper than {MAX_CONF_DEPTH} levels; no setting is shaped like that"]


@pytest.mark.parametrize("key", ["postgres_parameters", "storage", "unknown_key"])
def test_a_conf_a_few_hundred_levels_deep_is_refused_by_the_dag_gates(scheduler_dag, no_network, key):
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises((ParamValidationError, SpecError)) as refused:
        run_gates(scheduler_dag, {key: _nested(300)})
    assert key in str(refused.value).splitlines()[0] + " ".join(getattr(refused.value, "problems", []))


@pytest.mark.parametrize("conf", [[], "gc", 7, ["namespace", "x"]])
def test_a_conf_that_is_not_an_object_is_refused(conf):
    with pytest.raises(SpecError, match="conf: must be an object of settings"):
        parse_spec(conf)


def test_a_huge_string_is_echoed_shortened():
    with pytest.raises(SpecError) as refused:
        parse_spec({"namespace": "x" * 1_000_000, "images": {"gc": {"tag": "é" * 100_000}}})
    assert all(len(problem) < PROBLEM_MAX_CHARS for problem in refused.value.problems)
    assert [p.split(":")[0] for p in refused.value.problems] == ["namespace", "images.gc.tag"]
