"""First and last tasks of a deploy: reject a bad conf before anything exists; summarise the run."""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from antdb_k8s.operators.base import SPEC_KEY, AntDBBaseOperator, spec_from_context
from antdb_k8s.operators.run_outcome import run_outcomes


class ValidateSpecOperator(AntDBBaseOperator):
    """Validate the run's conf (unknown keys included) and publish the node plan.

    Runs no I/O: a conf that fails here has created nothing anywhere. Its return value is
    the list of nodes created in parallel (the mapped task expands over it); the whole plan
    goes to XCom key `plan`, the validated spec to key `spec` (every later task reads it
    instead of parsing the conf again). Names and settings only, never credentials.
    """

    def execute(self, context: Any) -> list[str]:
        from antdb_k8s.core.spec import DEFAULTS, parse_spec

        conf = dict(getattr(context.get("dag_run"), "conf", None) or {})
        params = context["params"]
        merged = {key: params[key] for key in DEFAULTS if key in params}
        merged.update({key: value for key, value in conf.items()})  # unknown keys reach parse_spec
        spec = parse_spec(merged)
        for warning in spec.warnings:
            self.log.warning("%s", warning)
        plan = {
            "namespace": spec.namespace,
            "gtm_coord": "gc",
            "members": spec.coordinator_names() + spec.datanode_names(),
            "nodes": spec.node_names(),
            "dry_run": spec.dry_run,
            "warnings": list(spec.warnings),
        }
        self.log.info("deploying %s into namespace %s%s", ", ".join(plan["nodes"]), spec.namespace,
                      " (dry run)" if spec.dry_run else "")
        context["ti"].xcom_push(key=SPEC_KEY, value=spec.to_dict())  # every later task reads this
        context["ti"].xcom_push(key="plan", value=plan)
        context["ti"].xcom_push(key="nodes", value=plan["nodes"])
        return plan["members"]


class DeploySummaryOperator(AntDBBaseOperator):
    """One readable account of the run, for operators reading run history in the UI.

    Runs whatever happened (trigger_rule all_done): what was done, what failed and why, what to
    do next. When anything failed it fails too, so the run stays red although it is the last task.
    """

    record_failure = False  # its failure only repeats the others'

    def __init__(self, *, steps: dict[str, str], **kwargs):
        """`steps`: label -> task_id, or task_id:xcom_key. Pulled, not templated: a step that failed has no
        XCom, and a templated XComArg with a key would fail this task before it could say so."""
        kwargs.setdefault("trigger_rule", "all_done")
        kwargs.setdefault("retries", 0)
        super().__init__(**kwargs)
        self.steps = steps

    def execute(self, context: Any) -> dict:
        from antdb_k8s.core.failures import outcome_lines

        lines = ["AntDB deploy summary"]
        self.results = {label: _plain(self._pull(context, source)) for label, source in self.steps.items()}
        for step, result in self.results.items():
            if result not in (None, []):  # a step that did not run has no result; the outcome lines say why
                lines.append(f"  {step}: {_short(result)}")
        unread = [item for result in self.results.values()
                  for entry in (result if isinstance(result, list) else [result]) if isinstance(entry, dict)
                  for item in entry.get("unread", [])]
        if unread:
            lines.append("  live facts this dry run could not read:")
            lines += [f"    - {item}" for item in unread]
        outcomes = run_outcomes(context, exclude={self.task_id})
        lines += outcome_lines(outcomes, context["dag"].dag_id, spec_from_context(context).dry_run)
        self.log.info("%s", "\n".join(lines))
        failed = [o.task for o in outcomes if o.state == "failed"]
        if failed:
            raise AirflowFailException("\n".join(lines))
        return {"steps": self.results, "unread": unread, "failed": failed}

    @staticmethod
    def _pull(context: Any, source: str) -> Any:
        task_id, _, key = source.partition(":")
        return context["ti"].xcom_pull(task_ids=task_id, key=key or "return_value")


def _plain(value: Any) -> Any:
    """Mapped-task XComs arrive as lazy sequences; the summary wants plain lists."""
    if isinstance(value, (dict, str)) or value is None:
        return value
    try:
        return list(value)
    except TypeError:
        return value


def _short(result: Any) -> str:
    if isinstance(result, dict) and result.get("nodes") and all(isinstance(n, dict) for n in result["nodes"]):
        return ", ".join(f"{n['name']}={n['host']}:{n['port']}" for n in result["nodes"])
    if isinstance(result, dict) and "target" in result:
        return f"{result['target']}: {result.get('summary', '')}"
    if isinstance(result, dict):
        keys = ("status", "summary", "action", "host", "ok")
        parts = [f"{k}={result[k]}" for k in keys if k in result]
        return ", ".join(parts) or ", ".join(sorted(result))
    if isinstance(result, list):
        return "; ".join(_short(item) for item in result)
    return str(result)
