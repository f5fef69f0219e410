"""The repair task: the `repair` param's level applied, by `services.repair`, to what verification found."""

from __future__ import annotations

from typing import Any

from antdb_k8s.operators.base import AntDBBaseOperator
from antdb_k8s.operators.verify import MAP_INDEX_KEY


class RepairTopologyOperator(AntDBBaseOperator):
    """Repair at the `repair` param's level what the first verification found (`report`)."""

    template_fields = ("report",)

    def __init__(self, *, report: dict, restart_timeout: float = 300.0, poll_interval: float = 2.0, **kwargs):
        super().__init__(**kwargs)
        self.report, self.restart_timeout, self.poll_interval = report, restart_timeout, poll_interval

    def execute(self, context: Any) -> dict:
        from antdb_k8s.core.verify import VerificationReport
        from antdb_k8s.services.repair import repair_cluster

        params = context["params"]
        level = str(params.get("repair", "off"))
        report = VerificationReport.from_dict(self.report)
        context[MAP_INDEX_KEY] = report.namespace  # the report says which cluster (one per mapped task)
        if report.clean:
            self.log.info("the cluster verified clean: nothing to repair")
        elif level == "off":
            self.log.info("repair is off: %d drift finding(s) are left for final_verify to report", len(report.drift))
        outcome = repair_cluster(self.kube, self.antdb, report.namespace, level, report,
                                 timeout=self.restart_timeout, poll=self.poll_interval)
        for action in outcome.actions:
            self.log.info("repaired: %s", action)
        for refusal in outcome.refused:
            self.log.error("not repaired: %s", refusal)
        return {"level": level, **outcome.to_dict()}
