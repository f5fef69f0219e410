"""Run the sandbox until told to stop, keeping its cluster in a folder of the checkout.

What lives in the state folder (default `.sandbox/`, emptied by `make sandbox-reset`):
- `state.json`: every API object, saved every few seconds and at shutdown;
- `nodes/`: each AntDB node's data directory (its "PVC");
- `network`: the 127.0.N.0/24 its ClusterIPs come from (kept so addresses survive a restart);
- `kubeconfig`, `antdb-password` (0600), `connections.env`: what Airflow connects with;
- `ready`: written once the API answers; `make run` waits for it.

A restart is a cluster power cycle: objects and data are kept, every pod is started anew
by its controller (new pod names, same Services, ClusterIPs and data), the operator re-lists.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import secrets
import signal
import threading
from pathlib import Path

log = logging.getLogger("sandbox")
SAVE_INTERVAL = 2.0
DEFAULT_PORT = 16443
NETWORK_CHOICES = range(230, 255)      # 127.0.N.0/24; the tests use lower N (40 upwards)
SUPERUSER = "postgres"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", default=str(Path(__file__).resolve().parents[1] / ".sandbox"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("ANTDB_SANDBOX_PORT", DEFAULT_PORT)))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s sandbox %(levelname)s %(message)s")
    state = Path(args.state_dir)
    state.mkdir(parents=True, exist_ok=True)
    os.chmod(state, 0o755)              # node servers run as the `postgres` user: it must get in
    lock = _single_instance(state)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    world = Sandbox(state, args.port)
    try:
        world.start()
        world.run_until(stop)
    finally:
        world.stop()
        os.close(lock)
    return 0


def _single_instance(state: Path) -> int:
    fd = os.open(state / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit(f"another sandbox already runs on {state} (stop it first)") from None
    return fd


class Sandbox:
    """One simulated Kubernetes with the real operator and real AntDB nodes, state on disk."""

    def __init__(self, state: Path, port: int) -> None:
        self.state, self.port = state, port
        self.world = None
        self._saved_rv = ""
        self._announced: dict[str, str] = {}

    def start(self) -> None:
        from sandbox.world import assemble_world

        (self.state / "ready").unlink(missing_ok=True)
        restored = (self.state / "state.json").is_file()
        self.world = assemble_world(str(self.state), self._network(), api_port=self.port,
                                    state_file=self.state / "state.json")
        self._write_connections()
        self.save()
        url = self.world.api.url
        (self.state / "ready").write_text(url + "\n")
        print(f"sandbox: Kubernetes API (simulated locally) on {url}; "
              f"{'cluster restored from' if restored else 'new cluster in'} {self.state}", flush=True)
        print("sandbox: the postgres-operator 4.2.1 and every AntDB node are the real programs", flush=True)

    def _network(self) -> str:
        """The sandbox's Service network, chosen once and kept (ClusterIPs must survive restarts)."""
        path = self.state / "network"
        if path.is_file():
            return path.read_text().strip()
        used = {p.stem for p in Path("/tmp/antdb-test-networks").glob("*.lock")}
        third = next(n for n in NETWORK_CHOICES if f"127.0.{n}" not in used)
        network = f"127.0.{third}.0/24"
        path.write_text(network + "\n")
        return network

    def _write_connections(self) -> None:
        """kubernetes_default as Airflow's ServiceAccount (include/rbac), antdb_default with the
        sandbox's own superuser password (kept, 0600), as environment lines for `make run`."""
        pw_file = self.state / "antdb-password"
        if not pw_file.is_file():
            pw_file.write_text(secrets.token_urlsafe(18))
            os.chmod(pw_file, 0o600)
        password = pw_file.read_text().strip()
        kube = {"conn_type": "kubernetes", "extra": {"kube_config_path": self.world.kubeconfig}}
        antdb = {"conn_type": "postgres", "login": SUPERUSER, "password": password, "schema": "postgres"}
        target = self.state / "connections.env"
        target.write_text(f"AIRFLOW_CONN_KUBERNETES_DEFAULT='{json.dumps(kube)}'\n"
                          f"AIRFLOW_CONN_ANTDB_DEFAULT='{json.dumps(antdb)}'\n")
        os.chmod(target, 0o600)

    def save(self) -> None:
        from sandbox.kubeapi.persistence import save

        rv = self.world.store.resource_version
        if rv != self._saved_rv:
            save(self.world.store, self.state / "state.json")
            self._saved_rv = rv

    def run_until(self, stop: threading.Event) -> None:
        while not stop.wait(SAVE_INTERVAL):
            self.save()
            self._announce_nodes()

    def _announce_nodes(self) -> None:
        """Say where each AntDB node answers, once per new address (`make run` shows this)."""
        for svc in self.world.store.list("v1", "Service", None, label_selector="pg-cluster"):
            meta, ip = svc["metadata"], svc["spec"].get("clusterIP")
            key = f"{meta['namespace']}/{meta['name']}"
            if ip and self._announced.get(key) != ip and not meta["name"].endswith(("-replica", "-backrest-shared-repo")):
                self._announced[key] = ip
                print(f"sandbox: node {key} answers on {ip}:5432", flush=True)

    def stop(self) -> None:
        from sandbox.world import stop_world

        if self.world is not None:
            try:
                self.save()
            finally:
                stop_world(self.world, keep_workdir=True)
        (self.state / "ready").unlink(missing_ok=True)
