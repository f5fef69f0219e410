"""The kubelet's side of the postgres-operator pod: its `operator` container is the real binary.

Which pods: any pod with a container whose image is `<prefix>/postgres-operator:<tag>` (the
image of upstream's deploy/deployment.json and of include/operator). That container runs as
`sandbox.pgo_process.OperatorProcess` with the container's env (values, and
`fieldRef` metadata.namespace/name as the downward API gives them), against the test API
through a kubeconfig (the pod's ServiceAccount credentials are the API helper's business).

The pod's other containers (apiserver, scheduler, event) are not run: the package never
talks to the pgo apiserver or NSQ. They are reported as running, and the pod's readiness
is the operator container's: Ready while the process lives (the upstream Deployment has no
readiness probe). A process that exits is restarted with the kubelet's back-off, and the
pod shows `CrashLoopBackOff` and a Warning `BackOff` Event meanwhile; its output is the
container log (`/log`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from sandbox.pgo_process import OperatorProcess

from .common import EventRecorder, Api, log, name_of, ns_of, uid_of
from .podstatus import PodState, crash_loop, running

OPERATOR_IMAGE_REPO = "postgres-operator"
BACKOFF_START, BACKOFF_MAX = 1.0, 10.0


def operator_container(pod: dict) -> dict | None:
    for container in pod["spec"].get("containers") or []:
        repo = container.get("image", "").rsplit("/", 1)[-1].split("@")[0].split(":")[0]
        if repo == OPERATOR_IMAGE_REPO:
            return container
    return None


def is_operator_pod(pod: dict) -> bool:
    return operator_container(pod) is not None


def container_env(pod: dict, container: dict) -> dict[str, str]:
    """The env the kubelet gives the container (plain values and the downward API fields used)."""
    fields = {"metadata.namespace": ns_of(pod), "metadata.name": name_of(pod),
              "spec.nodeName": pod["spec"].get("nodeName", ""),
              "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default")}
    env: dict[str, str] = {}
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = str(item["value"])
        elif ((item.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath") in fields:
            env[item["name"]] = fields[item["valueFrom"]["fieldRef"]["fieldPath"]]
    return env


@dataclass
class _Run:
    process: OperatorProcess
    restarts: int = 0
    next_start: float = 0.0
    reported_exit: bool = field(default=False)


class OperatorPods:
    """One real operator process per live operator pod."""

    def __init__(self, api: Api, events: EventRecorder, kubeconfig: str, workdir: str) -> None:
        self.api, self.events, self.kubeconfig, self.workdir = api, events, kubeconfig, workdir
        self.runs: dict[str, _Run] = {}
        self.processes: list[OperatorProcess] = []      # every process started, for the test log

    def state(self, pod: dict, ip: str) -> PodState:
        uid = uid_of(pod)
        run = self.runs.get(uid)
        if run is None:
            run = self.runs[uid] = _Run(self._process(pod))
            self._start(pod, run)
        if run.process.alive():
            return running(ip, run.restarts)
        if not run.reported_exit:
            run.reported_exit = True
            code = run.process.exit_code()
            tail = run.process.output().strip().splitlines()[-3:]
            log.error("postgres-operator in pod %s exited with %s: %s", name_of(pod), code, " | ".join(tail))
            self.events.emit(pod, "BackOff", f"Back-off restarting failed container operator in pod {name_of(pod)}",
                             warning=True, host=pod["spec"].get("nodeName", ""))
            run.next_start = time.monotonic() + min(BACKOFF_START * 2 ** run.restarts, BACKOFF_MAX)
        if time.monotonic() >= run.next_start:
            run.restarts += 1
            run.reported_exit = False
            run.process = self._process(pod)
            self._start(pod, run)
            return running(ip, run.restarts)
        return crash_loop(run.restarts, ip)

    def _process(self, pod: dict) -> OperatorProcess:
        env = container_env(pod, operator_container(pod) or {})
        log_path = os.path.join(self.workdir, f"postgres-operator-{name_of(pod)}.log")
        process = OperatorProcess(env, self.kubeconfig, log_path)
        self.processes.append(process)
        return process

    def _start(self, pod: dict, run: _Run) -> None:
        host = pod["spec"].get("nodeName", "")
        run.process.start()
        self.events.emit(pod, "Started", "Started container operator", host=host)

    def log_text(self, pod_uid: str) -> str | None:
        run = self.runs.get(pod_uid)
        return run.process.output() if run else None

    def forget(self, live: set[str]) -> None:
        """Stop the process of every pod that is gone (deleted: the container is killed)."""
        for uid in set(self.runs) - live:
            log.info("operator pod %s is gone: stopping its process", uid)
            self.runs.pop(uid).process.stop()

    def outputs(self) -> list[tuple[str, str]]:
        """(log file, output) of every operator process this kubelet started, oldest first."""
        return [(process.log_path, process.output()) for process in self.processes]

    def shutdown(self) -> None:
        for run in self.runs.values():
            run.process.stop()
        self.runs.clear()
