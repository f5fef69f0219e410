"""Reconcile one catalog holder's `pgxc_node` with the topology Kubernetes reports."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from antdb_k8s.operators.base import AntDBBaseOperator, spec_from_context

if TYPE_CHECKING:
    from antdb_k8s.core.pgxc import PgxcRow


def fresh_catalog(target: str) -> list[PgxcRow]:
    """What initdb leaves on a new node: its own row, as a coordinator at localhost:5432."""
    from antdb_k8s.core.pgxc import PgxcRow

    return [PgxcRow(target, "C", "localhost", 5432)]


class ReconcilePgxcNodeOperator(AntDBBaseOperator):
    """Plan, log, then apply the changes one coordinator (or gc) needs. Mapped over all of them.

    The plan is logged in full before anything runs; a plan with blockers (a datanode
    Kubernetes no longer has, a type conflict) fails the task having changed nothing.
    """

    template_fields = ("target", "topology")

    def __init__(self, *, target: str, topology: dict | list, **kwargs):
        super().__init__(**kwargs)
        self.target, self.topology = target, topology

    def execute(self, context: Any) -> dict:
        from antdb_k8s.core.pgxc import PlanBlockedError
        from antdb_k8s.core.sql import render_plan
        from antdb_k8s.core.topology import Topology
        from antdb_k8s.services.catalog import reconcile_catalog

        spec = spec_from_context(context)
        nodes = self.topology["nodes"] if isinstance(self.topology, dict) else self.topology
        topology = Topology.from_list(nodes)
        address = topology.by_name(self.target)
        if address is None:
            raise ValueError(f"{self.target} is not a node of the collected topology")
        unread: list[str] = []
        current = None
        if spec.dry_run:
            if isinstance(self.topology, dict) and self.topology.get("unread"):
                unread.append(f"pgxc_node on {self.target}: its address is unknown (node Services were not read)")
            else:
                current = self.live_or_none(f"pgxc_node on {self.target}", lambda: self.antdb.read_pgxc_nodes(address),
                                            unread)
            if current is None:
                self.log.info("dry run: planning %s against a freshly initialised catalog", self.target)
                current = fresh_catalog(self.target)
        try:
            result = reconcile_catalog(self.antdb, topology, address, current=current, dry_run=spec.dry_run)
        except PlanBlockedError as refused:
            raise AirflowFailException(str(refused)) from None  # retrying cannot make it safe
        return {"target": self.target, "summary": result.summary, "plan": result.plan.to_dict(),
                "sql": render_plan(result.plan), "applied": not spec.dry_run, "unread": unread}
