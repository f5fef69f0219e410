"""`ClusterSimulator`: the built-in controllers and the kubelets of a small Kubernetes
cluster, playing against the in-process API store. The Crunchy postgres-operator is not
simulated: its pod runs the real 4.2.1 binary (operatorpod.py), which talks to the API.

Design: one reconcile thread. Store changes only bump a counter and wake it (the listener
never calls back into the store); every pass reads one snapshot and lets each component
bring the world one step closer to what it wants (level-triggered), plus a resync every
0.2 s for timers. Slow backend calls (database start/stop) run on a small thread pool and
report back to the next pass. `wait_idle` returns once a whole pass, started after the call,
saw no change, wrote nothing and had nothing in flight.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

from sandbox.kubeapi.store import ObjectStore
from sandbox.nodes import NodeBackend

from .backrest import BackrestPods
from .common import Api, EventRecorder, Snapshot, log
from .dbnodes import DatabaseNodes
from .hostprep import HostSysctls
from .kubelet import Kubelet
from .operatorpod import OperatorPods
from .seed import seed_objects
from .workloads import Workloads

RESYNC_SECONDS = 0.2
MAX_SEED_PASSES = 20


@dataclass(frozen=True)
class PassResult:
    seq: int
    generation: int        # store-change counter when the pass started
    writes: int
    pending: int
    error: str | None


class ClusterSimulator:
    """See the module docstring; behaviours are documented on the component modules."""

    def __init__(self, store: ObjectStore, backend: NodeBackend, *, kubeconfig: str, workdir: str,
                 ready_delay: float = 0.3, k8s_nodes: tuple[str, ...] = ("k8s-node-1", "k8s-node-2")) -> None:
        self.store, self.backend, self.ready_delay = store, backend, ready_delay
        self.k8s_nodes = tuple(k8s_nodes)
        self._api = Api(store)
        self._events = EventRecorder(store)
        self._sysctls = HostSysctls(self.k8s_nodes)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._db = DatabaseNodes(backend, self._api, self._events, self._wake.set)
        self.operators = OperatorPods(self._api, self._events, kubeconfig, workdir)
        self._backrest = BackrestPods(self._api, self._events, backend, self._wake.set)
        self._workloads = Workloads(self._api, self._events)
        self._kubelet = Kubelet(self._api, self._events, self._sysctls, self._db, self.operators,
                                jobs=self._backrest)
        self._pass_lock = threading.Lock()
        self._cond = threading.Condition()
        self._generation = 0
        self._seq = 0
        self._last: PassResult | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False
        self.pass_errors: list[str] = []

    # ------------------------------------------------------------ public API

    def seed(self, *, operator_installed: bool = False) -> None:
        """Nodes, kube-proxy (+ the operator install); their pods are Running on return (the
        operator process has started; it becomes useful once it has synced, see wait_operator)."""
        seed_objects(self._api, self.k8s_nodes, operator_installed)
        for _ in range(MAX_SEED_PASSES):
            result = self._run_pass(ready_delay=0.0)
            if result.error:
                raise RuntimeError(f"seeding failed: {result.error}")
            if result.writes == 0 and result.pending == 0:
                return
        raise RuntimeError(f"seeding did not settle in {MAX_SEED_PASSES} passes")

    def start(self) -> "ClusterSimulator":
        if self._thread is not None:
            return self
        self.store.add_listener(self._on_change)
        self._thread = threading.Thread(target=self._loop, name="cluster-simulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """End the loop and the backend pool, then stop every database (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            if self._thread.is_alive():
                log.error("simulator loop did not stop within 30 s")
        self.store.remove_listener(self._on_change)
        self.operators.shutdown()
        self._backrest.shutdown()
        self._db.shutdown()
        self.backend.stop_all()

    def wait_idle(self, timeout: float = 30) -> None:
        """Block until a full pass saw nothing to do; TimeoutError (naming what is pending) if not."""
        if self._thread is None or not self._thread.is_alive():
            raise RuntimeError("ClusterSimulator.wait_idle() needs a started simulator")
        deadline = time.monotonic() + timeout
        last: PassResult | None = None
        while time.monotonic() < deadline:
            last = self._next_pass(deadline)
            if last is None:
                break
            if last.error:
                raise RuntimeError(f"simulator pass failed: {last.error}")
            with self._cond:
                changed = last.generation != self._generation
            if last.writes == 0 and last.pending == 0 and not changed:
                return
        raise TimeoutError(f"simulator not idle after {timeout}s: last pass {last}; "
                           f"backend calls in flight: {sorted(dict(self._db.ops))}")

    def node_sysctls(self, k8s_node: str) -> dict[str, str]:
        """The simulated host's sysctl values (a copy)."""
        return self._sysctls.get(k8s_node)

    @property
    def errors(self) -> list[str]:
        """Pass exceptions (empty when all is well); the operator's own errors are in its log."""
        return list(self.pass_errors)

    def operator_logs(self) -> list[tuple[str, str]]:
        """(log file, output) of every real operator process the kubelet started."""
        return self.operators.outputs()

    def __enter__(self) -> "ClusterSimulator":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ internals

    def _on_change(self, event_type: str, obj: dict) -> None:
        """Store listener: only note the change and wake the loop (Events are output, ignored)."""
        if obj.get("kind") == "Event":
            return
        with self._cond:
            self._generation += 1
        self._wake.set()

    def _next_pass(self, deadline: float) -> PassResult | None:
        """Wake the loop and wait for a pass that started after this call."""
        with self._cond:
            seq0 = self._seq
        self._wake.set()
        with self._cond:
            done = self._cond.wait_for(lambda: self._last is not None and self._last.seq > seq0,
                                       timeout=max(0.0, deadline - time.monotonic()))
            return self._last if done else None

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(RESYNC_SECONDS)
            self._wake.clear()
            if not self._stopping.is_set():
                self._run_pass(self.ready_delay)

    def _run_pass(self, ready_delay: float) -> PassResult:
        with self._pass_lock:
            with self._cond:
                self._seq += 1
                seq, generation = self._seq, self._generation
            self._api.take_writes()
            pending, errors = 0, []
            snap: Snapshot | None = None
            steps: list[tuple[str, Callable[[], int | None]]] = [
                ("backend results", self._db.collect),
                ("pgbackrest pods", lambda: self._backrest.reconcile(snap)),
                ("workloads", lambda: self._workloads.reconcile(snap)),
                ("kubelet", lambda: self._kubelet.reconcile(snap, ready_delay)),
            ]
            try:
                snap = Snapshot.take(self.store)
            except Exception as exc:      # noqa: BLE001 - reported through wait_idle
                steps, errors = [], [f"snapshot: {exc!r}"]
            for name, step in steps:
                try:
                    pending += step() or 0
                except Exception as exc:  # noqa: BLE001 - one broken component must not stop the rest
                    log.exception("simulator %s step failed", name)
                    errors.append(f"{name}: {exc!r}")
            result = PassResult(seq, generation, self._api.take_writes(), pending, "; ".join(errors) or None)
            self.pass_errors.extend(errors)
            del self.pass_errors[:-50]
            with self._cond:
                self._last = result
                self._cond.notify_all()
            return result
