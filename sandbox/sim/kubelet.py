"""The kubelet on every simulated node: pod status, pod IPs, logs and container Events.

Before any container starts, what a real kubelet checks (pkg/kubelet/kubelet_pods.go,
volumemanager): every Secret, ConfigMap and claim a volume names exists (else Warning
`FailedMount`, the pod stays `ContainerCreating`), and every env `configMapKeyRef` /
`secretKeyRef` resolves (else Warning `Failed` and `CreateContainerConfigError`). Optional
references are skipped, as there.

Then: the postgres-operator pod runs the real operator binary (`operatorpod.OperatorPods`);
database pods are delegated to `DatabaseNodes` (a real AntDB server through the backend);
host-preparation pods run `hostprep.run_script` against the node's simulated sysctls;
Job pods complete; every other pod becomes Ready `ready_delay` seconds after the kubelet
first sees it.
"""

from __future__ import annotations

import time
from typing import Protocol

from sandbox.kubeapi.store import ApiError

from .common import NODE, POD, Api, EventRecorder, Snapshot, labels_of, log, name_of, ns_of, uid_of
from .dbnodes import DatabaseNodes, is_database_pod
from .dbspec import missing_env_refs, missing_mounts
from .hostprep import HostSysctls, is_host_prep
from .operatorpod import OperatorPods, is_operator_pod, operator_container
from .podstatus import WAITING, PodState, completed, config_error, current_state, render, running
from .workloads import TERMINAL, phase


class JobRunner(Protocol):
    """A pod whose work is real (the pgBackRest repository and Jobs): state, log text, pending count."""

    def handles(self, pod: dict) -> bool: ...

    def run(self, pod: dict, ip: str) -> tuple[PodState, str | None, int]: ...


POD_NETWORK_PREFIX = "127.2"      # pod IPs 127.2.x.y; nodes are 127.1.0.x, ClusterIPs the store's range


def internal_ip(node: dict) -> str:
    for address in (node.get("status") or {}).get("addresses") or []:
        if address.get("type") == "InternalIP":
            return address.get("address", "")
    return ""


def is_job_pod(pod: dict) -> bool:
    refs = pod["metadata"].get("ownerReferences") or []
    return any(r.get("kind") == "Job" for r in refs) or "job-name" in labels_of(pod)


class Kubelet:
    """Level-triggered: each pass computes every live pod's wanted state and writes differences."""

    def __init__(self, api: Api, events: EventRecorder, sysctls: HostSysctls, db: DatabaseNodes,
                 operators: OperatorPods, jobs: "JobRunner | None" = None) -> None:
        self.api, self.events, self.sysctls, self.db = api, events, sysctls, db
        self.operators = operators
        self.jobs = jobs                  # runs the pods that do real work (sim/backrest.py)
        self._log_sizes: dict[str, int] = {}
        self._first_seen: dict[str, float] = {}
        self._pod_ips: dict[str, str] = {}
        self._ip_counter = 0
        self._host_prep_runs: dict[str, tuple[str, int]] = {}

    def reconcile(self, snap: Snapshot, ready_delay: float) -> int:
        """Returns how many pods are still on their way (pending work for wait_idle)."""
        node_ips = {name_of(n): internal_ip(n) for n in snap.all(NODE)}
        pods = [p for p in snap.all(POD) if phase(p) not in TERMINAL]
        self._forget_gone({uid_of(p) for p in snap.all(POD)})
        self.operators.forget({uid_of(p) for p in pods})
        placed = [(p, self._node_of(p, node_ips)) for p in pods]
        placed = [(p, n) for p, n in placed if n is not None]      # bound to an unknown node: stays Pending
        blocked = {uid_of(p): self._unmet(p, snap) for p, _ in placed}
        db_pods = [p for p, _ in placed if is_database_pod(p) and blocked[uid_of(p)] is None]
        states = self.db.reconcile(snap, db_pods, lambda p: self._pod_ip(p, node_ips))
        pending = len(self.db.ops)
        for pod, node in placed:
            state = blocked[uid_of(pod)] or states.get(uid_of(pod))
            if state is None and is_operator_pod(pod):
                state = self.operators.state(pod, self._pod_ip(pod, node_ips))
                self._operator_log(pod)
            if state is None:
                state, waiting = self._generic(pod, node, ready_delay, node_ips)
                pending += waiting
            self._write(pod, state, node_ips[node], node)
        return pending

    def _unmet(self, pod: dict, snap: Snapshot) -> PodState | None:
        """The state of a pod whose volumes or env references cannot be honoured yet (else None)."""
        if current_state(pod) is not None and current_state(pod).state != "waiting":
            return None                   # already started: a real kubelet does not re-check
        host = pod["spec"].get("nodeName", "")
        missing = missing_mounts(pod, snap)
        for volume, message in missing:
            self.events.emit(pod, "FailedMount", f'MountVolume.SetUp failed for volume "{volume}" : {message}',
                             warning=True, host=host)
        if missing:
            return WAITING
        refs = missing_env_refs(pod, snap)
        for message in refs:
            self.events.emit(pod, "Failed", f"Error: {message}", warning=True, host=host)
        return config_error() if refs else None

    def _operator_log(self, pod: dict) -> None:
        text = self.operators.log_text(uid_of(pod)) or ""
        if len(text) != self._log_sizes.get(uid_of(pod)):
            self._log_sizes[uid_of(pod)] = len(text)
            self._set_log(pod, text, (operator_container(pod) or {}).get("name"))

    @staticmethod
    def _node_of(pod: dict, node_ips: dict[str, str]) -> str | None:
        node = pod["spec"].get("nodeName")
        if node:
            return node if node in node_ips else None
        return min(node_ips) if node_ips else None     # unscheduled bare pod: treat as on the first node

    def _pod_ip(self, pod: dict, node_ips: dict[str, str]) -> str:
        if pod["spec"].get("hostNetwork"):
            return node_ips.get(pod["spec"].get("nodeName") or "", "") or min(node_ips.values(), default="")
        uid = uid_of(pod)
        if uid not in self._pod_ips:
            self._ip_counter += 1
            count = self._ip_counter
            self._pod_ips[uid] = f"{POD_NETWORK_PREFIX}.{count // 250}.{count % 250 + 1}"
        return self._pod_ips[uid]

    def _forget_gone(self, live: set[str]) -> None:
        gone = (set(self._first_seen) | set(self._pod_ips) | set(self._host_prep_runs)
                | set(self._log_sizes)) - live
        for uid in gone:
            self._log_sizes.pop(uid, None)
            self._first_seen.pop(uid, None)
            self._pod_ips.pop(uid, None)
            self._host_prep_runs.pop(uid, None)
        if gone:
            self.events.forget(gone)

    def _generic(self, pod: dict, node: str, ready_delay: float, node_ips: dict[str, str]) -> tuple[PodState, int]:
        uid = uid_of(pod)
        current = current_state(pod)
        started = current is not None and current.state != "waiting"
        seen = self._first_seen.setdefault(uid, time.monotonic())
        if not started and time.monotonic() - seen < ready_delay:
            return WAITING, 1
        ip = self._pod_ip(pod, node_ips)
        if is_host_prep(pod):
            if not self.sysctls.knows(node):
                return WAITING, 0
            if uid not in self._host_prep_runs:       # runs once: `apply` changes the node
                self._host_prep_runs[uid] = self.sysctls.run_pod({**pod, "spec": {**pod["spec"], "nodeName": node}})
            text, code = self._host_prep_runs[uid]
            self._set_log(pod, text)
            return completed(code, ip), 0
        if self.jobs is not None and self.jobs.handles(pod):
            state, text, waiting = self.jobs.run(pod, ip)
            if text is not None:
                self._set_log(pod, text)
            return state, waiting
        if is_job_pod(pod):
            self._set_log(pod, f"{labels_of(pod).get('job-name', name_of(pod))}: completed successfully\n")
            return completed(0, ip), 0
        return running(ip), 0

    def _set_log(self, pod: dict, text: str, container: str | None = None) -> None:
        try:
            self.api.store.set_pod_log(ns_of(pod), name_of(pod), text, container)
        except ApiError as exc:        # deleted meanwhile
            log.debug("log of %s not stored: %s", name_of(pod), exc.message)

    def _write(self, pod: dict, state: PodState, host_ip: str, node: str) -> None:
        current = current_state(pod)
        if current == state:
            return
        if not self.api.set_status(POD, pod, render(pod, state, host_ip)):
            return
        newly_started = state.state != "waiting" and (current is None or current.state == "waiting")
        if newly_started and not is_database_pod(pod) and not is_operator_pod(pod):
            for container in pod["spec"].get("containers") or []:
                image, name = container.get("image", ""), container["name"]
                self.events.emit(pod, "Pulled", f'Container image "{image}" already present on machine', host=node)
                self.events.emit(pod, "Created", f"Created container {name}", host=node)
                self.events.emit(pod, "Started", f"Started container {name}", host=node)
