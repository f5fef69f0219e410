"""Runbook steps that precede any AntDB object: host preparation and the postgres-operator."""

from __future__ import annotations

import base64
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from antdb_k8s.operators.base import AntDBBaseOperator, spec_from_context
from antdb_k8s.operators.dry_run import show_manifests

HOST_PREP_NAMESPACE = "kube-system"
CRD_NAME = "pgclusters.crunchydata.com"
OPERATOR_REPO_SECRET = "pgo-backrest-repo-config"


class PrepareHostsOperator(AntDBBaseOperator):
    """sysctl on every node and kube-proxy in ipvs mode (the runbook's design limit 1.6).

    `check` reports drift as warnings and carries on; `apply` changes what differs and
    fails if a node cannot be fixed; `off` does nothing. Pods it starts are removed.
    """

    def __init__(self, *, pod_timeout: float = 300, poll_interval: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.pod_timeout, self.poll_interval = pod_timeout, poll_interval

    def execute(self, context: Any) -> dict:
        spec = spec_from_context(context)
        mode = spec.prepare_hosts
        if mode == "off":
            self.log.info("prepare_hosts is off: not inspecting nodes")
            return {"status": "off"}
        if spec.dry_run:
            return self._dry_run(context, mode)
        findings = [f for node in self._node_names() for f in self._run_on_node(node, mode)]
        proxy = self._kube_proxy(mode)
        attention = [str(f) for f in findings if f.needs_attention]
        for line in attention:
            self.log.warning("host drift: %s", line)
        if mode == "apply" and any(f.result == "error" for f in findings):
            raise RuntimeError("could not apply sysctl settings: " + "; ".join(attention))
        return {"status": mode, "sysctl": [str(f) for f in findings], "attention": attention, "kube_proxy": proxy}

    def _dry_run(self, context: Any, mode: str) -> dict:
        from antdb_k8s.core.hosts import host_prep_pod, load_sysctl_script
        from antdb_k8s.core.manifests import INCLUDE_DIR

        unread: list[str] = []
        nodes = self.live_or_none("Kubernetes nodes", self._node_names, unread) or ["<each node>"]
        script = load_sysctl_script(INCLUDE_DIR)
        show_manifests(self, context, [host_prep_pod(node, HOST_PREP_NAMESPACE, mode, script) for node in nodes],
                       verb=f"run ({mode} mode)")
        return {"status": f"dry-run {mode}", "nodes": nodes, "unread": unread}

    def _node_names(self) -> list[str]:
        return sorted(n["metadata"]["name"] for n in self.kube.list("v1", "Node"))

    def _run_on_node(self, node: str, mode: str):
        from antdb_k8s.core.hosts import host_prep_pod, load_sysctl_script, parse_sysctl_report
        from antdb_k8s.core.manifests import INCLUDE_DIR
        from antdb_k8s.services.wait import wait_for

        manifest = host_prep_pod(node, HOST_PREP_NAMESPACE, mode, load_sysctl_script(INCLUDE_DIR))
        pod = self.kube.create(manifest)
        name = pod["metadata"]["name"]
        try:
            wait_for(lambda: self._pod_finished(name), self.pod_timeout, self.poll_interval, f"host-prep pod {name}")
            return parse_sysctl_report(node, self.kube.pod_log(HOST_PREP_NAMESPACE, name))
        finally:
            self.kube.delete("v1", "Pod", name, HOST_PREP_NAMESPACE)

    def _pod_finished(self, name: str) -> bool:
        pod = self.kube.get("v1", "Pod", name, HOST_PREP_NAMESPACE) or {}
        return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")

    def _kube_proxy(self, mode: str) -> str:
        from antdb_k8s.core.hosts import kube_proxy_mode, with_ipvs_mode

        config_map = self.kube.get("v1", "ConfigMap", "kube-proxy", "kube-system")
        if not config_map or "config.conf" not in (config_map.get("data") or {}):
            self.log.warning("kube-proxy ConfigMap not found: cannot check ipvs mode")
            return "unknown"
        current = kube_proxy_mode(config_map["data"]["config.conf"])
        if current == "ipvs":
            return "ipvs"
        if mode == "check":
            self.log.warning("kube-proxy runs in %r mode; AntDB on Kubernetes needs ipvs", current or "iptables")
            return f"{current or 'iptables'} (needs ipvs)"
        patched = with_ipvs_mode(config_map["data"]["config.conf"])
        self.kube.patch("v1", "ConfigMap", "kube-proxy", {"data": {"config.conf": patched}}, "kube-system")
        self._restart_kube_proxy()
        return "ipvs (changed)"

    def _restart_kube_proxy(self) -> None:
        """Delete kube-proxy pods one at a time, each replaced and Ready before the next."""
        from antdb_k8s.services.wait import wait_for

        for pod in self.kube.list("v1", "Pod", "kube-system", label_selector="k8s-app=kube-proxy"):
            node = (pod.get("spec") or {}).get("nodeName")
            self.kube.delete("v1", "Pod", pod["metadata"]["name"], "kube-system")
            wait_for(lambda: self._proxy_ready_on(node, pod["metadata"]["name"]), self.pod_timeout,
                  self.poll_interval, f"kube-proxy on {node}")

    def _proxy_ready_on(self, node: str | None, old_name: str) -> bool:
        from antdb_k8s.core.readiness import pod_is_ready

        pods = self.kube.list("v1", "Pod", "kube-system", label_selector="k8s-app=kube-proxy")
        return any(p["metadata"]["name"] != old_name and (p.get("spec") or {}).get("nodeName") == node
                   and pod_is_ready(p) for p in pods)


class EnsurePgoOperator(AntDBBaseOperator):
    """The five Crunchy CRDs (served as apiextensions.k8s.io/v1) and a Ready postgres-operator.

    With `operator.install` it applies include/crd and include/operator plus the Secret
    `pgo-backrest-repo-config` the operator copies into every cluster's repo Secret
    (util/cluster.go, created by upstream's deploy.sh); without, it only verifies them and
    fails at once, saying what is missing.
    """

    def __init__(self, *, ready_timeout: float = 600, poll_interval: float = 2.0, **kwargs):
        super().__init__(**kwargs)
        self.ready_timeout, self.poll_interval = ready_timeout, poll_interval

    def execute(self, context: Any) -> dict:
        from antdb_k8s.services.wait import wait_for

        spec = spec_from_context(context)
        manifests = self.manifests(spec)
        if spec.dry_run:
            unread: list[str] = []
            state = self.live_or_none("postgres-operator state", lambda: self._problems(spec), unread)
            show_manifests(self, context, manifests if spec.operator_install else [], verb="apply")
            return {"status": "dry-run", "install": spec.operator_install, "problems": state, "unread": unread}
        if spec.operator_install:
            actions = {f"{m['kind']}/{m['metadata']['name']}": self.kube.apply(m) for m in manifests}
            actions[f"Secret/{OPERATOR_REPO_SECRET}"] = self._ensure_repo_secret(spec)
            wait_for(lambda: not self._problems(spec), self.ready_timeout, self.poll_interval, "postgres-operator to be Ready")
            return {"status": "installed", "actions": actions}
        problems = self._problems(spec)
        if problems:
            from antdb_k8s.core.failures import operator_missing

            raise AirflowFailException(operator_missing(problems).message)
        return {"status": "verified"}

    @staticmethod
    def manifests(spec) -> list[dict]:
        """include/crd (all five) + include/operator with the conf's namespaces and prefix substituted."""
        from antdb_k8s.core.install import install_manifests

        return install_manifests(spec)

    def _ensure_repo_secret(self, spec) -> str:
        from antdb_k8s.core.credentials import operator_repo_config

        if self.kube.get("v1", "Secret", OPERATOR_REPO_SECRET, spec.operator_namespace) is not None:
            return "exists"
        data = {key: base64.b64encode(value.encode()).decode() for key, value in operator_repo_config().items()}
        self.kube.create({"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "data": data,
                          "metadata": {"name": OPERATOR_REPO_SECRET, "namespace": spec.operator_namespace,
                                       "labels": {"vendor": "crunchydata"}}})
        return "created"

    def _problems(self, spec) -> list[str]:
        return operator_problems(self.kube, spec)


def operator_problems(kube, spec) -> list[str]:
    """What keeps the postgres-operator from serving this conf's Pgclusters; empty when it is ready."""
    from antdb_k8s.core.install import CRD_NAMES, pgo_config_problems

    problems = []
    for name in CRD_NAMES:
        crd = kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name)
        if crd is None:
            problems.append(f"CRD {name} is not installed")
        elif not any(v.get("name") == "v1" and v.get("served") for v in crd["spec"].get("versions", [])):
            problems.append(f"CRD {name} does not serve v1")
    namespace = spec.operator_namespace
    config = kube.get("v1", "ConfigMap", "pgo-config", namespace)
    if config is None:
        problems.append(f"ConfigMap pgo-config (pgo.yaml) not found in namespace {namespace}")
    else:
        problems += pgo_config_problems((config.get("data") or {}).get("pgo.yaml"), spec.image_prefix)
    if kube.get("v1", "Secret", OPERATOR_REPO_SECRET, namespace) is None:
        problems.append(f"Secret {OPERATOR_REPO_SECRET} not found in namespace {namespace}")
    deployment = kube.get("apps/v1", "Deployment", "postgres-operator", namespace)
    if deployment is None:
        problems.append(f"Deployment postgres-operator not found in namespace {namespace}")
    elif not (deployment.get("status") or {}).get("availableReplicas"):
        problems.append("Deployment postgres-operator has no available replica")
    return problems
