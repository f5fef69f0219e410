"""Sensor: every named AntDB node has exactly one Ready primary pod. Deferrable by default."""

from __future__ import annotations

import time
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator

from antdb_k8s.operators.base import spec_from_context
from antdb_k8s.operators.task_errors import TaskErrorsMixin

if TYPE_CHECKING:
    from antdb_k8s.hooks.kube import AntDBKubeHook


class AntDBNodesReadySensor(TaskErrorsMixin, BaseSensorOperator):
    """Wait for nodes to be Ready without holding a worker slot (the wait can take many minutes).

    `timeout_key` names the `timeouts` entry of the conf that bounds the wait, so one DAG
    can give gc and the bulk of the nodes different budgets.
    """

    template_fields = ("nodes",)
    ui_color = "#fdf3e0"

    def __init__(self, *, nodes: list[str] | str, timeout_key: str = "nodes_ready",
                 kubernetes_conn_id: str = "kubernetes_default", deferrable: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.nodes, self.timeout_key = nodes, timeout_key
        self.kubernetes_conn_id, self.deferrable = kubernetes_conn_id, deferrable

    @cached_property
    def hook(self) -> AntDBKubeHook:
        from antdb_k8s.hooks.kube import AntDBKubeHook

        return AntDBKubeHook(self.kubernetes_conn_id)

    def _configure(self, context: Any):
        spec = spec_from_context(context)
        self.namespace = spec.namespace
        self.timeout = spec.timeouts[self.timeout_key]
        self.poke_interval = spec.timeouts["poke_interval"]
        self.node_list = [self.nodes] if isinstance(self.nodes, str) else list(self.nodes)
        return spec

    def poke(self, context: Any) -> bool:
        from antdb_k8s.services.discovery import read_readiness

        report = read_readiness(self.hook, self.namespace, self.node_list)
        self.log.info("%s", report.progress_line())
        return report.done

    def execute(self, context: Any) -> Any:
        spec = self._configure(context)
        if spec.dry_run:
            self.log.info("dry run: would wait up to %ss for %s", self.timeout, ", ".join(self.node_list))
            return {"status": "dry-run"}
        started = time.time()
        if self.poke(context):
            return {"status": "ready", "nodes": self.node_list}
        if not self.deferrable:
            return self._poke_until_deadline(context, started)
        from antdb_k8s.triggers.readiness import AntDBNodesReadyTrigger  # imports airflow.triggers.base

        self.defer(
            trigger=AntDBNodesReadyTrigger(namespace=self.namespace, nodes=self.node_list,
                                           deadline=started + self.timeout, started=started,
                                           poke_interval=self.poke_interval,
                                           kubernetes_conn_id=self.kubernetes_conn_id),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout + 120),
        )

    def _poke_until_deadline(self, context: Any, started: float) -> dict:
        from antdb_k8s.services.discovery import describe_timeout, read_readiness
        from antdb_k8s.services.wait import Poll, wait_until

        seen: dict = {}

        def look() -> Poll[dict]:
            seen["report"] = report = read_readiness(self.hook, self.namespace, self.node_list)
            return Poll(report.done, {"status": "ready", "nodes": self.node_list}, report.progress_line())

        return wait_until(look, time.monotonic() + self.timeout - (time.time() - started), self.poke_interval,
                          lambda poll, waited: describe_timeout(self.hook, self.namespace, seen["report"],
                                                                time.time() - started), what=", ".join(self.node_list))

    def _abandoned_lines(self, context: Any) -> list[str]:
        """After the trigger timed out: nodes the operator stopped creating (the trigger has no sync hook)."""
        from antdb_k8s.hooks.errors import KubeError
        from antdb_k8s.services.discovery import abandoned_lines, read_readiness

        self._configure(context)
        try:
            report = read_readiness(self.hook, self.namespace, self.node_list)
            return abandoned_lines(self.hook, self.namespace, report, waited=self.timeout)
        except KubeError as exc:  # the timeout is the failure; this would only have explained it
            self.log.warning("could not read why nodes in %s have no pod: %s", self.namespace, exc)
            return []

    def execute_complete(self, context: Any, event: dict | None = None) -> dict:
        if event and event.get("status") == "refused":
            from antdb_k8s.hooks.errors import KubeRefused

            raise KubeRefused(int(event.get("code") or 403), "Refused",
                              event.get("message") or "the Kubernetes API refused the readiness watch")
        if not event or event.get("status") != "success":
            message = (event or {}).get("message") or "readiness trigger ended without an event"
            raise TimeoutError("\n".join([message, *self._abandoned_lines(context)]))
        self.log.info("%s", event["message"])
        return {"status": "ready", "nodes": event.get("ready", [])}
