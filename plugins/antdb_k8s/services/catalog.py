"""Plan, log, apply: the one way any task changes a catalog holder's `pgxc_node`.

Deploy, repair and scale all reconcile through `reconcile_catalog`, so each logs the
same plan (diff and SQL, blockers as errors) before anything runs, and a blocked plan is
refused whole (`PlanBlockedError`, changing nothing) for the caller to turn into its
refusal (a failed task without retry, or a repair left undone).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from antdb_k8s.core.pgxc import PgxcPlan, PgxcRow, diff_summary, plan_pgxc_changes
from antdb_k8s.core.sql import render_plan
from antdb_k8s.core.topology import NodeAddress, Topology

if TYPE_CHECKING:
    from antdb_k8s.hooks.antdb import AntDBHook

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CatalogResult:
    """The plan made for one holder and how many changes were applied (None: not applied, dry run)."""

    plan: PgxcPlan
    applied: int | None

    @property
    def summary(self) -> str:
        return "no change" if self.plan.is_noop else f"{len(self.plan.changes)} change(s)"


def log_plan(plan: PgxcPlan) -> None:
    """The plan in full, before anything runs: the diff, the SQL, every blocker."""
    if plan.is_noop:
        log.info("%s: pgxc_node already matches Kubernetes", plan.target)
        return
    log.info("%s: planned pgxc_node changes:\n  %s", plan.target, "\n  ".join(diff_summary(plan) or ["-"]))
    log.info("%s: SQL:\n  %s", plan.target, ";\n  ".join(render_plan(plan)) or "-")
    for blocker in plan.blockers:
        log.error("%s: %s", plan.target, blocker)


def reconcile_catalog(antdb: "AntDBHook", topology: Topology, holder: NodeAddress, *,
                      current: Sequence[PgxcRow] | None = None, dry_run: bool = False) -> CatalogResult:
    """Plan `holder`'s pgxc_node against `topology`, log the plan, apply it unless `dry_run`.

    `current` is the catalog to plan against when the caller has it (a dry run without a
    cluster); otherwise it is read from the holder. Raises PlanBlockedError, having run
    nothing, when the plan has blockers.
    """
    rows = list(current) if current is not None else antdb.read_pgxc_nodes(holder)
    plan = plan_pgxc_changes(topology, rows, holder.name)
    log_plan(plan)
    if dry_run:
        return CatalogResult(plan, None)
    applied = antdb.apply_plan(holder, plan)
    log.info("%s: %d change(s) applied%s", holder.name, applied, ", pool reloaded" if plan.reload_pool else "")
    return CatalogResult(plan, applied)
