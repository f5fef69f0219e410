"""Trigger that waits, in the triggerer, until every named AntDB node has a Ready primary pod.

Watch-driven: it lists the database pods once, then follows a watch from that list's
resourceVersion and judges again on every pod change, so it fires as soon as the last
pod turns Ready instead of at the next poll. Every `relist_interval` seconds (and after
any API error, `poke_interval` later) it lists afresh, so a dropped or expired watch
costs one re-list, never a missed change. The decision is `core.readiness.assess_readiness`,
the same function the sensor pokes with, so deferring never changes what "ready" means.
"""

from __future__ import annotations

import asyncio
import math
import time
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, AsyncIterator

from airflow.triggers.base import BaseTrigger, TriggerEvent

from antdb_k8s.core.readiness import ReadinessReport, assess_readiness, format_timeout_report
from antdb_k8s.services.discovery import DATABASE_POD_SELECTOR

if TYPE_CHECKING:  # the async client is loaded in the triggerer only, not when a DAG file is parsed
    from antdb_k8s.hooks.kube_async import AsyncPodClient

RELIST_SECONDS = 60.0
STREAM_GRACE_SECONDS = 5.0  # a watch the server fails to end is abandoned this long after its timeout


class AntDBNodesReadyTrigger(BaseTrigger):
    def __init__(self, *, namespace: str, nodes: list[str], deadline: float, started: float,
                 poke_interval: float = 10.0, kubernetes_conn_id: str = "kubernetes_default",
                 relist_interval: float = RELIST_SECONDS):
        super().__init__()
        self.namespace, self.nodes = namespace, list(nodes)
        self.deadline, self.started, self.poke_interval = deadline, started, poke_interval
        self.kubernetes_conn_id, self.relist_interval = kubernetes_conn_id, relist_interval
        self._last_line: str | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"namespace": self.namespace, "nodes": self.nodes, "deadline": self.deadline, "started": self.started,
             "poke_interval": self.poke_interval, "kubernetes_conn_id": self.kubernetes_conn_id,
             "relist_interval": self.relist_interval},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """One event, yielded with no client or watch open.

        The runner may never resume a trigger after its event (`dag.test()` lets the loop's
        shutdown close it), so nothing may be left open at the `yield`: an open client's context
        manager, closed at the same time by the loop, logged "aclose(): asynchronous generator
        is already running" as an error on every wait.
        """
        yield TriggerEvent(await self._outcome())

    async def _outcome(self) -> dict[str, Any]:
        from antdb_k8s.hooks.errors import KubeRefused
        from antdb_k8s.hooks.kube_async import AsyncAntDBKubeHook

        hook, report = AsyncAntDBKubeHook(self.kubernetes_conn_id), None
        while True:
            try:
                async with hook.pods() as pods:
                    report = await self._watch_window(pods)
                    if report.done:
                        return {"status": "success", "message": report.progress_line(), "ready": list(report.ready)}
                    if time.time() >= self.deadline:
                        return {"status": "timeout", "message": await self._timeout_message(pods, report)}
            except KubeRefused as exc:  # 401/403/...: waiting cannot heal it, so the wait ends now
                return {"status": "refused", "code": exc.status, "message": str(exc)}
            except Exception as exc:  # noqa: BLE001 - a transient API error or dropped watch must not end the wait
                self.log.warning("could not follow pods in %s: %s", self.namespace, exc)
                if time.time() >= self.deadline:
                    return {"status": "timeout", "message": self._unread_message(report)}
                await asyncio.sleep(min(self.poke_interval, max(self.deadline - time.time(), 0.1)))

    async def _watch_window(self, pods: AsyncPodClient) -> ReadinessReport:
        """List, then follow changes until every node is Ready, the deadline, or the re-list window ends."""
        items, version = await pods.list_pods(self.namespace, DATABASE_POD_SELECTOR)
        current = {p["metadata"]["name"]: p for p in items}
        report = self._judge(current)
        remaining = self.deadline - time.time()
        if report.done or remaining <= 0:
            return report
        window = max(1, math.ceil(min(self.relist_interval, remaining)))
        changes = pods.watch_pods(self.namespace, DATABASE_POD_SELECTOR, version, window)
        async with asyncio.timeout(window + STREAM_GRACE_SECONDS), aclosing(changes):
            async for kind, pod in changes:
                if kind == "DELETED":
                    current.pop(pod["metadata"]["name"], None)
                elif kind in ("ADDED", "MODIFIED"):
                    current[pod["metadata"]["name"]] = pod
                report = self._judge(current)
                if report.done:
                    break
        return report

    def _judge(self, pods: dict[str, dict]) -> ReadinessReport:
        report = assess_readiness(self.nodes, pods.values())
        if report.progress_line() != self._last_line:
            self._last_line = report.progress_line()
            self.log.info("%s", self._last_line)
        return report

    async def _timeout_message(self, pods: AsyncPodClient, report: ReadinessReport) -> str:
        events = {n.pod: await pods.events_for(self.namespace, n.pod) for n in report.not_ready if n.pod}
        return format_timeout_report(report, events, time.time() - self.started)

    def _unread_message(self, report: ReadinessReport | None) -> str:
        waited = time.time() - self.started
        if report is None:
            return f"timed out after {waited:.0f}s and could not list pods in {self.namespace}"
        return format_timeout_report(report, {}, waited)
