"""A newcomer's first ten minutes, end to end: `scripts/run-airflow.sh` (what `make run` runs) on
a machine with no cluster starts the sandbox, and the DAGs triggered through Airflow's REST API
deploy and operate a real AntDB on it. Stopping and starting `make run` keeps the cluster.

Everything here is the real program a user runs: Airflow standalone (scheduler, dag-processor,
triggerer, api-server), the sandbox process, the real postgres-operator and AntDB nodes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.timeout(2400)]
NS = "pgouser1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MakeRun:
    """`scripts/run-airflow.sh` as a process group, with its own Airflow home and sandbox state."""

    def __init__(self, tmp: Path) -> None:
        self.home, self.state, self.port = tmp / "airflow", tmp / "sandbox", _free_port()
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "KUBERNETES_SERVICE"))},
                    "KUBECONFIG": str(tmp / "no-kubeconfig"), "AIRFLOW_HOME": str(self.home),
                    "AIRFLOW_PORT": str(self.port), "ANTDB_SANDBOX_DIR": str(self.state),
                    "ANTDB_SANDBOX_PORT": str(_free_port()),
                    "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
                    "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(_free_port())}
        self.proc: subprocess.Popen | None = None
        self.log = tmp / "make-run.log"
        self.token = ""

    def start(self, timeout: float = 300) -> None:
        self.proc = subprocess.Popen([str(ROOT / "scripts" / "run-airflow.sh")], cwd=ROOT, env=self.env,
                                     stdout=self.log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"make run exited early:\n{self.log.read_text()[-3000:]}"
            try:
                self.token = self._login()
                return
            except (OSError, KeyError, ValueError):
                time.sleep(2)
        raise AssertionError(f"Airflow did not answer within {timeout}s:\n{self.log.read_text()[-3000:]}")

    def _login(self) -> str:
        passwords = json.loads((self.home / "simple_auth_manager_passwords.json.generated").read_text())
        body = {"username": "admin", "password": passwords["admin"]}
        return self.call("POST", "/auth/token", body, auth=False)["access_token"]

    def call(self, method: str, path: str, body: dict | None = None, *, auth: bool = True) -> dict:
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method, headers=headers)
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"{}")

    def trigger(self, dag_id: str, conf: dict, timeout: float = 900) -> str:
        """Unpause, trigger with `conf`, wait for the end; returns the run's state."""
        deadline = time.monotonic() + timeout
        while True:   # the dag-processor may not have parsed the file yet
            try:
                self.call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
                break
            except OSError:
                assert time.monotonic() < deadline, f"{dag_id} never appeared"
                time.sleep(3)
        run_id = self.call("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})["dag_run_id"]
        while time.monotonic() < deadline:
            state = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]
            if state in ("success", "failed"):
                return state
            time.sleep(3)
        raise AssertionError(f"{dag_id} {run_id} did not finish within {timeout}s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        subprocess.run([str(ROOT / "scripts" / "sandbox.sh"), "stop"], env=self.env, check=False, timeout=120)

    # --- the node databases, read directly (never through the package) ---------------------
    def query(self, node: str, sql: str) -> list[tuple]:
        objects = json.loads((self.state / "state.json").read_text())["objects"]
        host = next(o["object"]["spec"]["clusterIP"] for o in objects if o["plural"] == "services"
                    and (o["object"]["metadata"]["namespace"], o["object"]["metadata"]["name"]) == (NS, node))
        password = (self.state / "antdb-password").read_text().strip()
        with psycopg.connect(host=host, port=5432, user="postgres", password=password, dbname="postgres",
                             autocommit=True, connect_timeout=10) as conn:
            cur = conn.execute(sql)
            return cur.fetchall() if cur.description else []


@pytest.fixture
def make_run():
    # Not pytest's tmp_path: its folders are 0700, and the node servers run as the `postgres` user.
    workdir = Path(tempfile.mkdtemp(prefix="antdb-make-run-"))
    os.chmod(workdir, 0o755)
    runner = MakeRun(workdir)
    try:
        yield runner
    finally:
        runner.stop()
        subprocess.run([str(ROOT / "scripts" / "sandbox.sh"), "reset"], env=runner.env, check=False, timeout=120)
        shutil.rmtree(workdir, ignore_errors=True)


def test_make_run_without_a_cluster_deploys_and_operates_real_antdb(make_run):
    make_run.start()
    assert "starting the local sandbox" in make_run.log.read_text()
    assert make_run.trigger("deploy_antdb", {}) == "success"
    names = {row[0] for row in make_run.query("gc", "SELECT node_name FROM pgxc_node")}
    assert names == {"gc", "cn1", "cn2", "dn1", "dn2", "dn3"}
    make_run.query("gc", "CREATE TABLE first_ten_minutes AS SELECT g AS id FROM generate_series(1, 1000) g")

    assert make_run.trigger("verify_antdb_topology", {"namespace": NS}) == "success"
    assert make_run.trigger("antdb_restart_check", {"namespace": NS}) == "success"
    assert make_run.trigger("scale_antdb_coordinators", {"namespace": NS, "coordinators": 3}) == "success"
    assert make_run.query("cn3", "SELECT count(*) FROM first_ten_minutes") == [(1000,)]

    make_run.stop()                      # stop and start `make run`: the cluster is still there
    make_run.start()
    assert "cluster restored" in (make_run.state / "sandbox.log").read_text()
    assert make_run.trigger("verify_antdb_topology", {"namespace": NS}) == "success"
    for node in ("gc", "cn1", "cn2", "cn3"):
        assert make_run.query(node, "SELECT count(*) FROM first_ten_minutes") == [(1000,)], node
