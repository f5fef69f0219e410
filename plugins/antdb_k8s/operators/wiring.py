"""What every DAG file shares when it wires tasks: params, tags, docs and retry defaults.

DAG files import only operators and sensors (the layering contract), so the one params
builder lives here: each DAG's form comes from one schema table in `core.params` (namespace
schema, DNS-1123 pattern and bounds from `core.bounds`), built into `Param`s the same way.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Iterator, Mapping

from airflow.sdk import DAG, Param


BASE_TAGS = ("antdb", "kubernetes")
DAY2 = "day-2"


def _refuse_change(self: Any, *args: Any, **kwargs: Any) -> None:
    raise TypeError("a DAG form's schema is shared by every task of the DAG and cannot be changed in place: "
                    "build a new schema (core.params) and a new Param from it")


class _Shared:
    """A read-only part of a form's schema that every copy of the form shares.

    Airflow deep-copies a DAG's params once per constructor level of every task (about 36
    copies for deploy_antdb), and copying the schemas was most of the cost of parsing the
    DAG file. Nothing in Airflow changes a schema, so copies share it; changing one in place
    raises instead of silently changing every task's form. Pickles as the plain container.
    """

    __slots__ = ()
    _plain: type = object

    def __copy__(self) -> _Shared:
        return self

    def __deepcopy__(self, memo: dict) -> _Shared:
        return self

    def __reduce__(self) -> tuple:
        return self._plain, (self._plain(self),)


class _SharedDict(_Shared, dict):
    __slots__ = ()
    _plain = dict
    __setitem__ = __delitem__ = __ior__ = clear = pop = popitem = setdefault = update = _refuse_change


class _SharedList(_Shared, list):
    __slots__ = ()
    _plain = list
    __setitem__ = __delitem__ = __iadd__ = __imul__ = append = clear = extend = insert = pop = remove = \
        reverse = sort = _refuse_change


def shared_schema(value: Any) -> Any:
    """`value` with every dict and list in it, at any depth, made shared and read-only."""
    if isinstance(value, dict):
        return _SharedDict({key: shared_schema(item) for key, item in value.items()})
    if isinstance(value, (list, tuple)):
        return _SharedList(shared_schema(item) for item in value)
    return value


def build_params(schemas: Mapping[str, dict], defaults: Mapping[str, Any] | None = None) -> dict[str, Param]:
    """One `Param` per schema; the default is `defaults[key]`, else the schema's own `default`.

    The schema (everything but `default` and `description`) is shared by every copy of the
    Param (see `_SharedDict`); the default is the Param's own copy, as Airflow expects.
    """
    params = {}
    for key, schema in schemas.items():
        rest = {k: v for k, v in schema.items() if k not in ("default", "description")}
        default = defaults[key] if defaults is not None and key in defaults else schema.get("default")
        params[key] = Param(copy.deepcopy(default), description=schema.get("description"),
                            schema=shared_schema(rest))
    return params


def _deploy() -> dict[str, Param]:
    from antdb_k8s.core.params import PARAM_SCHEMAS, param_defaults

    return build_params(PARAM_SCHEMAS, param_defaults())


def _verify() -> dict[str, Param]:
    from antdb_k8s.core.params import VERIFY_PARAMS

    return build_params(VERIFY_PARAMS)


def _restart_check() -> dict[str, Param]:
    from antdb_k8s.core.params import RESTART_CHECK_PARAMS

    return build_params(RESTART_CHECK_PARAMS)


def _scale() -> dict[str, Param]:
    from antdb_k8s.core.params import SCALE_PARAM_DEFAULTS, SCALE_PARAMS

    return build_params(SCALE_PARAMS, SCALE_PARAM_DEFAULTS)


def _teardown() -> dict[str, Param]:
    from antdb_k8s.core.params import TEARDOWN_PARAMS

    return build_params(TEARDOWN_PARAMS)


# Each DAG's schema table. `core.params` imports only limits and defaults, because every parse of a DAG
# file builds its form: the modules that check and act on a conf are loaded only by running tasks.
_FORMS = {"deploy_antdb": _deploy, "verify_antdb_topology": _verify, "antdb_restart_check": _restart_check,
          "scale_antdb_coordinators": _scale, "teardown_antdb": _teardown}


def dag_params(dag_id: str) -> dict[str, Param]:
    """The trigger form of `dag_id` (fresh Params on every call)."""
    return _FORMS[dag_id]()


def dag_tags(purpose: str, *, day2: bool = True) -> list[str]:
    """`antdb`, `kubernetes`, `day-2` for everything after the deploy, then the DAG's purpose."""
    return [*BASE_TAGS, *([DAY2] if day2 else []), purpose]


def default_args(retry_delay: float = 20, exponential: bool = True) -> dict:
    """Retries for transient faults; refusals are AirflowFailException and are never retried."""
    return {"retries": 2, "retry_delay": timedelta(seconds=retry_delay), "retry_exponential_backoff": exponential}


def dag_settings(dag_id: str, purpose: str, doc: str | None, *, day2: bool = True, schedule: Any = None,
                 retry_delay: float = 20, exponential: bool = True, task_failure_callback: Any = None,
                 **kwargs: Any) -> dict[str, Any]:
    """`DAG(**dag_settings(...))`: one run at a time, no catch-up, the DAG's form, tags, docs and retries.

    `doc` is the DAG file's docstring (`__doc__`), shown as the DAG's documentation;
    `task_failure_callback` becomes every task's `on_failure_callback`.
    """
    task_defaults = default_args(retry_delay, exponential)
    if task_failure_callback is not None:
        task_defaults["on_failure_callback"] = task_failure_callback
    return {"dag_id": dag_id, "schedule": schedule, "catchup": False, "max_active_runs": 1,
            "tags": dag_tags(purpose, day2=day2), "doc_md": doc, "default_args": task_defaults,
            "params": dag_params(dag_id), **kwargs}


@contextmanager
def antdb_dag(dag_id: str, purpose: str, doc: str | None, **settings: Any) -> Iterator[DAG]:
    """`with antdb_dag(...) as dag:`: the DAG of `dag_settings(...)`, its form attached after its tasks.

    Airflow deep-copies a DAG's params into every task once per constructor level (36 copies
    of deploy_antdb's twelve-field form), which was most of the cost of parsing a DAG file. No
    task needs its own copy: a running task's `params` are the DAG's, then the task's own, then
    the run's conf (`process_params`), and the scheduler and the trigger form read the DAG's.
    So the tasks are built while the DAG has no params, and the form is set when the block ends
    (through the DAG's attrs converter and validator, as a constructor argument would be).
    """
    options = dag_settings(dag_id, purpose, doc, **settings)
    form = options.pop("params")
    with DAG(**options) as dag:
        yield dag
    dag.params = form
