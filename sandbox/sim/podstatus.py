"""Pod status as the kubelet reports it, from a small comparable summary.

Why a summary: the kubelet re-evaluates every pod on every resync; comparing the wanted
summary with the one read back from the pod (instead of comparing whole status documents
with timestamps) is what keeps a steady cluster free of no-op writes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .common import make_condition, now_rfc3339, pod_ready, uid_of


@dataclass(frozen=True)
class PodState:
    phase: str                       # Pending | Running | Succeeded | Failed
    ready: bool = False
    state: str = "waiting"           # waiting | running | terminated (of every container)
    reason: str = "ContainerCreating"
    exit_code: int = 0
    restarts: int = 0
    pod_ip: str = ""


WAITING = PodState("Pending")


def running(pod_ip: str, restarts: int = 0) -> PodState:
    return PodState("Running", True, "running", "", 0, restarts, pod_ip)


def crash_loop(restarts: int, pod_ip: str) -> PodState:
    return PodState("Running", False, "waiting", "CrashLoopBackOff", 0, restarts, pod_ip)


def config_error() -> PodState:
    """A container the kubelet cannot create (a missing env reference): Pending, not Ready."""
    return PodState("Pending", False, "waiting", "CreateContainerConfigError")


def completed(exit_code: int, pod_ip: str) -> PodState:
    return PodState("Succeeded" if exit_code == 0 else "Failed", False, "terminated",
                    "Completed" if exit_code == 0 else "Error", exit_code, 0, pod_ip)


def current_state(pod: dict) -> PodState | None:
    """The summary of what the pod's status says now (None before the kubelet wrote it)."""
    status = pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    if not statuses:
        return None
    first = statuses[0]
    kind = next(iter(first.get("state") or {}), "")
    inner = (first.get("state") or {}).get(kind) or {}
    return PodState(status.get("phase", ""), pod_ready(pod), kind, inner.get("reason", ""),
                    inner.get("exitCode", 0), first.get("restartCount", 0), status.get("podIP", ""))


def _container_status(pod: dict, container: dict, state: PodState, previous: dict, stamp: str) -> dict:
    old_state = (previous.get("state") or {}).get(state.state) or {}
    if state.state == "waiting":
        inner = {"reason": state.reason}
    elif state.state == "running":
        inner = {"startedAt": old_state.get("startedAt", stamp)}
    else:
        inner = {"exitCode": state.exit_code, "reason": state.reason,
                 "startedAt": old_state.get("startedAt", stamp), "finishedAt": old_state.get("finishedAt", stamp)}
    out = {"name": container["name"], "image": container.get("image", ""), "imageID": "",
           "ready": state.ready, "restartCount": state.restarts, "started": state.state == "running",
           "state": {state.state: inner}}
    if state.state != "waiting":
        digest = hashlib.sha256(f"{uid_of(pod)}/{container['name']}/{state.restarts}".encode()).hexdigest()
        out["containerID"] = f"containerd://{digest}"
        out["imageID"] = f"{container.get('image', '')}@sha256:{hashlib.sha256(out['image'].encode()).hexdigest()}"
    return out


def render(pod: dict, state: PodState, host_ip: str) -> dict:
    """A full, schema-valid PodStatus for `state` (timestamps kept while nothing changes)."""
    previous = pod.get("status") or {}
    stamp = now_rfc3339()
    old_conditions = previous.get("conditions")
    names = [c["name"] for c in pod["spec"].get("containers") or []]
    not_ready = "PodCompleted" if state.state == "terminated" else "ContainersNotReady"
    message = "" if state.ready or state.state == "terminated" else \
        f"containers with unready status: [{' '.join(names)}]"
    conditions = [make_condition(old_conditions, "Initialized", True),
                  make_condition(old_conditions, "Ready", state.ready, "" if state.ready else not_ready, message),
                  make_condition(old_conditions, "ContainersReady", state.ready,
                                 "" if state.ready else not_ready, message),
                  make_condition(old_conditions, "PodScheduled", True)]
    old_statuses = {s.get("name"): s for s in previous.get("containerStatuses") or []}
    status = {"phase": state.phase, "conditions": conditions,
              "qosClass": previous.get("qosClass", "BestEffort"),
              "startTime": previous.get("startTime", stamp),
              "containerStatuses": [_container_status(pod, c, state, old_statuses.get(c["name"], {}), stamp)
                                    for c in pod["spec"].get("containers") or []]}
    if host_ip:
        status.update(hostIP=host_ip, hostIPs=[{"ip": host_ip}])
    if state.pod_ip:
        status.update(podIP=state.pod_ip, podIPs=[{"ip": state.pod_ip}])
    return status
