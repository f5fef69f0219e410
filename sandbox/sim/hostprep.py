"""The simulated hosts' kernel settings and what include/hosts/sysctl.sh prints on them.

Why the netns/privilege details: on a real node a pod without `hostNetwork` reads its own
network namespace's `net.*` values (the bridge keys do not even exist there), and a pod that
is not privileged cannot write /proc/sys. A product that forgets either must see the same
wrong report or failure here as on a cluster.
"""

from __future__ import annotations

import threading

HOST_PREP_LABEL = ("app.kubernetes.io/name", "antdb-host-prep")
INITIAL_SYSCTLS = {"net.ipv4.ip_forward": "1",
                   "net.bridge.bridge-nf-call-iptables": "0",
                   "net.bridge.bridge-nf-call-ip6tables": "0"}
POD_NETNS_SYSCTLS = {"net.ipv4.ip_forward": "1"}   # a fresh pod netns has no bridge-nf keys


def is_host_prep(pod: dict) -> bool:
    return (pod["metadata"].get("labels") or {}).get(HOST_PREP_LABEL[0]) == HOST_PREP_LABEL[1]


def container_env(container: dict) -> dict[str, str]:
    return {e["name"]: str(e.get("value", "")) for e in container.get("env") or [] if "name" in e}


def run_script(values: dict[str, str], mode: str, want: str | None, writable: bool) -> tuple[str, int]:
    """Output and exit status of sysctl.sh against `values` (mutated when it applies)."""
    if want is None:
        return "/bin/sh: 10: SYSCTL_WANT: parameter not set\n", 2
    lines, status = [], 0
    for pair in want.split():
        key, _, wanted = pair.partition("=")
        current = values.get(key, "missing")
        if current == wanted:
            result = "ok"
        elif mode == "apply" and current != "missing" and writable:
            values[key] = wanted
            result = "set"
        elif mode == "apply":
            result, status = "error", 1
        else:
            result = "drift"
        lines.append(f"{key} current={current} want={wanted} result={result}")
    return "".join(line + "\n" for line in lines), status


class HostSysctls:
    """Per-node sysctl values; every node starts with ip_forward=1 and bridge-nf-call-*=0."""

    def __init__(self, nodes: tuple[str, ...]) -> None:
        self._values = {node: dict(INITIAL_SYSCTLS) for node in nodes}
        self._lock = threading.Lock()

    def get(self, node: str) -> dict[str, str]:
        with self._lock:
            if node not in self._values:
                raise KeyError(f"no simulated node {node!r}")
            return dict(self._values[node])

    def knows(self, node: str) -> bool:
        return node in self._values

    def run_pod(self, pod: dict) -> tuple[str, int]:
        """Run the host-prep container of `pod` on its node: (log text, exit code)."""
        spec = pod["spec"]
        container = (spec.get("containers") or [{}])[0]
        env = container_env(container)
        privileged = bool((container.get("securityContext") or {}).get("privileged"))
        host_network = bool(spec.get("hostNetwork"))
        with self._lock:
            values = self._values[spec["nodeName"]] if host_network else dict(POD_NETNS_SYSCTLS)
            return run_script(values, env.get("SYSCTL_MODE", "check"), env.get("SYSCTL_WANT"),
                              writable=privileged)
