"""One mechanism for every task of the package: say DRY RUN first, translate failures, leave their message.

`TaskErrorsMixin.__init_subclass__` wraps each subclass's `execute` (and `execute_complete`,
the method a deferred sensor resumes in) once, so no operator carries its own try/except:

* a dry run's task log starts with `DRY RUN`;
* a client failure becomes `AirflowFailException` (no retry) when it cannot heal, or a
  reworded retryable error when it can (`hooks/errors.task_error` decides);
* the final message is left in XCom under `failure`, where the summary task and the
  run note (`listeners/run_notes.py`) find it.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Callable

log = logging.getLogger(__name__)
WRAPPED_METHODS = ("execute", "execute_complete")
DRY_RUN_BANNER = "DRY RUN: %s changes nothing; it shows what a real run would do."


def is_dry_run(context: Any) -> bool:
    params = context.get("params") or {}
    conf = getattr(context.get("dag_run"), "conf", None) or {}
    return bool(conf.get("dry_run", params.get("dry_run", False)))


class TaskErrorsMixin:
    """Mixed into every operator and sensor of the package, before `BaseOperator` in the bases."""

    kubernetes_conn_id: str = "kubernetes_default"
    antdb_conn_id: str = "antdb_default"
    unreachable_is_permanent = False  # the preflight sets it: an API that is not there at all is configuration
    record_failure = True  # the summary sets it off: its own failure repeats the others'

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in WRAPPED_METHODS:
            method = cls.__dict__.get(name)
            if callable(method) and not getattr(method, "_antdb_wrapped", False):
                setattr(cls, name, _wrapped(method, banner=name == "execute"))


def _wrapped(method: Callable, banner: bool) -> Callable:
    @functools.wraps(method)
    def run(self, context, *args, **kwargs):
        if banner and is_dry_run(context) and not getattr(self, "_antdb_banner_done", False):
            self._antdb_banner_done = True
            self.log.info(DRY_RUN_BANNER, self.task_id)
        try:
            return method(self, context, *args, **kwargs)
        except Exception as exc:
            replacement = _replacement(self, exc)
            final = replacement or exc
            if not _is_control_flow(exc):
                _record(self, context, final)
            if replacement is not None:
                raise replacement from exc
            raise

    run._antdb_wrapped = True
    return run


def _replacement(task: TaskErrorsMixin, exc: BaseException) -> BaseException | None:
    from antdb_k8s.hooks.errors import task_error

    try:
        return task_error(exc, kubernetes_conn_id=task.kubernetes_conn_id, antdb_conn_id=task.antdb_conn_id,
                          unreachable_is_permanent=task.unreachable_is_permanent)
    except Exception:  # noqa: BLE001 - classifying must never hide the original failure
        log.debug("could not classify %s", type(exc).__name__, exc_info=True)
        return None


def _is_control_flow(exc: BaseException) -> bool:
    """Deferral, skips and reschedules travel as exceptions but are not failures."""
    from airflow.sdk.exceptions import AirflowRescheduleException, AirflowSkipException, TaskDeferred

    return isinstance(exc, (TaskDeferred, AirflowSkipException, AirflowRescheduleException))


def _record(task: TaskErrorsMixin, context: Any, exc: BaseException) -> None:
    if not task.record_failure or getattr(exc, "_antdb_recorded", False):
        return
    from airflow.sdk.exceptions import AirflowFailException

    from antdb_k8s.core.failures import FAILURE_KEY, first_lines

    try:
        message = first_lines(str(exc) or type(exc).__name__)
        task.log.error("%s", message)
        context["ti"].xcom_push(key=FAILURE_KEY, value={
            "task": task.task_id, "message": message, "permanent": isinstance(exc, AirflowFailException)})
        exc._antdb_recorded = True
    except Exception:  # noqa: BLE001 - the failure itself must surface, not a bookkeeping error
        log.debug("could not record the failure message", exc_info=True)
