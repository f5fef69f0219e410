"""What every AntDB operator shares: its hooks, the validated spec, and dry-run discipline."""

from __future__ import annotations

import logging
from functools import cached_property
from typing import Any, Callable, TypeVar

from airflow.sdk import BaseOperator

from antdb_k8s.core.spec import DEFAULTS, ClusterSpec, parse_spec
from antdb_k8s.hooks.antdb import AntDBHook
from antdb_k8s.hooks.kube import AntDBKubeHook
from antdb_k8s.operators.task_errors import TaskErrorsMixin

T = TypeVar("T")
log = logging.getLogger(__name__)


def spec_from_context(context: Any) -> ClusterSpec:
    """The run's conf as a `ClusterSpec`; the validate task has already rejected bad ones."""
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
        return AntDBKubeHook(self.kubernetes_conn_id)

    @cached_property
    def antdb(self) -> AntDBHook:
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
