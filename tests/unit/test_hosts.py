"""Host preparation (runbook 2.1, 2.3): sysctl report parsing, kube-proxy ipvs edit, the prep pod, the script."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from antdb_k8s.core.hosts import (
    REQUIRED_SYSCTLS,
    SysctlFinding,
    host_prep_pod,
    kube_proxy_mode,
    load_sysctl_script,
    parse_sysctl_report,
    with_ipvs_mode,
)
from antdb_k8s.core.manifests import INCLUDE_DIR

LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
DNS1123_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


def test_required_sysctls_are_the_runbooks():
    assert REQUIRED_SYSCTLS == {"net.ipv4.ip_forward": "1", "net.bridge.bridge-nf-call-iptables": "1",
                                "net.bridge.bridge-nf-call-ip6tables": "1"}


# --- parse_sysctl_report -----------------------------------------------------------------


def test_parse_report_with_every_result():
    text = (
        "net.ipv4.ip_forward current=1 want=1 result=ok\n"
        "net.bridge.bridge-nf-call-iptables current=0 want=1 result=set\n"
        "net.bridge.bridge-nf-call-ip6tables current=0 want=1 result=drift\n"
    )
    findings = parse_sysctl_report("node-a", text)
    assert findings == [
        SysctlFinding("node-a", "net.ipv4.ip_forward", "1", "1", "ok"),
        SysctlFinding("node-a", "net.bridge.bridge-nf-call-iptables", "0", "1", "set"),
        SysctlFinding("node-a", "net.bridge.bridge-nf-call-ip6tables", "0", "1", "drift"),
    ]
    assert [f.needs_attention for f in findings] == [False, False, True]
    assert str(findings[2]) == "node-a: net.bridge.bridge-nf-call-ip6tables=0 (want 1) drift"


def test_error_line_and_missing_module_need_attention():
    text = (
        "net.ipv4.ip_forward current=0 want=1 result=error\n"
        "net.bridge.bridge-nf-call-iptables current=missing want=1 result=error\n"
        "net.bridge.bridge-nf-call-ip6tables current=1 want=1 result=ok\n"
    )
    findings = parse_sysctl_report("node-a", text)
    assert [(f.current, f.result, f.needs_attention) for f in findings] == [
        ("0", "error", True), ("missing", "error", True), ("1", "ok", False)]


def test_key_missing_from_the_log_is_an_error():
    text = "net.ipv4.ip_forward current=1 want=1 result=ok\n"
    findings = parse_sysctl_report("node-b", text)
    assert [f.key for f in findings] == list(REQUIRED_SYSCTLS)
    assert findings[1] == SysctlFinding("node-b", "net.bridge.bridge-nf-call-iptables", "unknown", "1", "error")
    assert findings[2].result == "error" and findings[2].needs_attention


def test_empty_log_reports_every_key_as_error():
    assert [f.result for f in parse_sysctl_report("n", "")] == ["error"] * len(REQUIRED_SYSCTLS)


def test_noise_and_malformed_lines_are_ignored():
    text = (
        "+ sysctl check starting\r\n"
        "  net.ipv4.ip_forward current=1 want=1 result=ok  \r\n"
        "net.bridge.bridge-nf-call-iptables current=1 want=1 result=maybe\n"  # unknown result
        "net.bridge.bridge-nf-call-ip6tables=1\n"  # not the contract's format
        "vm.swappiness current=60 want=1 result=drift\n"  # not a required key
    )
    findings = parse_sysctl_report("n", text)
    assert [f.result for f in findings] == ["ok", "error", "error"]
    assert "vm.swappiness" not in [f.key for f in findings]


# --- the script itself, for real, in check mode only -------------------------------------


def _run_sysctl_script(want: str) -> subprocess.CompletedProcess:
    """include/hosts/sysctl.sh under /bin/sh in check mode, which only reads /proc/sys."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SYSCTL_MODE": "check", "SYSCTL_WANT": want}
    script = load_sysctl_script(INCLUDE_DIR)
    return subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True, text=True, timeout=10, check=False)


def test_script_output_matches_the_parsers_contract():
    current = IP_FORWARD.read_text().strip()
    result = _run_sysctl_script(f"net.ipv4.ip_forward={current}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"net.ipv4.ip_forward current={current} want={current} result=ok"]
    finding = parse_sysctl_report("this-host", result.stdout)[0]
    assert finding == SysctlFinding("this-host", "net.ipv4.ip_forward", current, current, "ok")


def test_script_check_mode_reports_drift_and_changes_nothing():
    current = IP_FORWARD.read_text().strip()
    other = "0" if current == "1" else "1"
    result = _run_sysctl_script(f"net.ipv4.ip_forward={other} net.antdb.no_such_key=1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"net.ipv4.ip_forward current={current} want={other} result=drift",
        "net.antdb.no_such_key current=missing want=1 result=drift",
    ]
    assert IP_FORWARD.read_text().strip() == current
    assert parse_sysctl_report("h", result.stdout)[0].result == "drift"


# --- kube-proxy (runbook 2.3) ------------------------------------------------------------

KUBEADM_CONFIG = """\
apiVersion: kubeproxy.config.k8s.io/v1alpha1
bindAddress: 127.0.0.1
clientConnection:
  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf
  qps: 0
iptables:
  masqueradeAll: false
  syncPeriod: 0s
kind: KubeProxyConfiguration
metricsBindAddress: "127.0.0.1:10249"
mode: ""
"""


@pytest.mark.parametrize(("text", "mode"), [
    (KUBEADM_CONFIG, ""),
    ("mode: ipvs\n", "ipvs"),
    ('mode: "iptables"\n', "iptables"),
    ("kind: KubeProxyConfiguration\n", ""),
    ("mode:\n", ""),
    ("", ""),
])
def test_kube_proxy_mode(text, mode):
    assert kube_proxy_mode(text) == mode


def test_with_ipvs_mode_sets_the_runbooks_block_and_keeps_everything_else():
    before = yaml.safe_load(KUBEADM_CONFIG)
    after = yaml.safe_load(with_ipvs_mode(KUBEADM_CONFIG))
    assert after["mode"] == "ipvs"
    assert after["ipvs"] == {"excludeCIDRs": None, "minSyncPeriod": "0s", "scheduler": "", "strictARP": False,
                             "syncPeriod": "0s"}
    assert {k: v for k, v in after.items() if k not in ("mode", "ipvs")} == {
        k: v for k, v in before.items() if k != "mode"}
    assert kube_proxy_mode(with_ipvs_mode(KUBEADM_CONFIG)) == "ipvs"


def test_with_ipvs_mode_keeps_existing_ipvs_settings_and_is_idempotent():
    text = KUBEADM_CONFIG + "ipvs:\n  scheduler: rr\n  strictARP: true\n"
    once = with_ipvs_mode(text)
    ipvs = yaml.safe_load(once)["ipvs"]
    assert ipvs["scheduler"] == "rr" and ipvs["strictARP"] is True and ipvs["minSyncPeriod"] == "0s"
    assert yaml.safe_load(with_ipvs_mode(once)) == yaml.safe_load(once)


def test_with_ipvs_mode_on_empty_config():
    assert yaml.safe_load(with_ipvs_mode(""))["mode"] == "ipvs"


# --- the host-prep pod -------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["check", "apply"])
def test_host_prep_pod_is_a_valid_privileged_one_shot_pinned_to_the_node(mode):
    script = load_sysctl_script(INCLUDE_DIR)
    manifest = host_prep_pod("worker-1", "kube-system", mode, script)
    kubernetes_validate.validate(manifest, "1.30", strict=True)
    spec = manifest["spec"]
    (container,) = spec["containers"]
    assert spec["nodeName"] == "worker-1"
    assert spec["restartPolicy"] == "Never"
    assert container["securityContext"]["privileged"] is True
    assert container["command"] == ["/bin/sh", "-c", script]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["SYSCTL_MODE"] == mode
    assert dict(pair.split("=", 1) for pair in env["SYSCTL_WANT"].split()) == REQUIRED_SYSCTLS
    assert spec["tolerations"] == [{"operator": "Exists"}]  # control-plane nodes are hosts too
    assert manifest["metadata"]["namespace"] == "kube-system"
    assert manifest["metadata"]["labels"]["antdb.io/host"] == "worker-1"


@pytest.mark.parametrize("node", [
    "worker-1",
    "ip-127-0-0-1.eu-central-1.compute.internal",
    "a" * 62 + ".cluster.example",  # truncating the label value at 63 would end on '.'
    "b" * 29 + "-node",  # truncating the generateName part at 30 would end on '-'
    "n" * 253,
])
def test_host_prep_pod_names_and_labels_are_valid_for_any_node_name(node):
    manifest = host_prep_pod(node, "kube-system", "check", "true")
    kubernetes_validate.validate(manifest, "1.30", strict=True)
    label = manifest["metadata"]["labels"]["antdb.io/host"]
    assert len(label) <= 63 and LABEL_VALUE_RE.match(label) and node.startswith(label)
    generated = manifest["metadata"]["generateName"] + "x7k2p"  # the API server appends 5 characters
    assert len(generated) <= 63 and DNS1123_SUBDOMAIN_RE.match(generated)
    assert manifest["spec"]["nodeName"] == node
