"""What every AntDB operator shares: its hooks, the validated spec, and dry-run discipline.

Hooks are imported inside the properties that build them: a DAG file imports operators,
and importing the Kubernetes provider or psycopg there would cost every parse of every
DAG file hundreds of milliseconds for tasks that are not running. The same holds, at a
smaller scale, for `core`, `services` and `triggers`: the DAG processor pays every
module-level import of an operator module on every parse, so the package's operators and
sensors import them inside the methods that run them (and under `TYPE_CHECKING` for
annotations); at module level they keep only what constructing a task needs.
"""

from __future__ import annotations

import logging
from functools import cached_property
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from airflow.sdk import BaseOperator

from antdb_k8s.operators.task_errors import TaskErrorsMixin

if TYPE_CHECKING:
    from antdb_k8s.core.spec import ClusterSpec
    from antdb_k8s.hooks.antdb import AntDBHook
    from antdb_k8s.hooks.kube import AntDBKubeHook

T = TypeVar("T")
log = logging.getLogger(__name__)
VALIDATE_TASK_ID = "validate"  # the task that parses the conf and publishes the spec
SPEC_KEY = "spec"


def spec_from_context(context: Any) -> ClusterSpec:
    """The run's `ClusterSpec`, as the validate task published it (parsed once per run).

    A DAG without that task (a custom one) gets the params parsed here instead, so the
    operators still work; `deploy_antdb` always has it.
    """
    from antdb_k8s.core.spec import DEFAULTS, ClusterSpec, parse_spec

    published = context["ti"].xcom_pull(task_ids=VALIDATE_TASK_ID, key=SPEC_KEY)
    if published:
        return ClusterSpec.from_dict(published)
    log.debug("no spec published by task %s in this run: parsing the params", VALIDATE_TASK_ID)
    params = context["params"]
    return parse_spec({key: params[key] for key in DEFAULTS if key in params})


class AntDBBaseOperator(TaskErrorsMixin, BaseOperator):
    """Base for the package's operators: hooks are built lazily, once per task instance.

    Failures are translated and recorded by `TaskErrorsMixin` (see operators/task_errors.py).
    """

    ui_color = "#e8f1fb"

    def __init__(self, *, kubernetes_conn_id: str = "kubernetes_default", antdb_conn_id: str = "antdb_default", **kwargs):
        super().__init__(**kwargs)
        self.kubernetes_conn_id = kubernetes_conn_id
        self.antdb_conn_id = antdb_conn_id

    @cached_property
    def kube(self) -> AntDBKubeHook:
        from antdb_k8s.hooks.kube import AntDBKubeHook

        return AntDBKubeHook(self.kubernetes_conn_id)

    @cached_property
    def antdb(self) -> AntDBHook:
        from antdb_k8s.hooks.antdb import AntDBHook

        return AntDBHook(self.antdb_conn_id)

    def live_or_none(self, what: str, read: Callable[[], T], unread: list[str]) -> T | None:
        """Read a live fact for a dry run; on failure record `what` as unread instead of failing.

        A dry run must work with no reachable cluster, and must say which facts it could
        not read rather than silently planning against guesses.
        """
        try:
            return read()
        except Exception as exc:  # noqa: BLE001 - any failure to reach the cluster is reported, not raised
            from antdb_k8s.hooks.errors import describe

            reason = describe(exc, kubernetes_conn_id=self.kubernetes_conn_id, antdb_conn_id=self.antdb_conn_id)
            unread.append(f"{what}: {reason}")
            self.log.warning("dry run: could not read %s: %s", what, reason)
            return None
