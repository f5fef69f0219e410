"""Runbook steps before any AntDB object: the operator (verify or install) and host preparation."""

from __future__ import annotations

import pytest

from antdb_k8s.core.hosts import REQUIRED_SYSCTLS, kube_proxy_mode
from tests.integration.test_deploy_e2e import MUTATING, NS

pytestmark = pytest.mark.integration
SMALL = {"coordinators": 1, "datanodes": 1, "timeouts": {"gc_ready": 300, "nodes_ready": 300, "poke_interval": 1}}


def proxy_mode(cluster) -> str:
    return kube_proxy_mode(cluster.get("v1", "ConfigMap", "kube-system", "kube-proxy")["data"]["config.conf"])


def proxy_pods(cluster) -> set[str]:
    return {p["metadata"]["name"] for p in cluster.store.list("v1", "Pod", "kube-system", label_selector="k8s-app=kube-proxy")}


def test_without_an_operator_verify_mode_fails_clearly_and_creates_nothing(bare_cluster, capfd):
    run = bare_cluster.run_dag("deploy_antdb", {**SMALL, "prepare_hosts": "off"})
    assert run.state == "failed"
    output = capfd.readouterr()
    assert "postgres-operator is not ready" in output.out + output.err
    assert "operator.install: true" in output.out + output.err
    for missing in ("CRD pgclusters.crunchydata.com is not installed", "CRD pgbackups.crunchydata.com is not installed",
                    "ConfigMap pgo-config (pgo.yaml) not found in namespace pgo",
                    "Deployment postgres-operator not found in namespace pgo"):
        assert missing in output.out + output.err, missing
    assert bare_cluster.get("v1", "Namespace", None, NS) is None
    assert bare_cluster.sim.operator_logs() == [], "nothing started an operator"


def test_install_operator_and_apply_host_preparation_then_deploy(bare_cluster):
    cluster = bare_cluster
    nodes = [n["metadata"]["name"] for n in cluster.store.list("v1", "Node")]
    assert any(cluster.sim.node_sysctls(n) != REQUIRED_SYSCTLS for n in nodes), "seeded hosts start with drift"
    assert proxy_mode(cluster) != "ipvs"
    proxies_before = proxy_pods(cluster)

    run = cluster.run_dag("deploy_antdb", {**SMALL, "prepare_hosts": "apply", "operator": {"install": True}})

    assert run.state == "success"
    for plural in ("pgclusters", "pgtasks", "pgpolicies", "pgreplicas", "pgbackups"):
        crd = cluster.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", None, f"{plural}.crunchydata.com")
        assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
        assert crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["type"] == "object"
        assert "subresources" not in crd["spec"]["versions"][0], "the operator patches status on the main resource"
    assert cluster.get("apps/v1", "Deployment", "pgo", "postgres-operator")["status"]["availableReplicas"] == 1
    assert cluster.get("v1", "Secret", "pgo", "pgo-backrest-repo-config") is not None
    # The install is what brought the real operator up: one process, still running, that built the nodes.
    (process,) = cluster.sim.operators.processes
    assert process.alive()
    assert "pgcluster controller" in process.output() and "Error in pgoconfig" not in process.output()
    accounts = {a["metadata"]["name"] for a in cluster.store.list("v1", "ServiceAccount", NS)}
    assert {"pgo-pg", "pgo-backrest", "pgo-default", "pgo-target"} <= accounts
    cluster.wait_operator_settled(NS)      # every Pgcluster Initialized by the operator, its Jobs done
    for node in nodes:
        assert {k: cluster.sim.node_sysctls(node)[k] for k in REQUIRED_SYSCTLS} == REQUIRED_SYSCTLS, node
    assert proxy_mode(cluster) == "ipvs"
    assert proxy_pods(cluster).isdisjoint(proxies_before), "every kube-proxy pod was restarted"
    assert len(proxy_pods(cluster)) == len(proxies_before)
    leftovers = cluster.store.list("v1", "Pod", "kube-system", label_selector="app.kubernetes.io/name=antdb-host-prep")
    assert leftovers == [], "host-prep pods are removed after use"
    assert {r[0] for r in cluster.pgxc_rows(NS, "gc")} == {"gc", "cn1", "dn1"}


def test_check_mode_reports_drift_without_changing_hosts(bare_cluster):
    cluster = bare_cluster
    before = {n["metadata"]["name"]: cluster.sim.node_sysctls(n["metadata"]["name"])
              for n in cluster.store.list("v1", "Node")}
    run = cluster.run_dag("deploy_antdb", {**SMALL, "prepare_hosts": "check", "operator": {"install": True}})
    assert run.state == "success"
    assert {n: cluster.sim.node_sysctls(n) for n in before} == before
    assert proxy_mode(cluster) != "ipvs"
    patched = [r for r in cluster.api.requests if r.method in MUTATING and "kube-proxy" in r.path]
    assert patched == []
