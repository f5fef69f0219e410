"""P2 orchestration overhead, P3 readiness latency and the Kubernetes API load of a deploy.

For each size: a fresh test cluster (tests/support/cluster.start_cluster, real AntDB nodes,
pods Ready as soon as their database answers), then `deploy_antdb`, a re-run with the same
conf, and `verify_antdb_topology`, each through `dag.test()` with the API's requests
counted by verb. P2's floor is a DAG of no-op tasks with deploy_antdb's graph shape (same
14 tasks, same mapped fan-outs) run the same way. P3 is the time from the last database
pod turning Ready (a store listener notes it) to the readiness sensor's task ending, split
into the package's part (until its trigger has the event) and Airflow's (resuming the task).
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

LOCAL_BUNDLE = "airflow.dag_processing.bundles.local.LocalDagBundle"
FLOOR_NAME = "bench_floor.py"
FLOOR_DAG = '''
"""Benchmark floor: deploy_antdb's graph shape, every task a no-op. Written to a temporary bundle by bench/deploy.py."""
from airflow.sdk import DAG, chain, task

with DAG(dag_id="bench_floor", schedule=None, params={"coordinators": 2, "datanodes": 3}):
    @task
    def validate(params=None):
        return [f"cn{i}" for i in range(1, params["coordinators"] + 1)] + \\
               [f"dn{i}" for i in range(1, params["datanodes"] + 1)]

    @task
    def noop():
        return None

    @task
    def create_nodes(node_name):
        return node_name

    @task
    def collect_topology(params=None):
        return ["gc"] + [f"cn{i}" for i in range(1, params["coordinators"] + 1)]

    @task
    def reconcile_pgxc_node(target):
        return target

    members = validate()
    steps = [noop.override(task_id=name)() for name in ("prepare_hosts", "ensure_operator", "ensure_namespace",
             "create_gc", "wait_gc_ready", "read_gc_address", "write_custom_config")]
    created = create_nodes.expand(node_name=members)
    waited = noop.override(task_id="wait_nodes_ready")()
    holders = collect_topology()
    reconciled = reconcile_pgxc_node.expand(target=holders)
    chain(members, *steps, created, waited, holders)
    chain(reconciled, noop.override(task_id="smoke_test")(), noop.override(task_id="summary")())
'''
SIZES = ((2, 3), (16, 32))
WRITE_VERBS = ("create", "update", "patch", "delete")


WRITE_METHOD_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def verb(record) -> str:
    """The Kubernetes verb of one recorded request (list vs get by path shape)."""
    if record.method != "GET":
        return WRITE_METHOD_VERBS.get(record.method, record.method)
    if record.query.get("watch") in ("1", "true"):
        return "watch"
    segments = [s for s in record.path.split("/") if s]
    if segments[:1] == ["api"]:
        segments = segments[2:]
    elif segments[:1] == ["apis"]:
        segments = segments[3:]
    else:
        return "discovery"
    if not segments:
        return "discovery"
    rest = segments[2:] if segments[0] == "namespaces" and len(segments) >= 3 else segments
    return "list" if len(rest) == 1 else "get"


def by_verb(requests) -> dict[str, int]:
    return dict(sorted(collections.Counter(verb(r) for r in requests).items()))


class ReadyClock:
    """Store listener: the wall time each database pod last turned Ready."""

    def __init__(self):
        self.ready_at: dict[str, float] = {}

    def __call__(self, event_type: str, obj: dict) -> None:
        if obj.get("kind") != "Pod" or event_type == "DELETED":
            return
        labels = obj["metadata"].get("labels") or {}
        conditions = (obj.get("status") or {}).get("conditions") or []
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
        if labels.get("pgo-pg-database") == "true" and ready and labels.get("pg-cluster") not in self.ready_at:
            self.ready_at[labels["pg-cluster"]] = time.time()


@contextlib.contextmanager
def trigger_event_times():
    """The wall time each readiness trigger had its event ready, by the nodes it watched.

    Splits P3 in two: last pod Ready -> the package's trigger has its event, then the event ->
    the sensor task done (Airflow resuming the deferred task, which dag.test does in process).
    """
    from antdb_k8s.triggers.readiness import AntDBNodesReadyTrigger

    original = AntDBNodesReadyTrigger._outcome
    times: dict[frozenset[str], float] = {}

    async def timed_outcome(self):
        outcome = await original(self)
        times[frozenset(self.nodes)] = time.time()
        return outcome

    AntDBNodesReadyTrigger._outcome = timed_outcome
    try:
        yield times
    finally:
        AntDBNodesReadyTrigger._outcome = original


@contextlib.contextmanager
def floor_bundle():
    """The floor DAG in a DAG bundle of its own, next to dags/ (dag.test() only runs bundled DAGs).

    Never written into dags/: other tests parse that folder whole.
    """
    folder = tempfile.mkdtemp(prefix="bench-floor-")
    (Path(folder) / FLOOR_NAME).write_text(FLOOR_DAG)
    key = "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"
    saved = os.environ.get(key)
    os.environ[key] = json.dumps([{"name": "dags-folder", "classpath": LOCAL_BUNDLE, "kwargs": {}},
                                  {"name": "bench-floor", "classpath": LOCAL_BUNDLE, "kwargs": {"path": folder}}])
    try:
        yield Path(folder) / FLOOR_NAME
    finally:
        os.environ.pop(key) if saved is None else os.environ.__setitem__(key, saved)
        shutil.rmtree(folder, ignore_errors=True)


def _timed_run(cluster, dag_id: str, conf: dict, floor_file: Path | None = None):
    from airflow.models import DagBag

    cluster.api.requests.clear()
    started = time.perf_counter()
    if floor_file is not None:
        run = DagBag(dag_folder=str(floor_file)).dags[dag_id].test(run_conf=conf)
    else:
        run = cluster.run_dag(dag_id, conf)
    return run, time.perf_counter() - started, list(cluster.api.requests)


def _sensor_latency(run, clock: ReadyClock, event_at: float | None, task_id: str,
                    nodes: list[str]) -> tuple | None:
    """(last Ready -> sensor done, of which last Ready -> trigger event), or None if not measured."""
    ti = next((t for t in run.get_task_instances() if t.task_id == task_id), None)
    if ti is None or ti.end_date is None or not all(n in clock.ready_at for n in nodes):
        return None
    last_ready = max(clock.ready_at[n] for n in nodes)
    # The store shows a change to watchers before it calls its listeners (the clock), so the
    # trigger may hold its event a few ms before the clock notes the pod Ready: that counts as 0.
    return ti.end_date.timestamp() - last_ready, None if event_at is None else max(event_at - last_ready, 0.0)


WAIT_TASKS = ("wait_gc_ready", "wait_nodes_ready")
WAIT_KEYS = (("wait_gc_ready", "p3_gc"), ("wait_nodes_ready", "p3_nodes"))


def task_seconds(run) -> dict[str, float]:
    """Wall seconds per task id (a mapped task: first start to last end), longest first."""
    spans: dict[str, list[float]] = {}
    for ti in run.get_task_instances():
        if ti.start_date is None or ti.end_date is None:
            continue
        start, end = spans.setdefault(ti.task_id, [ti.start_date.timestamp(), ti.end_date.timestamp()])
        spans[ti.task_id] = [min(start, ti.start_date.timestamp()), max(end, ti.end_date.timestamp())]
    return dict(sorted(((k, e - s) for k, (s, e) in spans.items()), key=lambda item: -item[1]))


def measure_size(coordinators: int, datanodes: int, poke_interval: int, floor_file: Path) -> dict:
    from tests.support.cluster import start_cluster, stop_cluster

    conf = {"coordinators": coordinators, "datanodes": datanodes, "prepare_hosts": "off",
            "timeouts": {"gc_ready": 900, "nodes_ready": 1800, "poke_interval": poke_interval}}
    cluster = start_cluster(ready_delay=0.0)
    clock = ReadyClock()
    cluster.store.add_listener(clock)
    saved_env = {key: os.environ.get(key) for key in cluster.env}
    os.environ.update(cluster.env)
    try:
        result = {}
        with trigger_event_times() as events:
            deploy, result["deploy_s"], result["deploy_requests"] = _timed_run(cluster, "deploy_antdb", conf)
        result["deploy_state"] = deploy.state
        result["deploy_tasks"] = task_seconds(deploy)
        nodes = ["gc"] + [f"cn{i}" for i in range(1, coordinators + 1)] + [f"dn{i}" for i in range(1, datanodes + 1)]
        gc_event = events.pop(frozenset({"gc"}), None)
        result["p3_gc"] = _sensor_latency(deploy, clock, gc_event, "wait_gc_ready", ["gc"])
        nodes_event = max(events.values(), default=None)
        result["p3_nodes"] = _sensor_latency(deploy, clock, nodes_event, "wait_nodes_ready", nodes)
        rerun, result["rerun_s"], result["rerun_requests"] = _timed_run(cluster, "deploy_antdb", conf)
        result["rerun_state"] = rerun.state
        verify, result["verify_s"], result["verify_requests"] = _timed_run(cluster, "verify_antdb_topology",
                                                                           {"namespace": "pgouser1"})
        result["verify_state"] = verify.state
        floor, result["floor_s"], _ = _timed_run(cluster, "bench_floor",
                                                 {"coordinators": coordinators, "datanodes": datanodes}, floor_file)
        result["floor_state"] = floor.state
        return result
    finally:
        for key, value in saved_env.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
        stop_cluster(cluster)


def _writes(requests) -> int:
    return sum(1 for r in requests if verb(r) in WRITE_VERBS)


def _p3_text(label: str, value: tuple | None) -> str:
    if value is None:
        return f"{label} n/a"
    done, event = value
    if event is None:  # the trigger never ran: the sensor found the nodes Ready at its first poke
        return f"{label} {done:.2f} s (no trigger)"
    return f"{label} {done:.2f} s (trigger event {event:.2f} s, Airflow resuming the task {done - event:.2f} s)"


def report(size: tuple[int, int], r: dict, poke_interval: int) -> None:
    cn, dn = size
    print(f"\n== 1 gc + {cn} cn + {dn} dn (real AntDB nodes, pods Ready at once, poke_interval={poke_interval}s)")
    print(f"  P2 deploy_antdb {r['deploy_s']:7.1f} s ({r['deploy_state']})  floor (no-op DAG, same shape) "
          f"{r['floor_s']:6.1f} s ({r['floor_state']})  ratio {r['deploy_s'] / r['floor_s']:.2f}x  "
          f"overhead {r['deploy_s'] - r['floor_s']:.1f} s")
    tasks = r.get("deploy_tasks") or {}
    waits = sum(tasks.get(t, 0.0) for t in WAIT_TASKS)
    print(f"  of which the two readiness waits (the operator creating each Deployment, the databases starting) "
          f"{waits:.1f} s; overhead without them {r['deploy_s'] - waits - r['floor_s']:.1f} s; longest tasks: "
          + ", ".join(f"{task_id} {seconds:.1f} s" for task_id, seconds in list(tasks.items())[:6]))
    p3 = ", ".join(_p3_text(label, r[key]) for label, key in WAIT_KEYS)
    print(f"  P3 last pod Ready -> sensor task done: {p3}  "
          f"(polling every {poke_interval}s: up to {poke_interval} s each)")
    for label, key in (("deploy", "deploy_requests"), ("re-run", "rerun_requests"), ("verify", "verify_requests")):
        requests = r[key]
        print(f"  API {label:7s} {len(requests):5d} requests, {_writes(requests):4d} writes  {by_verb(requests)}"
              + (f"  state={r[key.replace('requests', 'state')]}" if label != "deploy" else ""))
        users = collections.Counter(getattr(rec, "user", "") or "?" for rec in requests)
        print("    by client: " + ", ".join(f"{user} {count}" for user, count in users.most_common()))


def warm_up(floor_file: Path) -> None:
    """One untimed floor run. The first task a process runs starts Airflow's in-process execution
    API (about 5 s here: the first deploy's `validate` took 5.5 s, the re-run's 0.2 s); without
    this the first DAG timed, the deploy, paid it and the floor, timed later, did not."""
    from airflow.models import DagBag

    DagBag(dag_folder=str(floor_file)).dags["bench_floor"].test(run_conf={"coordinators": 1, "datanodes": 1})


def bench_deploy(sizes=SIZES, poke_interval: int = 10) -> dict:
    results = {}
    with floor_bundle() as floor_file:
        warm_up(floor_file)
        for size in sizes:
            results[size] = measure_size(*size, poke_interval=poke_interval, floor_file=floor_file)
            report(size, results[size], poke_interval)
    return results
