"""Benchmarks, printed as ratios against a baseline measured in the same run.

1. Re-run cost: a second `deploy_antdb` with the same conf against the deployed cluster,
   relative to the first deploy (wall time, Kubernetes API requests, API writes).
   Goal: a re-run is much cheaper than a deploy and writes nothing.
2. Readiness polling cost: API requests and time per readiness poll for a 49-node cluster
   (1 gc + 16 cn + 32 dn) relative to a 6-node one. Goal: ~1x requests (one list per poll,
   whatever the size), so waiting on a big cluster does not load the API server more.

Run with `make bench`. Nothing here asserts: numbers are for people comparing changes.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]

import tests.conftest  # noqa: E402,F401 - isolated Airflow home, set before Airflow is imported


def _writes(requests) -> int:
    return sum(1 for r in requests if r.method in ("POST", "PUT", "PATCH", "DELETE"))


def bench_rerun() -> None:
    import pytest

    from antdb_k8s.hooks.antdb import AntDBHook
    from tests.support.cluster import start_cluster, stop_cluster
    from tests.support.pgnodes import vanilla_apply_node_change

    conf = {"prepare_hosts": "off", "timeouts": {"gc_ready": 300, "nodes_ready": 300, "poke_interval": 1}}
    cluster = start_cluster("vanilla")
    mp = pytest.MonkeyPatch()
    for key, value in cluster.env.items():
        mp.setenv(key, value)
    mp.setattr(AntDBHook, "apply_node_change", vanilla_apply_node_change)
    try:
        results = []
        for label in ("first deploy (baseline)", "re-run, same conf"):
            cluster.api.requests.clear()
            started = time.perf_counter()
            state = cluster.run_dag("deploy_antdb", conf).state
            elapsed = time.perf_counter() - started
            results.append((label, state, elapsed, len(cluster.api.requests), _writes(cluster.api.requests)))
        base = results[0]
        print("\n== deploy_antdb re-run cost (1 gc + 2 cn + 3 dn, vanilla nodes)")
        for label, state, elapsed, requests, writes in results:
            print(f"  {label:26s} state={state:8s} time={elapsed / base[2]:.2f}x  api requests={requests / base[3]:.2f}x"
                  f"  api writes={writes}")
    finally:
        mp.undo()
        stop_cluster(cluster)


def _fake_pods(count: int) -> list[dict]:
    names = ["gc"] + [f"cn{i}" for i in range(1, 17)] + [f"dn{i}" for i in range(1, 33)]
    pods = []
    for name in names[:count]:
        pods.append({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": f"{name}-abc", "namespace": "bench",
                                  "labels": {"pgo-pg-database": "true", "pg-cluster": name}},
                     "spec": {"containers": [{"name": "database", "image": "x"}]}})
    return pods


def bench_readiness() -> None:
    import json
    import os
    import tempfile

    from antdb_k8s.hooks.kube import AntDBKubeHook
    from antdb_k8s.services.discovery import read_readiness
    from tests.support.kubeapi import KubeApiServer, ObjectStore

    rows = []
    for size in (6, 49):
        server = KubeApiServer(ObjectStore(cluster_ip_network="127.0.250.0/24")).start()
        try:
            server.store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}})
            for pod in _fake_pods(size):
                server.store.create(pod)
            path = server.write_kubeconfig(os.path.join(tempfile.mkdtemp(), "kubeconfig"))
            os.environ["AIRFLOW_CONN_KUBE_BENCH"] = json.dumps({"conn_type": "kubernetes", "extra": {"kube_config_path": path}})
            hook = AntDBKubeHook("kube_bench")
            nodes = [p["metadata"]["labels"]["pg-cluster"] for p in _fake_pods(size)]
            read_readiness(hook, "bench", nodes)  # warm the client
            server.requests.clear()
            started = time.perf_counter()
            for _ in range(20):
                read_readiness(hook, "bench", nodes)
            rows.append((size, (time.perf_counter() - started) / 20, len(server.requests) / 20))
        finally:
            server.stop()
    base = rows[0]
    print("\n== readiness poll cost (one poll = one pod list)")
    for size, seconds, requests in rows:
        print(f"  {size:2d} nodes{' (baseline)' if size == base[0] else '           '}  time/poll={seconds / base[1]:.2f}x"
              f"  requests/poll={requests / base[2]:.2f}x")


def main() -> None:
    from airflow.utils import db

    db.resetdb()
    bench_readiness()
    bench_rerun()


if __name__ == "__main__":
    main()
