"""Kubernetes objects of one AntDB cluster: namespace, Secrets, volumes, Pgclusters, custom config."""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from antdb_k8s.operators.base import AntDBBaseOperator, spec_from_context
from antdb_k8s.operators.dry_run import show_manifests

PLACEHOLDER = "<generated>"


class EnsureNamespaceOperator(AntDBBaseOperator):
    """Namespace (labelled for the operator), its service accounts and roles, every node's
    Secrets, and hostPath volumes.

    The operator installs a namespace's accounts only for a namespace it labels itself
    (ns/nslogic.go); this one arrives labelled, so the package installs them
    (include/operator/target-namespace.yaml). Without `pgo-pg` no database pod is admitted.

    Secrets are created once and never rewritten; the superuser password is the
    `antdb_default` connection's, so the package can log in to what it deploys.
    """

    def execute(self, context: Any) -> dict:
        from antdb_k8s.core.install import target_namespace_manifests
        from antdb_k8s.core.manifests import host_path_volume_manifest, namespace_manifest

        spec = spec_from_context(context)
        if spec.dry_run:
            return self._dry_run(context, spec)
        superuser, password = self._superuser()
        actions = {f"Namespace/{spec.namespace}": self.kube.apply(namespace_manifest(spec))}
        for manifest in target_namespace_manifests(spec):
            actions[f"{manifest['kind']}/{manifest['metadata']['name']}"] = self.kube.apply(manifest)
        for node in spec.node_names():
            actions.update(self._ensure_secrets(spec, node, superuser, password))
            volume = host_path_volume_manifest(spec, node)
            if volume:
                actions[f"PersistentVolume/{volume['metadata']['name']}"] = self.kube.ensure(volume)[0]
        self.log.info("namespace %s: %s", spec.namespace, _count(actions))
        return {"status": _count(actions), "actions": actions}

    def _dry_run(self, context: Any, spec) -> dict:
        from antdb_k8s.core.install import target_namespace_manifests
        from antdb_k8s.core.manifests import (host_path_volume_manifest, namespace_manifest, secret_manifest,
                                              user_secret_names)

        rendered = [namespace_manifest(spec), *target_namespace_manifests(spec)]
        for node in spec.node_names():
            rendered += [secret_manifest(spec, name, node, {"username": user, "password": PLACEHOLDER})
                         for user, name in user_secret_names(node).items()]
            rendered += [m for m in [host_path_volume_manifest(spec, node)] if m]
        return {"status": "dry-run", "objects": show_manifests(self, context, rendered, verb="ensure")}

    def _superuser(self) -> tuple[str, str]:
        conn = self.antdb.credentials
        if not conn.password:
            from antdb_k8s.core.failures import antdb_no_password

            raise AirflowFailException(antdb_no_password(self.antdb_conn_id).message)
        return conn.login or "postgres", conn.password

    def _ensure_secrets(self, spec, node: str, superuser: str, password: str) -> dict[str, str]:
        from antdb_k8s.core.credentials import backrest_repo_config
        from antdb_k8s.core.manifests import APP_USER, backrest_secret_name, secret_manifest, user_secret_names

        users = {"postgres": (superuser, password), "primaryuser": ("primaryuser", None), APP_USER: (APP_USER, None)}
        actions = {}
        for user, name in user_secret_names(node).items():
            login, fixed = users[user]
            actions[f"Secret/{name}"] = self._ensure_secret(spec, name, node, login, fixed)
        name = backrest_secret_name(node)
        if self.kube.get("v1", "Secret", name, spec.namespace) is None:
            self.kube.create(secret_manifest(spec, name, node, backrest_repo_config(), {"pgo-backrest-repo": "true"}))
            actions[f"Secret/{name}"] = "created"
        else:
            actions[f"Secret/{name}"] = "exists"
        return actions

    def _ensure_secret(self, spec, name: str, node: str, login: str, fixed: str | None) -> str:
        from antdb_k8s.core.credentials import new_password
        from antdb_k8s.core.manifests import secret_manifest

        existing = self.kube.read_secret_value(spec.namespace, name, "password")
        if existing is not None:
            if fixed is not None and existing != fixed:
                raise AirflowFailException(f"Secret {name} holds a different superuser password than connection "
                                 f"{self.antdb_conn_id}; the running nodes use the Secret's. Update the connection.")
            return "exists"
        self.kube.create(secret_manifest(spec, name, node, {"username": login, "password": fixed or new_password()}))
        return "created"


class CreatePgclusterOperator(AntDBBaseOperator):
    """Create one node's Pgcluster if it is missing; report (never patch) a differing spec.

    The v4 operator ignores spec updates, so patching would only pretend to change a node.
    One the operator abandoned half made (Processed, no Deployment, older than the node's
    readiness timeout) is created again: see services/nodes.py.
    """

    template_fields = ("node_name",)

    def __init__(self, *, node_name: str, **kwargs):
        super().__init__(**kwargs)
        self.node_name = node_name

    def execute(self, context: Any) -> dict:
        from antdb_k8s.core.drift import spec_drift
        from antdb_k8s.core.manifests import pgcluster_manifest
        from antdb_k8s.core.names import require_dns1123_label

        spec = spec_from_context(context)
        name = require_dns1123_label(self.node_name, "node_name")
        manifest = pgcluster_manifest(spec, name)
        if spec.dry_run:
            show_manifests(self, context, [manifest], verb="create")
            return {"node": name, "action": "dry-run"}
        from antdb_k8s.services.nodes import ensure_pgcluster

        abandoned_after = spec.timeouts["gc_ready" if name == "gc" else "nodes_ready"]
        action, live = ensure_pgcluster(self.kube, manifest, abandoned_after=abandoned_after)
        drift = spec_drift(live.get("spec") or {}, manifest["spec"]) if action == "exists" else []
        for line in drift:
            self.log.warning("Pgcluster %s differs from the conf (not changed; the operator does not reconcile): %s",
                             name, line)
        return {"node": name, "action": action, "drift": drift}


class ReadGtmAddressOperator(AntDBBaseOperator):
    """gc's Service ClusterIP: the address every other node finds the GTM at."""

    def execute(self, context: Any) -> dict:
        from antdb_k8s.core.names import require_host

        spec = spec_from_context(context)
        if spec.dry_run:
            unread: list[str] = []
            service = self.live_or_none("Service gc ClusterIP", lambda: self._service(spec), unread)
            host = (service or {}).get("spec", {}).get("clusterIP") or f"gc.{spec.namespace}.svc"
            return {"host": host, "port": 5432, "unread": unread}
        service = self._service(spec)
        if service is None:
            # gc is Ready, so its Service should exist (the operator makes it first): a 404 now does not heal
            raise AirflowFailException(f"Service gc not found in namespace {spec.namespace} although gc is Ready: "
                                       "is the postgres-operator running? Re-run the deploy once it is.")
        host = require_host(service["spec"].get("clusterIP") or "", "Service gc clusterIP")
        self.log.info("gc listens on %s:5432", host)
        return {"host": host, "port": 5432}

    def _service(self, spec):
        return self.kube.get("v1", "Service", "gc", spec.namespace)


class WriteCustomConfigOperator(AntDBBaseOperator):
    """ConfigMap pgo-custom-antdb-config, with gc's address as agtm_host (runbook 1.7 steps 3-4)."""

    template_fields = ("gtm_address",)

    def __init__(self, *, gtm_address: dict, **kwargs):
        super().__init__(**kwargs)
        self.gtm_address = gtm_address

    def execute(self, context: Any) -> dict:
        from antdb_k8s.core.manifests import CUSTOM_CONFIG_NAME, agtm_from_postgres_ha, custom_config_manifest

        spec = spec_from_context(context)
        host, port = self.gtm_address["host"], int(self.gtm_address["port"])
        manifest = custom_config_manifest(spec, host, port)
        if spec.dry_run:
            show_manifests(self, context, [manifest], verb="write")
            return {"action": "dry-run", "agtm_host": host}
        current = self.kube.get("v1", "ConfigMap", CUSTOM_CONFIG_NAME, spec.namespace)
        if current is not None:
            live_host, _ = agtm_from_postgres_ha((current.get("data") or {}).get("postgres-ha.yaml", ""))
            if live_host and live_host != host:
                self.log.warning("agtm_host in %s changes %s -> %s; running nodes keep the old value until "
                                 "restarted (verify_antdb_topology repair=full does that)", CUSTOM_CONFIG_NAME, live_host, host)
        action = self.kube.apply(manifest)
        return {"action": action, "agtm_host": host}


class CollectTopologyOperator(AntDBBaseOperator):
    """(role, name, ClusterIP, port) of every node, read from Kubernetes (runbook 1.7 step 8).

    Returns the catalog holders (gc and coordinators: the reconcile task maps over them);
    the full topology goes to XCom key `topology`.
    """

    def execute(self, context: Any) -> list[str]:
        from antdb_k8s.core.topology import UnsafeTopologyError

        try:
            result = self._collect(context)
        except UnsafeTopologyError as refused:
            raise AirflowFailException(f"{refused}; fix or remove those objects, then re-run") from None
        context["ti"].xcom_push(key="topology", value={"nodes": result["nodes"], "unread": result.get("unread", [])})
        return result["catalog_holders"]

    def _collect(self, context: Any) -> dict:
        from antdb_k8s.core.topology import NodeRole
        from antdb_k8s.services.discovery import discover

        spec = spec_from_context(context)
        members = {name: spec.role_of(name) for name in spec.node_names()}
        if spec.dry_run:
            unread: list[str] = []
            services = self.live_or_none("node Services", lambda: self._services(spec), unread) or []
            ips = {s["metadata"]["name"]: s["spec"].get("clusterIP") for s in services}
            nodes = [{"name": n, "role": r.value, "host": ips.get(n) or f"{n}.{spec.namespace}.svc", "port": 5432}
                     for n, r in members.items()]
            return {"nodes": nodes, "catalog_holders": [n for n, r in members.items() if r is not NodeRole.DATANODE],
                    "unread": unread}
        facts = discover(self.kube, spec.namespace, pods=False)
        live = facts.members
        extra = sorted(set(live) - set(members))
        if extra:
            self.log.warning("namespace %s also holds Pgclusters %s that the conf does not name; Kubernetes is "
                             "the truth, so they stay in the topology (scale_antdb_coordinators changes that)",
                             spec.namespace, ", ".join(extra))
        members.update({name: live[name] for name in extra})
        topology = facts.topology(members)
        for node in topology.nodes:
            self.log.info("%-11s %-5s %s:%s", node.role.value, node.name, node.host, node.port)
        return {"nodes": topology.to_list(), "catalog_holders": [n.name for n in topology.catalog_holders]}

    def _services(self, spec) -> list[dict]:
        return self.kube.list("v1", "Service", spec.namespace, label_selector=None)


def _count(actions: dict[str, str]) -> str:
    tally: dict[str, int] = {}
    for action in actions.values():
        tally[action] = tally.get(action, 0) + 1
    return ", ".join(f"{n} {a}" for a, n in sorted(tally.items()))
