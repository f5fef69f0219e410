"""The kube-controller-manager parts a cluster has besides the operator: Deployment ->
ReplicaSet -> Pod, DaemonSet and Job controllers, the ServiceAccount controller and
admission, the scheduler's node choice, dynamic PVC provisioning and Endpoints.

As upstream: a Deployment owns one ReplicaSet `<deploy>-<pod-template-hash>` per template
(old ones are scaled to 0 and kept), the ReplicaSet owns pods `<rs>-<rand>`; every
namespace gets ServiceAccount `default`; a pod naming a ServiceAccount that does not exist
is refused at creation (plugin/pkg/admission/serviceaccount), which the owning controller
reports as a Warning `FailedCreate` Event and retries.
Simplifications, chosen because the product never sees the difference: a template change
replaces the pods at once (no surge); every PVC is bound as soon as it exists (a
provisioner for every class).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict

from .common import (DAEMONSET, DEPLOYMENT, ENDPOINTS, JOB, NAMESPACE, NODE, POD, PVC, REPLICASET, SERVICE,
                     SERVICEACCOUNT, Api, EventRecorder,
                     Snapshot, condition_true, deep, labels_of, make_condition, name_of,
                     now_rfc3339, ns_of, owner_ref, pod_ready, rand_suffix, selector_matches, stable_hash,
                     uid_of)

TERMINAL = ("Succeeded", "Failed")
_BOTH_TIMES = ("lastUpdateTime", "lastTransitionTime")


def phase(pod: dict) -> str:
    return (pod.get("status") or {}).get("phase", "Pending")


def ready_nodes(snap: Snapshot) -> list[str]:
    return sorted(name_of(n) for n in snap.all(NODE) if condition_true(n, "Ready")
                  and not (n.get("spec") or {}).get("unschedulable"))


class Scheduler:
    """Spreads new pods over Ready nodes, least loaded first."""

    def __init__(self, snap: Snapshot) -> None:
        self.nodes = ready_nodes(snap)
        self.load = Counter((p.get("spec") or {}).get("nodeName") for p in snap.all(POD)
                            if phase(p) not in TERMINAL)

    def pick(self) -> str | None:
        if not self.nodes:
            return None
        node = min(self.nodes, key=lambda n: (self.load[n], n))
        self.load[node] += 1
        return node


def pod_from_template(owner: dict, template: dict, name: str, node: str | None,
                      extra_labels: dict[str, str], generate_name: str) -> dict:
    meta = template.get("metadata") or {}
    metadata = {"name": name, "generateName": generate_name, "namespace": ns_of(owner),
                "labels": {**(meta.get("labels") or {}), **extra_labels},
                "ownerReferences": [owner_ref(owner)]}
    if meta.get("annotations"):
        metadata["annotations"] = deep(meta["annotations"])
    spec = deep(template.get("spec") or {})
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def _omit_zero(status: dict) -> dict:
    """The real API omits zero-valued counters (Go omitempty)."""
    return {k: v for k, v in status.items() if v != 0 or k == "observedGeneration"}


def max_unavailable(deployment: dict, replicas: int) -> int:
    strategy = deployment["spec"].get("strategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate" or replicas == 0:
        return 0
    value = (strategy.get("rollingUpdate") or {}).get("maxUnavailable", "25%")
    if isinstance(value, str) and value.endswith("%"):
        return math.floor(int(value[:-1]) * replicas / 100)
    return int(value)


class Workloads:
    """One reconcile per pass over every Deployment, DaemonSet, Job, PVC and Service."""

    def __init__(self, api: Api, events: EventRecorder) -> None:
        self.api = api
        self.events = events
        self._endpoints: set[tuple[str, str]] = set()
        self._accounts: set[tuple[str, str]] = set()

    def reconcile(self, snap: Snapshot) -> None:
        owned: dict[str, list[dict]] = defaultdict(list)
        for obj in snap.all(POD) + snap.all(REPLICASET):
            for ref in obj["metadata"].get("ownerReferences") or []:
                if ref.get("controller"):
                    owned[ref["uid"]].append(obj)
        self._accounts = {(ns_of(a), name_of(a)) for a in snap.all(SERVICEACCOUNT)}
        self._default_accounts(snap)
        scheduler = Scheduler(snap)
        for deployment in snap.all(DEPLOYMENT):
            self._deployment(deployment, owned[uid_of(deployment)], owned)
        for replica_set in snap.all(REPLICASET):
            self._replica_set(replica_set, [p for p in owned[uid_of(replica_set)] if p["kind"] == "Pod"], scheduler)
        for daemon_set in snap.all(DAEMONSET):
            self._daemon_set(daemon_set, owned[uid_of(daemon_set)], scheduler.nodes)
        for job in snap.all(JOB):
            self._job(job, owned[uid_of(job)], scheduler)
        self._bind_claims(snap)
        self._sync_endpoints(snap)

    def _default_accounts(self, snap: Snapshot) -> None:
        """pkg/controller/serviceaccount: every namespace has ServiceAccount `default`."""
        for namespace in snap.all(NAMESPACE):
            key = (name_of(namespace), "default")
            if key not in self._accounts and (namespace.get("status") or {}).get("phase") != "Terminating":
                self.api.create({"apiVersion": "v1", "kind": "ServiceAccount",
                                 "metadata": {"name": "default", "namespace": key[0]}})

    # ------------------------------------------------------------ Deployments and ReplicaSets

    def _deployment(self, deployment: dict, children: list[dict], owned: dict[str, list[dict]]) -> None:
        spec = deployment["spec"]
        want = int(spec.get("replicas", 1))
        template_hash = stable_hash(uid_of(deployment), spec.get("template"))
        rs_name = f"{name_of(deployment)}-{template_hash}"
        replica_sets = [c for c in children if c["kind"] == "ReplicaSet"]
        current = next((r for r in replica_sets if name_of(r) == rs_name), None)
        for old in replica_sets:
            if old is not current and int(old["spec"].get("replicas", 0)) != 0:
                self.api.patch(REPLICASET, ns_of(old), name_of(old), {"spec": {"replicas": 0}})
        if current is None:
            self.api.create(self._replica_set_manifest(deployment, rs_name, template_hash, want))
            pods: list[dict] = []
        else:
            if int(current["spec"].get("replicas", 0)) != want:
                self.api.patch(REPLICASET, ns_of(current), rs_name, {"spec": {"replicas": want}})
            pods = [p for p in owned[uid_of(current)] if p["kind"] == "Pod" and phase(p) not in TERMINAL]
        self._deployment_status(deployment, pods[:want], want, template_hash)

    @staticmethod
    def _replica_set_manifest(deployment: dict, name: str, template_hash: str, replicas: int) -> dict:
        spec = deployment["spec"]
        template = deep(spec["template"])
        template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = template_hash
        selector = deep(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})["pod-template-hash"] = template_hash
        labels = {**(template["metadata"]["labels"])}
        return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": name, "namespace": ns_of(deployment), "labels": labels,
                             "annotations": {"deployment.kubernetes.io/revision": "1"},
                             "ownerReferences": [owner_ref(deployment)]},
                "spec": {"replicas": replicas, "selector": selector, "template": template}}

    def _replica_set(self, replica_set: dict, pods: list[dict], scheduler: Scheduler) -> None:
        want = int(replica_set["spec"].get("replicas", 0))
        current = []
        for pod in pods:
            if phase(pod) in TERMINAL:
                self.api.delete(POD, ns_of(pod), name_of(pod))
            else:
                current.append(pod)
        current.sort(key=lambda p: (not pod_ready(p), p["metadata"].get("creationTimestamp", "")))
        for pod in current[want:]:
            self.api.delete(POD, ns_of(pod), name_of(pod))
        current = current[:want]
        for _ in range(want - len(current)):
            self._create_pod(replica_set, replica_set["spec"]["template"], f"{name_of(replica_set)}-",
                             scheduler.pick(), {})
        ready = sum(1 for p in current if pod_ready(p))
        status = _omit_zero({"observedGeneration": replica_set["metadata"].get("generation", 1),
                             "fullyLabeledReplicas": len(current), "readyReplicas": ready,
                             "availableReplicas": ready})
        status["replicas"] = len(current)           # required, even when 0
        self.api.set_status(REPLICASET, replica_set, status)

    def _create_pod(self, owner: dict, template: dict, base: str, node: str | None,
                    extra_labels: dict[str, str]) -> None:
        account = (template.get("spec") or {}).get("serviceAccountName") or "default"
        if (ns_of(owner), account) not in self._accounts:
            kind = "ReplicaSet" if owner["kind"] == "ReplicaSet" else owner["kind"]
            self.events.emit(owner, "FailedCreate",
                             f'Error creating: pods "{base}" is forbidden: error looking up service account '
                             f'{ns_of(owner)}/{account}: serviceaccount "{account}" not found',
                             warning=True, component=f"{kind.lower()}-controller")
            return
        pod = pod_from_template(owner, template, base + rand_suffix(), node, extra_labels, base)
        created = self.api.create(pod)
        if created and node:
            self.events.emit(created, "Scheduled",
                             f"Successfully assigned {ns_of(created)}/{name_of(created)} to {node}",
                             component="default-scheduler")

    def _deployment_status(self, deployment: dict, pods: list[dict], want: int, template_hash: str) -> None:
        ready = sum(1 for p in pods if pod_ready(p))
        available = ready >= want - max_unavailable(deployment, want)
        previous = (deployment.get("status") or {}).get("conditions")
        rs_name = f"{name_of(deployment)}-{template_hash}"
        conditions = [
            make_condition(previous, "Available", available,
                           "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                           "Deployment has minimum availability." if available else
                           "Deployment does not have minimum availability.", _BOTH_TIMES),
            make_condition(previous, "Progressing", True,
                           "NewReplicaSetAvailable" if ready >= want else "ReplicaSetUpdated",
                           f'ReplicaSet "{rs_name}" has successfully progressed.' if ready >= want
                           else f'ReplicaSet "{rs_name}" is progressing.', _BOTH_TIMES),
        ]
        status = _omit_zero({"observedGeneration": deployment["metadata"].get("generation", 1),
                             "replicas": len(pods), "updatedReplicas": len(pods), "readyReplicas": ready,
                             "availableReplicas": ready, "unavailableReplicas": max(want - ready, 0)})
        status["conditions"] = conditions
        self.api.set_status(DEPLOYMENT, deployment, status)

    # ------------------------------------------------------------ DaemonSets

    def _daemon_set(self, daemon_set: dict, pods: list[dict], nodes: list[str]) -> None:
        template = daemon_set["spec"]["template"]
        revision = stable_hash(uid_of(daemon_set), template)
        placed: dict[str, dict] = {}
        for pod in pods:
            node = (pod.get("spec") or {}).get("nodeName")
            stale = labels_of(pod).get("controller-revision-hash") != revision
            if node not in nodes or node in placed or stale or phase(pod) in TERMINAL:
                self.api.delete(POD, ns_of(pod), name_of(pod))
            else:
                placed[node] = pod
        base = f"{name_of(daemon_set)}-"
        labels = {"controller-revision-hash": revision,
                  "pod-template-generation": str(daemon_set["metadata"].get("generation", 1))}
        for node in nodes:
            if node not in placed:
                self._create_pod(daemon_set, template, base, node, labels)
        ready = sum(1 for p in placed.values() if pod_ready(p))
        status = {"observedGeneration": daemon_set["metadata"].get("generation", 1),
                  "currentNumberScheduled": len(placed), "desiredNumberScheduled": len(nodes),
                  "numberMisscheduled": 0, "numberReady": ready, "numberAvailable": ready,
                  "updatedNumberScheduled": len(placed)}
        if ready < len(nodes):
            status["numberUnavailable"] = len(nodes) - ready
        self.api.set_status(DAEMONSET, daemon_set, status)

    # ------------------------------------------------------------ Jobs

    def _job(self, job: dict, pods: list[dict], scheduler: Scheduler) -> None:
        spec, previous = job["spec"], job.get("status") or {}
        succeeded = [p for p in pods if phase(p) == "Succeeded"]
        failed = [p for p in pods if phase(p) == "Failed"]
        active = [p for p in pods if phase(p) not in TERMINAL]
        gave_up = len(failed) > int(spec.get("backoffLimit", 6))
        if not succeeded and not active and not gave_up:
            base = f"{name_of(job)}-"
            self._create_pod(job, spec["template"], base, scheduler.pick(), {})
        status: dict = {"startTime": previous.get("startTime") or now_rfc3339(),
                        "active": len(active), "succeeded": len(succeeded), "failed": len(failed)}
        status = {k: v for k, v in status.items() if v != 0}
        status["ready"] = sum(1 for p in active if pod_ready(p))
        status["uncountedTerminatedPods"] = {}
        conds = previous.get("conditions")
        times = ("lastProbeTime", "lastTransitionTime")
        if succeeded:
            status["completionTime"] = previous.get("completionTime") or now_rfc3339()
            status["conditions"] = [make_condition(conds, "Complete", True, times=times)]
        elif gave_up:
            status["conditions"] = [make_condition(conds, "Failed", True, "BackoffLimitExceeded",
                                                   "Job has reached the specified backoff limit", times)]
        self.api.set_status(JOB, job, status)

    # ------------------------------------------------------------ volumes and endpoints

    def _bind_claims(self, snap: Snapshot) -> None:
        for claim in snap.all(PVC):
            spec = claim.get("spec") or {}
            size = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
            status = {"phase": "Bound", "accessModes": list(spec.get("accessModes") or []),
                      "capacity": {"storage": size}}
            self.api.set_status(PVC, claim, status)

    def _sync_endpoints(self, snap: Snapshot) -> None:
        services = {(ns_of(s), name_of(s)): s for s in snap.all(SERVICE)
                    if (s.get("spec") or {}).get("selector")}
        for key in list(self._endpoints):
            if key not in services:
                self.api.delete(ENDPOINTS, *key)
                self._endpoints.discard(key)
        for key, service in services.items():
            body = self._endpoints_body(service, snap)
            current = snap.find(ENDPOINTS, *key)
            if current is None:
                self.api.create(body)
            elif current.get("subsets") != body.get("subsets"):
                self.api.patch(ENDPOINTS, key[0], key[1], {"subsets": body.get("subsets")})
            self._endpoints.add(key)

    @staticmethod
    def _endpoints_body(service: dict, snap: Snapshot) -> dict:
        selector = service["spec"]["selector"]
        ready, not_ready = [], []
        for pod in snap.all(POD, ns_of(service)):
            ip = (pod.get("status") or {}).get("podIP")
            if not ip or phase(pod) in TERMINAL or not selector_matches(selector, labels_of(pod)):
                continue
            address = {"ip": ip, "nodeName": pod["spec"].get("nodeName", ""),
                       "targetRef": {"kind": "Pod", "namespace": ns_of(pod), "name": name_of(pod),
                                     "uid": uid_of(pod)}}
            (ready if pod_ready(pod) else not_ready).append(address)
        body = {"apiVersion": "v1", "kind": "Endpoints",
                "metadata": {"name": name_of(service), "namespace": ns_of(service),
                             "labels": dict(labels_of(service))}}
        if ready or not_ready:
            ports = [{"name": p.get("name", ""), "protocol": p.get("protocol", "TCP"),
                      "port": p["targetPort"] if isinstance(p.get("targetPort"), int) else p["port"]}
                     for p in service["spec"].get("ports") or []]
            subset: dict = {"ports": [{k: v for k, v in p.items() if v != ""} for p in ports]}
            if ready:
                subset["addresses"] = ready
            if not_ready:
                subset["notReadyAddresses"] = not_ready
            body["subsets"] = [subset]
        return body
