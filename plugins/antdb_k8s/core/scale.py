"""Coordinator scaling, decided without I/O: which coordinators to add or remove, what the
clone request (a Crunchy `Pgtask`) looks like, and which objects a departing node leaves.

Kubernetes is the truth (ADR 0001): the current coordinators are the Pgclusters the
namespace holds, not a conf. Datanodes are never scaled: AntDB 5 cannot move rows between
datanodes, so a different datanode count is refused, never attempted.

Order of a scale-in (why it is safe): the remaining catalog holders drop the departing
coordinators from `pgxc_node` first, while those still run, and only then are their
Kubernetes objects deleted. The other order leaves every holder pointing at a dead
coordinator, and AntDB then fails every DDL statement (`EXECUTE DIRECT ON ("cn3") ...`
cannot connect) until the rows are gone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from antdb_k8s.core.bounds import MAX_COORDINATORS
from antdb_k8s.core.defaults import SCALE_TIMEOUTS as DEFAULT_TIMEOUTS
from antdb_k8s.core.names import require_dns1123_label
from antdb_k8s.core.topology import CRUNCHY_API, NodeRole, Topology

CLONE_STEP1 = "clone-step1"          # apis/cr/v1/task.go PgtaskCloneStep1 (then -step2, -step3)
CLONE_STEP_LABELS = ("pgo-clone-step-1", "pgo-clone-step-2", "pgo-clone-step-3")
TASK_COMPLETED = "completed"         # apis/cr/v1/common.go CompletedStatus
PGO_USER = "antdb-airflow"
_COORDINATOR_RE = re.compile(r"cn([1-9][0-9]*)")


def timeouts_from(params: Mapping) -> dict[str, int]:
    """The run's timeouts over the defaults (the form may send only some keys)."""
    given = params.get("timeouts") or {}
    return {key: int(given.get(key, default)) for key, default in DEFAULT_TIMEOUTS.items()}


class ScaleRefused(ValueError):
    """A request this DAG will not carry out; the message says why and what to do instead."""


def coordinator_number(name: str) -> int:
    match = _COORDINATOR_RE.fullmatch(name)
    if not match:
        raise ValueError(f"{name!r} is not a coordinator name (cn1, cn2, ...)")
    return int(match.group(1))


def _ordered(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(names, key=coordinator_number))


@dataclass(frozen=True)
class ScalePlan:
    """The change one run makes; `target` is every coordinator the cluster has afterwards."""

    namespace: str
    current: tuple[str, ...]
    target: tuple[str, ...]
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    source: str | None = None        # the coordinator new ones are cloned from
    datanodes: int = 0
    delete_data: bool = False

    @property
    def action(self) -> str:
        return "scale-out" if self.add else "scale-in" if self.remove else "none"

    def summary(self) -> str:
        head = f"{self.namespace}: coordinators {', '.join(self.current)} -> {', '.join(self.target)}"
        if self.add:
            return f"{head} (scale-out: clone {', '.join(self.add)} from {self.source})"
        if self.remove:
            kept = "deleted" if self.delete_data else "kept"
            return f"{head} (scale-in: remove {', '.join(self.remove)}; their PVCs are {kept})"
        return f"{head} (already at the target: nothing to change)"

    def to_dict(self) -> dict:
        return {"namespace": self.namespace, "current": list(self.current), "target": list(self.target),
                "add": list(self.add), "remove": list(self.remove), "source": self.source,
                "datanodes": self.datanodes, "delete_data": self.delete_data, "action": self.action}

    @classmethod
    def from_dict(cls, data: Mapping) -> "ScalePlan":
        return cls(namespace=data["namespace"], current=tuple(data["current"]), target=tuple(data["target"]),
                   add=tuple(data.get("add", ())), remove=tuple(data.get("remove", ())), source=data.get("source"),
                   datanodes=int(data.get("datanodes", 0)), delete_data=bool(data.get("delete_data", False)))


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_request(coordinators: object, datanodes: object = None) -> int:
    """The target count, or ScaleRefused: checked before anything is read or changed."""
    if not _whole(coordinators):
        raise ScaleRefused(f"coordinators must be a whole number, got {coordinators!r}")
    if coordinators < 1:
        raise ScaleRefused(f"coordinators must be at least 1, got {coordinators}: clients and DDL need a "
                           "coordinator besides gc, and cn1 is the clone source for later scale-outs")
    if coordinators > MAX_COORDINATORS:
        raise ScaleRefused(f"coordinators: at most {MAX_COORDINATORS} are supported, got {coordinators}")
    if datanodes is not None and not _whole(datanodes):
        raise ScaleRefused(f"datanodes must be empty or a whole number, got {datanodes!r}")
    return coordinators


def _datanode_refusal(wanted: int, have: list[str]) -> ScaleRefused:
    return ScaleRefused(
        f"datanodes: {wanted} requested but the cluster has {len(have)} ({', '.join(have) or 'none'}). "
        "AntDB 5 does not support datanode scaling here: rows cannot be redistributed to a new datanode "
        "and a removed datanode takes its rows with it. Leave datanodes empty (or set it to "
        f"{len(have)}) to scale coordinators only")


def plan_scale(namespace: str, members: Mapping[str, NodeRole], coordinators: object,
               datanodes: object = None, delete_data: bool = False) -> ScalePlan:
    """Add the lowest free cnN names, or remove the highest-numbered coordinators.

    Refuses (ScaleRefused) a count below 1, any datanode change, and a namespace
    without gc or without a coordinator to clone from.
    """
    require_dns1123_label(namespace, "namespace")
    wanted = validate_request(coordinators, datanodes)
    dns = [n for n, r in members.items() if r is NodeRole.DATANODE]
    dns.sort(key=lambda n: (len(n), n))
    if datanodes is not None and datanodes != len(dns):
        raise _datanode_refusal(int(datanodes), dns)
    if not any(r is NodeRole.GTM_COORD for r in members.values()):
        raise ScaleRefused(f"namespace {namespace} has no gc Pgcluster: deploy the cluster with deploy_antdb first")
    current = _ordered(n for n, r in members.items() if r is NodeRole.COORDINATOR and _COORDINATOR_RE.fullmatch(n))
    if not current:
        raise ScaleRefused(f"namespace {namespace} has no coordinator to clone a new one from")
    add: list[str] = []
    number = 1
    while len(current) + len(add) < wanted:
        if f"cn{number}" not in current:
            add.append(f"cn{number}")
        number += 1
    remove = current[wanted:] if len(current) > wanted else ()
    target = _ordered(set(current) - set(remove) | set(add))
    source = ("cn1" if "cn1" in current else current[0]) if add else None
    return ScalePlan(namespace, current, target, tuple(add), tuple(remove), source, len(dns), bool(delete_data))


def target_topology(topology: Topology, remove: Iterable[str]) -> Topology:
    """The topology every remaining holder's pgxc_node is planned against (departing ones left out)."""
    gone = set(remove)
    return Topology.of(n for n in topology.nodes if n.name not in gone)


# --------------------------------------------------------------------------- clone requests

_EMPTY_STORAGE = {k: "" for k in ("name", "storageclass", "accessmode", "size", "storagetype", "fsgroup",
                                   "supplementalgroups", "matchLabels")}


def pgtask_spec(namespace: str, name: str, tasktype: str, parameters: Mapping[str, str]) -> dict:
    """A PgtaskSpec with every field, as the Go client serializes one (apis/cr/v1/task.go: no
    omitempty). The operator marks a task done with a JSON-patch `replace` of `/spec/status`,
    which the API server rejects when the key is absent, so `status` must be there, empty."""
    return {"namespace": namespace, "name": name, "storagespec": dict(_EMPTY_STORAGE), "tasktype": tasktype,
            "status": "", "parameters": dict(parameters)}


def clone_request(namespace: str, source: str, target: str, *, suffix: str, workflow_id: str,
                  timestamp: str, pgouser: str = PGO_USER) -> tuple[dict, dict]:
    """The two Pgtasks `pgo clone <source> <target>` creates: the workflow, then clone step 1.

    Shapes as apiserver/cloneservice/cloneimpl.go and util/clone.go write them in v4.2.1;
    the operator chains steps 2 and 3 itself as its Jobs finish.
    """
    for name, what in ((namespace, "namespace"), (source, "clone source"), (target, "clone target")):
        require_dns1123_label(name, what)
    workflow_name = f"{target}-{suffix}-cloneworkflow"
    workflow = {
        "apiVersion": CRUNCHY_API, "kind": "Pgtask",
        "metadata": {"name": workflow_name, "namespace": namespace,
                     "labels": {"pg-cluster": target, "workflowid": workflow_id}},
        "spec": pgtask_spec(namespace, workflow_name, "workflow",
                            {"task submitted": timestamp, "pg-cluster": target, "workflowid": workflow_id}),
    }
    task_name = f"{CLONE_STEP1}-{target}-{suffix}"
    step1 = {
        "apiVersion": CRUNCHY_API, "kind": "Pgtask",
        "metadata": {"name": task_name, "namespace": namespace,
                     "labels": {"pg-cluster": target, "pgouser": pgouser, "pgo-clone": "true",
                                "pgo-clone-step-1": "true"}},
        "spec": pgtask_spec(namespace, task_name, CLONE_STEP1,
                            {"sourceClusterName": source, "targetClusterName": target, "taskName": task_name,
                             "timestamp": timestamp, "workflowid": workflow_id, "backrestStorageType": ""}),
    }
    return workflow, step1


def _condition(obj: Mapping, kind: str) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == kind and c.get("status") == "True" for c in conditions)


@dataclass(frozen=True)
class CloneProgress:
    """Where the clone of one target stands, judged from its Pgtasks and Jobs."""

    target: str
    ongoing: bool
    failed_jobs: tuple[str, ...] = ()
    steps_done: tuple[str, ...] = field(default=())

    def describe(self) -> str:
        steps = ", ".join(self.steps_done) or "none"
        state = "in progress" if self.ongoing else "idle"
        failed = f"; failed Jobs: {', '.join(self.failed_jobs)}" if self.failed_jobs else ""
        return f"clone of {self.target}: {state}, steps completed: {steps}{failed}"


def clone_progress(target: str, tasks: Iterable[Mapping], jobs: Iterable[Mapping],
                   workflow_id: str | None = None) -> CloneProgress:
    """Ongoing = a clone Pgtask not completed or a clone Job not finished (the apiserver's
    "ongoing clone task" rule, plus Jobs). Failed Jobs count only for `workflow_id` if given,
    so an earlier failed attempt does not fail a retry."""
    ongoing, done, failed = False, [], []
    for task in tasks:
        labels = (task.get("metadata") or {}).get("labels") or {}
        spec = task.get("spec") or {}
        if labels.get("pg-cluster") != target or labels.get("pgo-clone") != "true":
            continue
        if spec.get("status") == TASK_COMPLETED:
            done.append(spec.get("tasktype", "?"))
        else:
            ongoing = True
    for job in jobs:
        labels = (job.get("metadata") or {}).get("labels") or {}
        if labels.get("pg-cluster") != target or not any(labels.get(k) == "true" for k in CLONE_STEP_LABELS):
            continue
        if _condition(job, "Failed"):
            if workflow_id is None or labels.get("workflowid") == workflow_id:
                failed.append(job["metadata"]["name"])
        elif not _condition(job, "Complete"):
            ongoing = True
    return CloneProgress(target, ongoing, tuple(sorted(failed)), tuple(sorted(set(done))))


# --------------------------------------------------------------------------- removal

@dataclass(frozen=True)
class RemovalStep:
    """Delete one named object, or every object a label selector matches."""

    api_version: str
    kind: str
    name: str | None = None
    selector: str | None = None

    def describe(self) -> str:
        return f"{self.kind}/{self.name}" if self.name else f"{self.kind}s with {self.selector}"


def removal_steps(namespace: str, name: str, delete_data: bool = False) -> list[RemovalStep]:
    """Everything the operator and the package made for coordinator `name`, in a safe order.

    The Pgcluster goes first (the v4 operator does nothing on delete, but nothing can rebuild
    from it afterwards), controllers before their pods, data last and only if asked.
    PersistentVolumes are matched by node and namespace: hostPath PVs the package made.
    """
    require_dns1123_label(name, "coordinator name")
    coordinator_number(name)
    own = f"pg-cluster={name}"
    steps = [
        RemovalStep(CRUNCHY_API, "Pgcluster", name=name),
        RemovalStep(CRUNCHY_API, "Pgtask", selector=own),
        RemovalStep("apps/v1", "Deployment", selector=own),
        RemovalStep("batch/v1", "Job", selector=own),
        RemovalStep("v1", "Service", selector=own),
        RemovalStep("v1", "Pod", selector=own),
        RemovalStep("v1", "ConfigMap", selector=own),
        RemovalStep("v1", "ConfigMap", selector=f"crunchy-pgha-scope={name}"),
        RemovalStep("v1", "Secret", selector=own),
    ]
    if delete_data:
        steps += [RemovalStep("v1", "PersistentVolumeClaim", selector=own),
                  RemovalStep("v1", "PersistentVolume", selector=f"{own},antdb.io/namespace={namespace}")]
    return steps


# --------------------------------------------------------------------------- catalog parity

USER_RELATIONS_SQL = (
    "SELECT n.nspname || '.' || c.relname FROM pg_catalog.pg_class c "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') "
    "AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'antdb_shim') "
    "AND n.nspname NOT LIKE 'pg\\_%' ORDER BY 1"
)


def catalog_differences(source: str, source_relations: Iterable[str], target: str,
                        target_relations: Iterable[str]) -> list[str]:
    """A clone must list the relations its source lists; DDL during the clone breaks that."""
    have, want = set(target_relations), set(source_relations)
    problems = []
    if want - have:
        problems.append(f"{target} lacks {', '.join(sorted(want - have))} which {source} has "
                        "(DDL ran while it was cloned)")
    if have - want:
        problems.append(f"{target} has {', '.join(sorted(have - want))} which {source} no longer has "
                        "(dropped while it was cloned)")
    return problems
