"""Airflow's api-server app (UI, REST API, auth, plugins) served in this process on 127.0.0.1.

Built by Airflow's own factory (`airflow.api_fastapi.app.create_app`), so the AntDB
plugin is mounted exactly as `airflow api-server` mounts it, with the SimpleAuthManager
and one known user. In-process, so it sees the test cluster's connections and the
metadata database the DAG runs wrote.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import dataclass

import pytest

USER, PASSWORD = "dba", "antdb-ui-test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class AirflowServer:
    url: str
    server: object
    thread: threading.Thread
    settings: pytest.MonkeyPatch

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
        self.settings.undo()


def start_airflow_server(tmp_dir: str) -> AirflowServer:
    import uvicorn

    passwords = os.path.join(tmp_dir, "passwords.json")
    with open(passwords, "w", encoding="utf-8") as handle:
        json.dump({USER: PASSWORD}, handle)
    mp = pytest.MonkeyPatch()
    mp.setenv("AIRFLOW__CORE__AUTH_MANAGER",
              "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager")
    mp.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", f"{USER}:admin")
    mp.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", passwords)
    mp.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
    mp.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "antdb-ui-test-secret-" + "x" * 48)
    from airflow.api_fastapi.app import create_app, purge_cached_app

    purge_cached_app()
    app = create_app()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="airflow-api-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the in-process Airflow api-server did not start")
        time.sleep(0.1)
    return AirflowServer(f"http://127.0.0.1:{port}", server, thread, mp)
