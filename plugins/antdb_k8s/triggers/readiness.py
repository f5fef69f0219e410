"""Trigger that waits, in the triggerer, until every named AntDB node has a Ready primary pod.

The decision is `core.readiness.assess_readiness`, the same function the sensor pokes
with, so deferring never changes what "ready" means.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator

from airflow.triggers.base import BaseTrigger, TriggerEvent

from antdb_k8s.core.readiness import ReadinessReport, assess_readiness, format_timeout_report
from antdb_k8s.hooks.kube import AntDBKubeHook

DATABASE_POD_SELECTOR = "pgo-pg-database=true"


def read_readiness(hook: AntDBKubeHook, namespace: str, nodes: list[str]) -> ReadinessReport:
    """One look at the namespace's database pods (shared by sensor and trigger)."""
    return assess_readiness(nodes, hook.list("v1", "Pod", namespace, label_selector=DATABASE_POD_SELECTOR))


def describe_timeout(hook: AntDBKubeHook, namespace: str, report: ReadinessReport, waited: float) -> str:
    """The timeout message: every node not Ready, its pod and that pod's last events."""
    events = {n.pod: hook.events_for(namespace, n.pod) for n in report.not_ready if n.pod}
    return format_timeout_report(report, events, waited)


class AntDBNodesReadyTrigger(BaseTrigger):
    def __init__(self, *, namespace: str, nodes: list[str], deadline: float, started: float,
                 poke_interval: float = 10.0, kubernetes_conn_id: str = "kubernetes_default"):
        super().__init__()
        self.namespace, self.nodes = namespace, list(nodes)
        self.deadline, self.started, self.poke_interval = deadline, started, poke_interval
        self.kubernetes_conn_id = kubernetes_conn_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"namespace": self.namespace, "nodes": self.nodes, "deadline": self.deadline, "started": self.started,
             "poke_interval": self.poke_interval, "kubernetes_conn_id": self.kubernetes_conn_id},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = AntDBKubeHook(self.kubernetes_conn_id)
        last_line = None
        while True:
            try:
                report = await asyncio.to_thread(read_readiness, hook, self.namespace, self.nodes)
            except Exception as exc:  # noqa: BLE001 - a transient API error must not end the wait
                self.log.warning("could not list pods in %s: %s", self.namespace, exc)
                report = None
            if report is not None and report.progress_line() != last_line:
                last_line = report.progress_line()
                self.log.info("%s", last_line)
            if report is not None and report.done:
                yield TriggerEvent({"status": "success", "message": last_line, "ready": list(report.ready)})
                return
            if time.time() >= self.deadline:
                yield TriggerEvent({"status": "timeout", "message": await self._timeout_message(hook, report)})
                return
            await asyncio.sleep(min(self.poke_interval, max(self.deadline - time.time(), 0.1)))

    async def _timeout_message(self, hook: AntDBKubeHook, report: ReadinessReport | None) -> str:
        waited = time.time() - self.started
        if report is None:
            return f"timed out after {waited:.0f}s and could not list pods in {self.namespace}"
        return await asyncio.to_thread(describe_timeout, hook, self.namespace, report, waited)
