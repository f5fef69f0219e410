"""Pods and events, asynchronously: what the readiness trigger needs, on the provider's `AsyncKubernetesHook`.

The triggerer runs many triggers on one event loop, so nothing here blocks: a list, a
watch stream (which ends by itself after `timeout_seconds`) and an events list, each as
plain dicts like the sync hook returns, so the same `core` functions judge them.
"""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from typing import AsyncIterator

from airflow.providers.cncf.kubernetes.hooks.kubernetes import AsyncKubernetesHook
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.rest import ApiException

from antdb_k8s.hooks.errors import KubeError


def _error_from(exc: ApiException) -> KubeError:
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        body = {}
    return KubeError(exc.status or 0, body.get("reason") or exc.reason or "", body.get("message") or str(exc.body or ""))


class AsyncPodClient:
    """One connection's pod list/watch and event list; build it with `AsyncAntDBKubeHook.pods()`."""

    def __init__(self, api: client.CoreV1Api):
        self.api = api

    async def list_pods(self, namespace: str, label_selector: str) -> tuple[list[dict], str]:
        """The pods and the list's resourceVersion (where a watch continues from)."""
        try:
            response = await self.api.list_namespaced_pod(namespace, label_selector=label_selector,
                                                          _preload_content=False)
            listed = json.loads(await response.read())
        except ApiException as exc:
            raise _error_from(exc) from None
        return list(listed.get("items") or []), (listed.get("metadata") or {}).get("resourceVersion") or ""

    async def watch_pods(self, namespace: str, label_selector: str, resource_version: str,
                         timeout_seconds: int) -> AsyncIterator[tuple[str, dict]]:
        """(event type, pod) for every change after `resource_version`; ends after `timeout_seconds`.

        An expired resourceVersion (410) or any other API error is raised as KubeError:
        the caller lists again rather than trusting a gap in the history.
        """
        stream = watch.Watch()
        try:
            async for event in stream.stream(self.api.list_namespaced_pod, namespace, label_selector=label_selector,
                                             resource_version=resource_version, timeout_seconds=timeout_seconds,
                                             allow_watch_bookmarks=False):
                yield event["type"], event["raw_object"]
        except ApiException as exc:
            raise _error_from(exc) from None
        finally:
            await stream.close()

    async def events_for(self, namespace: str, object_name: str) -> list[dict]:
        """Events about one object, oldest first (as `AntDBKubeHook.events_for`)."""
        try:
            response = await self.api.list_namespaced_event(
                namespace, field_selector=f"involvedObject.name={object_name}", _preload_content=False)
            events = json.loads(await response.read()).get("items") or []
        except ApiException as exc:
            raise _error_from(exc) from None
        return sorted(events, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")


class AsyncAntDBKubeHook:
    """The async door to Kubernetes for triggers, on the same `kubernetes_default`-style connection."""

    def __init__(self, kubernetes_conn_id: str = "kubernetes_default"):
        self.kubernetes_conn_id = kubernetes_conn_id

    @asynccontextmanager
    async def pods(self) -> AsyncIterator[AsyncPodClient]:
        """A pod client on one API connection, closed on exit."""
        provider = AsyncKubernetesHook(conn_id=self.kubernetes_conn_id)
        async with provider.get_conn() as api_client:
            yield AsyncPodClient(client.CoreV1Api(api_client))
