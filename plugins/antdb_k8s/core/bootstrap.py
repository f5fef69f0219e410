"""Has the postgres-operator finished bootstrapping a node? The judgement and the re-run steps.

After a node's primary pod first turns Ready, the Crunchy operator 4.2.1 creates Pgtask and
Job `<node>-stanza-create`; on that Job's completion it starts the first backup
(`backrest-backup-<node>`), and on that one's it sets the Pgcluster to `pgcluster Initialized`.
Each step is taken on an event (the pod's Ready transition, a Job's completion) and only
then, so an operator process that restarts between two steps never takes the next one: the
node serves, but it has no pgBackRest backup, and a scale-out cannot clone from it.

Seen from outside, "pending" and "stuck" look the same for a moment, so a node is reported
only when nothing of its bootstrap has moved for `grace` seconds. The operator re-runs the
chain when it sees the pod become Ready again with no stanza Pgtask: `rerun_steps` is that.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Mapping

from antdb_k8s.core.clone import backup_task_name
from antdb_k8s.core.readiness import is_primary_database_pod
from antdb_k8s.core.topology import CRUNCHY_API

INITIALIZED = "pgcluster Initialized"
BOOTSTRAP_GRACE = 300.0   # seconds without progress before a node's bootstrap counts as stuck


@dataclass(frozen=True)
class BootstrapJob:
    """One of a node's operator Jobs: its name, whether it still runs, when it last moved (epoch s)."""

    name: str
    running: bool
    last_change: float | None


@dataclass(frozen=True)
class BootstrapState:
    """What Kubernetes shows of one node's bootstrap."""

    node: str
    state: str                      # the Pgcluster's status.state
    ready_since: float | None       # when its primary pod turned Ready (epoch s), None: not Ready
    jobs: tuple[BootstrapJob, ...] = ()


def stanza_task_name(node: str) -> str:
    return f"{node}-stanza-create"


def bootstrap_verdict(facts: BootstrapState, now: float, grace: float = BOOTSTRAP_GRACE) -> tuple[bool, str]:
    """(ok, detail): Initialized, under way, not begun yet (pod not Ready), or stuck for `grace` s."""
    if facts.state == INITIALIZED:
        return True, "Initialized by the postgres-operator"
    if facts.ready_since is None:
        return True, f"waits for its primary pod to be Ready (Pgcluster state {facts.state!r})"
    running = [job.name for job in facts.jobs if job.running]
    if running:
        return True, f"bootstrap under way: Job {', '.join(running)} running"
    moved = max([facts.ready_since, *(j.last_change for j in facts.jobs if j.last_change is not None)])
    idle = max(0.0, now - moved)
    if idle < grace:
        return True, f"bootstrap pending: last step {idle:.0f}s ago (Pgcluster state {facts.state!r})"
    done = ", ".join(j.name for j in facts.jobs) or "none"
    return False, (f"the postgres-operator never finished bootstrapping {facts.node}: Pgcluster state "
                   f"{facts.state!r}, nothing moved for {idle:.0f}s (Jobs done: {done}), so it has no first "
                   f"pgBackRest backup and cannot be cloned. The operator takes each step on an event only, and "
                   f"misses it when it restarts at that moment. repair=full re-runs the bootstrap (deletes the Pgtasks "
                   f"and Jobs {stanza_task_name(facts.node)} and {backup_task_name(facts.node)}, then restarts the "
                   f"node's pod)")


def epoch(stamp: str) -> float:
    """A Kubernetes timestamp (RFC 3339, `2026-12-02T13:53:27Z`) as epoch seconds."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def jobs_of(node: str, jobs: Iterable[Mapping]) -> tuple[BootstrapJob, ...]:
    """The node's Jobs (label `pg-cluster=<node>`), each with when it last moved."""
    mine = []
    for job in jobs:
        if ((job.get("metadata") or {}).get("labels") or {}).get("pg-cluster") != node:
            continue
        conditions = (job.get("status") or {}).get("conditions") or []
        finished = [c for c in conditions if c.get("type") in ("Complete", "Failed") and c.get("status") == "True"]
        stamps = [epoch(c["lastTransitionTime"]) for c in conditions if c.get("lastTransitionTime")]
        start = (job.get("status") or {}).get("startTime")
        stamps += [epoch(start)] if start else []
        mine.append(BootstrapJob(job["metadata"]["name"], not finished, max(stamps) if stamps else None))
    return tuple(mine)


def ready_since(pod: Mapping | None) -> float | None:
    """When the pod's Ready condition last turned True (0 when the API did not say), None when not Ready."""
    for condition in ((pod or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("status") == "True":
            stamp = condition.get("lastTransitionTime")
            return epoch(stamp) if stamp else 0.0
    return None


def primary_pods(pods: Iterable[Mapping]) -> dict[str, Mapping]:
    """Each node's primary database pod (label `pg-cluster`), backrest and Job pods left out."""
    return {((p.get("metadata") or {}).get("labels") or {}).get("pg-cluster", ""): p
            for p in pods if is_primary_database_pod(p)}


def bootstrap_states(states: Mapping[str, str], pods: Iterable[Mapping], jobs: Iterable[Mapping]
                     ) -> list[BootstrapState]:
    """A `BootstrapState` for every node in `states` (node -> Pgcluster state) from the listings."""
    primaries, listed = primary_pods(pods), list(jobs)
    return [BootstrapState(node, state, ready_since(primaries.get(node)), jobs_of(node, listed))
            for node, state in states.items()]


def rerun_steps(node: str) -> list[tuple[str, str, str]]:
    """(apiVersion, kind, name) to delete before restarting the node's pod, so the operator,
    seeing the pod turn Ready with no stanza Pgtask, runs stanza-create, the first backup and
    Initialized again. The first backup's records go too: a process stopped after creating that
    Pgtask leaves it behind, and the re-run's backup then fails on "already exists" (seen with
    the real operator). Deleting them removes no data: Pgtasks and Jobs only record the steps,
    backups live in the pgBackRest repository."""
    records = [(CRUNCHY_API, "Pgtask"), ("batch/v1", "Job")]
    return [(api, kind, name) for name in (stanza_task_name(node), backup_task_name(node)) for api, kind in records]


PROCESSED = "pgcluster Processed"


def creation_abandoned(pgcluster: Mapping, has_deployment: bool, now: float, grace: float) -> bool:
    """Did the postgres-operator stop while creating this node, so that it never will?

    4.2.1 marks a Pgcluster `pgcluster Processed` first and creates its Deployment after; a
    process that dies in between leaves a Processed Pgcluster with no Deployment, and every
    later process skips Processed ones. Normal creation shows the same for a moment, so only
    a Pgcluster older than `grace` seconds counts (the deploy passes its readiness timeout).
    """
    if has_deployment or ((pgcluster.get("status") or {}).get("state") or "") != PROCESSED:
        return False
    created = (pgcluster.get("metadata") or {}).get("creationTimestamp")
    return bool(created) and now - epoch(created) >= grace


def abandoned_creation_line(node: str) -> str:
    """What a readiness timeout says about a node `creation_abandoned` judged, and what to do."""
    return (f"Pgcluster {node} is {PROCESSED!r} with no Deployment: the postgres-operator stopped while creating "
            f"it, and 4.2.1 never resumes a Processed Pgcluster. Re-run deploy_antdb with the same conf: it "
            f"deletes and re-creates Pgcluster {node} (a data volume already made for it is kept)")
