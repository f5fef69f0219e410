"""Prove the cluster distributes: rows on every datanode, the same count from every coordinator."""

from __future__ import annotations

from typing import Any

from antdb_k8s.operators.base import AntDBBaseOperator, spec_from_context


class AntDBSmokeTestOperator(AntDBBaseOperator):
    template_fields = ("topology",)

    def __init__(self, *, topology: dict | list, rows: int = 10000, table_prefix: str = "antdb_smoke", **kwargs):
        super().__init__(**kwargs)
        self.topology, self.rows, self.table_prefix = topology, rows, table_prefix

    def execute(self, context: Any) -> dict:
        from antdb_k8s.core.smoke import scratch_table_name
        from antdb_k8s.core.topology import Topology

        spec = spec_from_context(context)
        nodes = self.topology["nodes"] if isinstance(self.topology, dict) else self.topology
        topology = Topology.from_list(nodes)
        table = scratch_table_name(self.table_prefix, f"{context['run_id']}-{context['ti'].try_number}")
        if spec.dry_run:
            self.log.info("dry run: would create %s on gc, insert %d rows, count them on %s", table, self.rows,
                          ", ".join(n.name for n in topology.catalog_holders))
            return {"status": "dry-run", "table": table}
        result = self.antdb.run_smoke_test(topology, table, self.rows)
        self.log.info("rows per datanode: %s", ", ".join(f"{k}={v}" for k, v in sorted(result.per_datanode.items())))
        self.log.info("count per coordinator: %s", ", ".join(f"{k}={v}" for k, v in sorted(result.counts.items())))
        if not result.ok:
            raise RuntimeError("smoke test failed: " + "; ".join(result.problems))
        return {"status": "ok", **result.to_dict()}
