"""Reconcile one catalog holder's `pgxc_node` with the topology Kubernetes reports."""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from antdb_k8s.core.pgxc import PgxcRow, PlanBlockedError, diff_summary, plan_pgxc_changes
from antdb_k8s.core.sql import render_plan
from antdb_k8s.core.topology import Topology
from antdb_k8s.operators.base import AntDBBaseOperator, spec_from_context


def fresh_catalog(target: str) -> list[PgxcRow]:
    """What initdb leaves on a new node: its own row, as a coordinator at localhost:5432."""
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
        spec = spec_from_context(context)
        nodes = self.topology["nodes"] if isinstance(self.topology, dict) else self.topology
        topology = Topology.from_list(nodes)
        address = topology.by_name(self.target)
        if address is None:
            raise ValueError(f"{self.target} is not a node of the collected topology")
        unread: list[str] = []
        if spec.dry_run:
            current = None
            if isinstance(self.topology, dict) and self.topology.get("unread"):
                unread.append(f"pgxc_node on {self.target}: its address is unknown (node Services were not read)")
            else:
                current = self.live_or_none(f"pgxc_node on {self.target}", lambda: self.antdb.read_pgxc_nodes(address),
                                            unread)
            if current is None:
                self.log.info("dry run: planning %s against a freshly initialised catalog", self.target)
                current = fresh_catalog(self.target)
        else:
            current = self.antdb.read_pgxc_nodes(address)
        plan = plan_pgxc_changes(topology, current, self.target)
        self._log_plan(plan)
        if not spec.dry_run:
            try:
                applied = self.antdb.apply_plan(address, plan)
            except PlanBlockedError as refused:
                raise AirflowFailException(str(refused)) from None  # retrying cannot make it safe
            self.log.info("%s: %d change(s) applied%s", self.target, applied, ", pool reloaded" if plan.reload_pool else "")
        return {"target": self.target, "summary": "no change" if plan.is_noop else f"{len(plan.changes)} change(s)",
                "plan": plan.to_dict(), "sql": render_plan(plan), "applied": not spec.dry_run, "unread": unread}

    def _log_plan(self, plan) -> None:
        if plan.is_noop:
            self.log.info("%s: pgxc_node already matches Kubernetes", plan.target)
            return
        self.log.info("%s: planned pgxc_node changes:\n  %s", plan.target, "\n  ".join(diff_summary(plan) or ["-"]))
        self.log.info("%s: SQL:\n  %s", plan.target, ";\n  ".join(render_plan(plan)) or "-")
        for blocker in plan.blockers:
            self.log.error("%s: %s", plan.target, blocker)
