"""Benchmarks, each printed as a ratio against a baseline measured in the same run.

P1 parse (bench/parse.py): each DAG file vs an empty one-task DAG file and vs a no-op DAG of
   the same graph shape, fresh process each.
P2 orchestration overhead, P3 readiness latency and the API load table (bench/deploy.py):
   deploy_antdb, a re-run and verify_antdb_topology on the test cluster at 1+2+3 and 1+16+32,
   against a no-op DAG of the same graph shape.
P4 catalog apply (bench/catalog.py): the applier vs 130 statements over one connection,
   on a real AntDB coordinator.
Readiness poll cost: API requests and time per poll at 49 nodes vs 6.

Run with `make bench` (all) or `python -m bench.run p1 p4 ...`; `--small` skips 1+16+32.
Nothing here asserts: numbers are for people comparing changes.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]

import tests.conftest  # noqa: E402,F401 - isolated Airflow home, set before Airflow is imported


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
    from sandbox.kubeapi import KubeApiServer, ObjectStore

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


def main(argv: list[str] | None = None) -> None:
    from airflow.utils import db

    args = sys.argv[1:] if argv is None else argv
    chosen = [a for a in args if not a.startswith("-")] or ["p1", "poll", "p2", "p4"]
    db.resetdb()
    if "p1" in chosen:
        from bench.parse import main as bench_parse

        bench_parse(7)
    if "poll" in chosen:
        bench_readiness()
    if "p2" in chosen:
        from bench.deploy import SIZES, bench_deploy

        bench_deploy(SIZES[:1] if "--small" in args else SIZES)
    if "p4" in chosen:
        from bench.catalog import bench_catalog_apply

        bench_catalog_apply()


if __name__ == "__main__":
    main()
