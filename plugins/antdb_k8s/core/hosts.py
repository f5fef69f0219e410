"""Host preparation (runbook 2.1 and 2.3): kernel settings on every node and kube-proxy in ipvs mode.

Pure parts only: the pod that inspects or sets sysctls on one node, the parsing of what it
reports, and the edit of kube-proxy's configuration. The operator runs the pods and
applies the edits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

REQUIRED_SYSCTLS = {
    "net.ipv4.ip_forward": "1",
    "net.bridge.bridge-nf-call-iptables": "1",
    "net.bridge.bridge-nf-call-ip6tables": "1",
}
HOST_PREP_LABEL = {"app.kubernetes.io/name": "antdb-host-prep", "app.kubernetes.io/managed-by": "antdb-airflow"}
_LINE = re.compile(r"^(?P<key>[a-z0-9_.-]+) current=(?P<current>\S*) want=(?P<want>\S*) result=(?P<result>ok|set|drift|error)$")


@dataclass(frozen=True)
class SysctlFinding:
    node: str
    key: str
    current: str
    want: str
    result: str  # ok | set | drift | error

    @property
    def needs_attention(self) -> bool:
        return self.result in ("drift", "error")

    def __str__(self) -> str:
        return f"{self.node}: {self.key}={self.current} (want {self.want}) {self.result}"


def host_prep_pod(node: str, namespace: str, mode: str, script: str, image: str = "busybox:1.36") -> dict:
    """A one-shot privileged pod on `node` that runs include/hosts/sysctl.sh."""
    want = " ".join(f"{k}={v}" for k, v in REQUIRED_SYSCTLS.items())
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": f"antdb-host-prep-{node[:30].rstrip('-.')}-", "namespace": namespace,
                     # a label value must end alphanumeric: a long FQDN cut at 63 may end on '.' or '-'
                     "labels": {**HOST_PREP_LABEL, "antdb.io/host": node[:63].rstrip("-._")}},
        "spec": {
            "nodeName": node,
            "hostNetwork": True,
            "restartPolicy": "Never",
            "tolerations": [{"operator": "Exists"}],
            "containers": [{
                "name": "sysctl",
                "image": image,
                "command": ["/bin/sh", "-c", script],
                "env": [{"name": "SYSCTL_MODE", "value": mode}, {"name": "SYSCTL_WANT", "value": want}],
                "securityContext": {"privileged": True},
                "volumeMounts": [{"name": "host-etc", "mountPath": "/host/etc"}],
            }],
            "volumes": [{"name": "host-etc", "hostPath": {"path": "/etc", "type": "Directory"}}],
        },
    }


def load_sysctl_script(include_dir: Path) -> str:
    return (include_dir / "hosts" / "sysctl.sh").read_text(encoding="utf-8")


def parse_sysctl_report(node: str, text: str) -> list[SysctlFinding]:
    """Findings from the pod's log; a key the log does not mention is reported as an error."""
    seen = {}
    for line in text.splitlines():
        match = _LINE.match(line.strip())
        if match:
            seen[match["key"]] = SysctlFinding(node, match["key"], match["current"], match["want"], match["result"])
    for key, want in REQUIRED_SYSCTLS.items():
        seen.setdefault(key, SysctlFinding(node, key, "unknown", want, "error"))
    return [seen[key] for key in REQUIRED_SYSCTLS]


def kube_proxy_mode(config_text: str) -> str:
    """kube-proxy's mode from its ConfigMap's config.conf ('' means the iptables default)."""
    document = yaml.safe_load(config_text) or {}
    return str(document.get("mode") or "")


def with_ipvs_mode(config_text: str) -> str:
    """config.conf with `mode: ipvs` and an `ipvs` block, everything else kept."""
    document = yaml.safe_load(config_text) or {}
    document["mode"] = "ipvs"
    ipvs = document.get("ipvs") or {}
    for key, value in {"excludeCIDRs": None, "minSyncPeriod": "0s", "scheduler": "", "strictARP": False,
                       "syncPeriod": "0s"}.items():
        ipvs.setdefault(key, value)
    document["ipvs"] = ipvs
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False)
