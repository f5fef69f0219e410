"""`make run` (scripts/run-airflow.sh): everything it starts listens on 127.0.0.1, sized to the machine."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "run-airflow.sh"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _tree(root: int) -> set[int]:
    """`root` and every descendant, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in found]
        found.update(children)
        frontier += children
    return found


def _listening() -> dict[int, tuple[str, int]]:
    """inode -> (address, port) of every listening TCP socket on the machine."""
    sockets = {}
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A":  # LISTEN
                continue
            address, port = fields[1].split(":")
            sockets[int(fields[9])] = (_address(address, width), int(port, 16))
    return sockets


def _address(hex_address: str, width: int) -> str:
    if width == 8:
        return socket.inet_ntop(socket.AF_INET, bytes.fromhex(hex_address)[::-1])
    words = [bytes.fromhex(hex_address[i:i + 8])[::-1] for i in range(0, 32, 8)]
    return socket.inet_ntop(socket.AF_INET6, b"".join(words))


def _sockets_of(pids: set[int]) -> set[int]:
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(int(target[8:-1]))
        except OSError:
            continue
    return inodes


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)


def test_make_run_listens_only_on_loopback_and_sizes_the_executor(tmp_path):
    port = _free_port()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("AIRFLOW", "KUBECONFIG", "ANTDB_TEST"))}
    # A kubeconfig of a cluster that is not there: make run takes it as given (without one it
    # would start the local sandbox, which tests/sandbox covers).
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n"
                          "users: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
                          "current-context: x\n")
    env.update(HOME=str(tmp_path), AIRFLOW_HOME=str(tmp_path / "airflow"), AIRFLOW_PORT=str(port),
               KUBECONFIG=str(kubeconfig), PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}")
    log = (tmp_path / "run.log").open("w+")
    proc = subprocess.Popen(["bash", str(SCRIPT)], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while "Airflow UI:" not in (tmp_path / "run.log").read_text():
            assert proc.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
            assert time.monotonic() < deadline, (tmp_path / "run.log").read_text()[-3000:]
            time.sleep(1)
        time.sleep(5)  # the triggerer and scheduler open their sockets once started
        pids = _tree(proc.pid)
        listening = _listening()
        ours = {listening[inode] for inode in _sockets_of(pids) if inode in listening}

        assert ("127.0.0.1", port) in ours
        assert {address for address, _ in ours} == {"127.0.0.1"}, ours
        assert not {8793, 8794} & {p for _, p in ours}
        schedulers = [pid for pid in pids if b"scheduler" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        assert schedulers
        assert _environ(schedulers[0])["AIRFLOW__CORE__PARALLELISM"] == str(max(2, len(os.sched_getaffinity(0))))
        text = (tmp_path / "run.log").read_text()
        assert f"Airflow UI: http://127.0.0.1:{port}" in text
        assert f"kubernetes_default -> {kubeconfig}" in text, "make run says which cluster it uses"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the session this test started, and only it
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
