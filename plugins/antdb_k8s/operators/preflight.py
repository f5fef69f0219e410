"""The deploy's first real task: fail in seconds, before anything is written, when the run cannot succeed.

Without it the first sign of a missing kubeconfig or connection is a stack trace several
tasks in, after retries and after Kubernetes objects exist. Every check here is one a
later task would make anyway; a failure is final (no retry, `unreachable_is_permanent`)
and says what to change. A dry run makes the same checks but only reports them.
"""

from __future__ import annotations

from typing import Any, Callable

from airflow.sdk.exceptions import AirflowFailException

from antdb_k8s.operators.base import AntDBBaseOperator, spec_from_context
from antdb_k8s.operators.platform import CRD_NAME, operator_problems


class PreflightOperator(AntDBBaseOperator):
    """antdb_default has a password; Kubernetes is configured, reachable, accepts us, lets us read; operator ready."""

    ui_color = "#fbe9e7"
    unreachable_is_permanent = True

    def execute(self, context: Any) -> dict:
        spec = spec_from_context(context)
        checks: list[tuple[str, Callable[[], str]]] = [
            (f"connection {self.antdb_conn_id}", self._antdb_credentials),
            (f"connection {self.kubernetes_conn_id}", self._kube_api),
            ("Kubernetes permissions", lambda: self._kube_reads(spec)),
            ("postgres-operator", lambda: self._operator(spec)),
        ]
        if spec.dry_run:
            return self._report_only(checks)
        passed = {}
        for name, check in checks:
            passed[name] = check()
            self.log.info("preflight: %s: %s", name, passed[name])
        return {"status": "ok", "checks": passed}

    def _report_only(self, checks) -> dict:
        """A dry run must work without a cluster: each failed check becomes a line, not a failure."""
        unread: list[str] = []
        passed = {}
        for name, check in checks:
            result = self.live_or_none(f"preflight {name}", check, unread)
            if result is not None:
                passed[name] = result
                self.log.info("preflight: %s: %s", name, result)
        if unread:
            self.log.warning("a real run would stop at preflight: %s", " | ".join(unread))
        return {"status": "dry-run", "checks": passed, "unread": unread}

    def _antdb_credentials(self) -> str:
        from antdb_k8s.core.failures import antdb_no_password

        conn = self.antdb.credentials  # a missing connection is translated by TaskErrorsMixin
        if not conn.password:
            raise AirflowFailException(antdb_no_password(self.antdb_conn_id).message)
        return f"login {conn.login or 'postgres'}, password set"

    def _kube_api(self) -> str:
        version = self.kube.version()
        return f"Kubernetes {version.get('gitVersion', '?')}"

    def _kube_reads(self, spec) -> str:
        """The first read of each kind the deploy makes: a 403 names the missing permission."""
        from antdb_k8s.core.topology import CRUNCHY_API

        read = [f"namespace {spec.namespace}"]
        self.kube.get("v1", "Namespace", spec.namespace)
        if spec.prepare_hosts != "off":
            self.kube.list("v1", "Node")
            read.append("nodes")
        if self.kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", CRD_NAME) is not None:
            self.kube.list(CRUNCHY_API, "Pgcluster", spec.namespace)
            read.append("Pgclusters")
        return "can read " + ", ".join(read)

    def _operator(self, spec) -> str:
        if spec.operator_install:
            return "operator.install is true: ensure_operator installs it"
        problems = operator_problems(self.kube, spec)
        if problems:
            from antdb_k8s.core.failures import operator_missing

            raise AirflowFailException(operator_missing(problems).message)
        return f"ready in namespace {spec.operator_namespace}"
