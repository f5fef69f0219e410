"""The kubelet's side of AntDB database pods: when a node's database starts, stops, moves to a
new address or loses its data, driven through a `NodeBackend`.

One database per (namespace, Pgcluster name), keyed like the backend's data directories (the
PVC). At most one backend call per key is in flight, and a replacement pod only starts after
the old pod's database has stopped, so a restarted pod reuses the same data directory.

kube-proxy stand-in: a real ClusterIP is virtual (kube-proxy forwards it to the pod IP), so a
re-created Service with a new ClusterIP is reachable at once. Here each database listens on
its Service's ClusterIP directly, so when that address changes while the pod runs, the node is
restarted on the new address; that restart is how the new ClusterIP becomes reachable. While
the Service is missing the pod stays Ready and the database keeps its old address (which, as
on a real cluster, no Service routes to any more). A pod started while its Service is missing
listens on its pod IP until a Service appears.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from sandbox.nodes import NodeBackend, NodeProcessSpec

from .common import CONFIGMAP, POD, PVC, Api, EventRecorder, Snapshot, labels_of, log, name_of, ns_of, uid_of
from .dbspec import (StartError, build_spec, cluster_of, data_claim, database_container,
                     scrub, service_address)
from .podstatus import WAITING, PodState, crash_loop, running

Key = tuple[str, str]
BACKOFF_START, BACKOFF_MAX = 0.5, 5.0


def is_database_pod(pod: dict) -> bool:
    labels = labels_of(pod)
    return labels.get("pgo-pg-database") == "true" and labels.get("pgo-backrest-repo") != "true" \
        and bool(labels.get("pg-cluster"))


@dataclass
class RunningNode:
    pod_uid: str
    spec: NodeProcessSpec = field(repr=False)     # holds the password: never logged


@dataclass
class Op:
    kind: str                                      # start | restart | stop | destroy
    pod_uid: str
    spec: NodeProcessSpec | None = field(repr=False)
    future: Future


@dataclass
class Failure:
    count: int
    next_try: float
    message: str
    reported: bool = False


@dataclass(frozen=True)
class DataRef:
    claim: str | None
    claim_uid: str | None


class DatabaseNodes:
    """Decides, per pass, each database pod's state and which backend calls to make."""

    def __init__(self, backend: NodeBackend, api: Api, events: EventRecorder, wake: Callable[[], None],
                 workers: int = 4) -> None:
        self.backend, self.api, self.events, self._wake = backend, api, events, wake
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sim-db")
        self.running: dict[Key, RunningNode] = {}
        self.ops: dict[Key, Op] = {}
        self.failures: dict[Key, Failure] = {}
        self.data: dict[Key, DataRef] = {}
        self._fresh: set[str] = set()              # pod uids whose database just started

    # ------------------------------------------------------------ backend calls

    def _submit(self, kind: str, key: Key, pod_uid: str, spec: NodeProcessSpec | None,
                fn: Callable, *args: object) -> None:
        future = self._pool.submit(fn, *args)
        self.ops[key] = Op(kind, pod_uid, spec, future)
        future.add_done_callback(lambda _f: self._wake())

    def _start(self, spec: NodeProcessSpec) -> None:
        """start_node; after a failure also stop_node, so a half-started server cannot linger."""
        try:
            self.backend.start_node(spec)
        except BaseException:
            try:
                self.backend.stop_node(spec.namespace, spec.name)
            except Exception:                     # noqa: BLE001 - the start error is the one to report
                log.exception("stop_node after a failed start of %s/%s", spec.namespace, spec.name)
            raise

    def _restart(self, spec: NodeProcessSpec) -> None:
        self.backend.stop_node(spec.namespace, spec.name)
        self._start(spec)

    def collect(self) -> None:
        """Apply finished backend calls (reconcile thread only)."""
        for key, op in list(self.ops.items()):
            if not op.future.done():
                continue
            del self.ops[key]
            exc = op.future.exception()
            if op.kind == "stop":
                self.running.pop(key, None)
                if exc:
                    log.warning("stop_node %s/%s failed: %s", key[0], key[1], exc)
            elif op.kind == "destroy":
                self.data.pop(key, None)            # no retry loop: a failed destroy is only logged
                if exc:
                    log.warning("destroy_data %s/%s failed: %s", key[0], key[1], exc)
            elif exc is None:
                self.running[key] = RunningNode(op.pod_uid, op.spec)
                self.failures.pop(key, None)
                self._fresh.add(op.pod_uid)
            else:
                self.running.pop(key, None)
                self._failed(key, f"{type(exc).__name__}: {scrub(str(exc), op.spec.superuser_password)}")

    def _failed(self, key: Key, message: str) -> Failure:
        old = self.failures.get(key)
        count = old.count + 1 if old else 1
        delay = min(BACKOFF_START * 2 ** (count - 1), BACKOFF_MAX)
        log.warning("database %s/%s failed to start (attempt %d, retry in %.1fs): %s",
                    key[0], key[1], count, delay, message)
        self.failures[key] = Failure(count, time.monotonic() + delay, message)
        return self.failures[key]

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    # ------------------------------------------------------------ reconcile

    def reconcile(self, snap: Snapshot, pods: list[dict], pod_ip: Callable[[dict], str]) -> dict[str, PodState]:
        """Each database pod's wanted state (by uid); submits the backend calls it needs."""
        live = {uid_of(p) for p in pods}
        for key, node in list(self.running.items()):
            if node.pod_uid not in live and key not in self.ops:
                log.info("pod of %s/%s is gone: stopping its database", *key)
                self._submit("stop", key, node.pod_uid, None, self.backend.stop_node, *key)
        self._release_data(snap, pods)
        ordered = sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp", ""))
        return {uid_of(p): self._pod_state(p, snap, pod_ip(p)) for p in ordered}

    def _release_data(self, snap: Snapshot, pods: list[dict]) -> None:
        """destroy_data once a node's claim is gone (or replaced) and nothing runs on it."""
        with_pods = {(ns_of(p), cluster_of(p)) for p in pods}
        for key, ref in list(self.data.items()):
            if key in self.running or key in self.ops:
                continue
            if ref.claim is None:
                gone = key not in with_pods
            else:
                claim = snap.find(PVC, key[0], ref.claim)
                gone = claim is None or uid_of(claim) != ref.claim_uid
            if gone:
                log.info("data of %s/%s released (claim deleted): destroying it", *key)
                self._submit("destroy", key, "", None, self.backend.destroy_data, *key)

    def _pod_state(self, pod: dict, snap: Snapshot, ip: str) -> PodState:
        key = (ns_of(pod), cluster_of(pod))
        node = self.running.get(key)
        if node and node.pod_uid == uid_of(pod):
            self._after_start(pod)
            if key not in self.ops:
                self._follow_service(key, node, pod, snap)
            return running(ip)
        if node or key in self.ops:
            return WAITING
        return self._try_start(key, pod, snap, ip)

    def _try_start(self, key: Key, pod: dict, snap: Snapshot, ip: str) -> PodState:
        failure = self.failures.get(key)
        if failure and not failure.reported:
            self._report(pod, failure)
        if failure and time.monotonic() < failure.next_try:
            return crash_loop(failure.count, ip)
        try:
            spec = build_spec(self.api, pod, snap, service_address(pod, snap) or ip)
        except StartError as exc:
            failure = self._failed(key, str(exc))
            self._report(pod, failure)
            return crash_loop(failure.count, ip)
        claim = data_claim(pod)
        claim_obj = snap.find(PVC, key[0], claim) if claim else None
        self.data[key] = DataRef(claim, uid_of(claim_obj) if claim_obj else None)
        log.info("starting database %s/%s (%s) on %s:%d", key[0], key[1], spec.role, spec.host, spec.port)
        self._submit("start", key, uid_of(pod), spec, self._start, spec)
        return crash_loop(failure.count, ip) if failure else WAITING

    def _report(self, pod: dict, failure: Failure) -> None:
        failure.reported = True
        self.events.emit(pod, "Failed", f"database failed to start: {failure.message}", warning=True,
                         host=pod["spec"].get("nodeName", ""))
        self.events.emit(pod, "BackOff", f"Back-off restarting failed container database in pod {name_of(pod)}",
                         warning=True, host=pod["spec"].get("nodeName", ""))

    def _after_start(self, pod: dict) -> None:
        """What Patroni and the kubelet do once the database is up: role label, leader, Events."""
        if labels_of(pod).get("role") != "master":
            self.api.patch(POD, ns_of(pod), name_of(pod), {"metadata": {"labels": {"role": "master"}}})
        if uid_of(pod) not in self._fresh:
            return
        self._fresh.discard(uid_of(pod))
        host, image = pod["spec"].get("nodeName", ""), database_container(pod).get("image", "")
        self.events.emit(pod, "Pulled", f'Container image "{image}" already present on machine', host=host)
        self.events.emit(pod, "Created", "Created container database", host=host)
        self.events.emit(pod, "Started", "Started container database", host=host)
        leader = f"{cluster_of(pod)}-leader"
        annotations = {"leader": name_of(pod)}
        if self.api.patch(CONFIGMAP, ns_of(pod), leader, {"metadata": {"annotations": annotations}}) is None:
            self.api.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
                "name": leader, "namespace": ns_of(pod), "annotations": annotations,
                "labels": {"vendor": "crunchydata", "crunchy-pgha-scope": cluster_of(pod)}}})

    def _follow_service(self, key: Key, node: RunningNode, pod: dict, snap: Snapshot) -> None:
        """kube-proxy stand-in (module docstring): restart on the Service's new ClusterIP."""
        address = service_address(pod, snap)
        if address is None or address == node.spec.host:
            return
        try:
            spec = build_spec(self.api, pod, snap, address)
        except StartError as exc:
            self.events.emit(pod, "Failed", f"cannot move database to {address}: {exc}", warning=True)
            return
        log.info("Service %s/%s moved %s -> %s: restarting its database there", key[0], key[1],
                 node.spec.host, address)
        self._submit("restart", key, node.pod_uid, spec, self._restart, spec)
