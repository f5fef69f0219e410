"""The real Crunchy postgres-operator 4.2.1 binary, run as the process of the operator pod.

A real cluster runs the `operator` container of the postgres-operator Deployment from
image `crunchydata/postgres-operator`; here the test kubelet runs the binary built by
`scripts/ensure-operator.sh` with that container's environment and a kubeconfig for the
in-process API (`--kubeconfig`, as upstream's `postgres-operator.go` accepts for
out-of-cluster runs).

The image's filesystem: `config/pgoconfig.go` reads every template missing from ConfigMap
`pgo-config` from the hard-coded `/default-pgo-config/` (the image's copy of
`conf/postgres-operator/`). The package's ConfigMap carries its own `pgo.yaml` only (the
templates are upstream's, they live in the image, and the package does not copy them), so
the process needs that path exactly as the image has it. It gets a private one: the binary
runs in its own mount namespace (`unshare --mount`) where the build's `conf/postgres-operator`
is bind-mounted read-only on `/default-pgo-config`; nothing else in the host's view changes
(only the empty mount point directory has to exist on the host).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
from collections import deque
from pathlib import Path

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG_PATH = "/default-pgo-config"
LOG_LINES = 4000


def operator_build_dir() -> str:
    """The directory `scripts/ensure-operator.sh` built into (binary + conf/), building if needed."""
    out = subprocess.run([str(REPO / "scripts" / "ensure-operator.sh")], capture_output=True, text=True,
                         check=False, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"scripts/ensure-operator.sh failed ({out.returncode}): {out.stderr[-2000:]}")
    return out.stdout.strip().splitlines()[-1]


_build_dir: str | None = None
_build_lock = threading.Lock()


def build_dir() -> str:
    global _build_dir
    with _build_lock:
        if _build_dir is None:
            _build_dir = operator_build_dir()
        return _build_dir


class OperatorProcess:
    """One postgres-operator process; its combined output kept in memory (and in a file)."""

    def __init__(self, env: dict[str, str], kubeconfig: str, log_path: str) -> None:
        self.env, self.kubeconfig, self.log_path = dict(env), kubeconfig, log_path
        self._proc: subprocess.Popen | None = None
        self._lines: deque[str] = deque(maxlen=LOG_LINES)
        self._reader: threading.Thread | None = None

    def _command(self, root: str) -> list[str]:
        binary = os.path.join(root, "postgres-operator")
        conf = os.path.join(root, "conf", "postgres-operator")
        if shutil.which("unshare") is None or os.geteuid() != 0:
            raise RuntimeError("the real postgres-operator needs /default-pgo-config (config/pgoconfig.go); "
                               "the test harness provides it in a private mount namespace, which needs root "
                               "and util-linux `unshare`")
        os.makedirs(DEFAULT_CONFIG_PATH, exist_ok=True)     # the empty mount point; its content stays private
        script = 'mount --bind -o ro "$1" "$2" && shift 2 && exec "$@"'
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", conf,
                DEFAULT_CONFIG_PATH, binary, f"--kubeconfig={self.kubeconfig}"]

    def start(self) -> "OperatorProcess":
        command = self._command(build_dir())
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.path.dirname(self.log_path), **self.env}
        log.info("starting the real postgres-operator: %s", " ".join(command[-2:]))
        self._proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, text=True, errors="replace",
                                      start_new_session=True)
        self._reader = threading.Thread(target=self._read, name="pgo-log", daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        with open(self.log_path, "a", encoding="utf-8") as out:
            for line in self._proc.stdout:
                self._lines.append(line)
                out.write(line)
                out.flush()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def exit_code(self) -> int | None:
        """None while it runs."""
        return None if self._proc is None else self._proc.poll()

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def output(self) -> str:
        return "".join(self._lines)

    def stop(self, timeout: float = 10) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout)
        if self._reader is not None:
            self._reader.join(timeout=5)
