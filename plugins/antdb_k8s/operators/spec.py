"""First and last tasks of a deploy: reject a bad conf before anything exists; summarise the run."""

from __future__ import annotations

from typing import Any

from antdb_k8s.core.spec import DEFAULTS, parse_spec
from antdb_k8s.operators.base import SPEC_KEY, AntDBBaseOperator


class ValidateSpecOperator(AntDBBaseOperator):
    """Validate the run's conf (unknown keys included) and publish the node plan.

    Runs no I/O: a conf that fails here has created nothing anywhere. Its return value is
    the list of nodes created in parallel (the mapped task expands over it); the whole plan
    goes to XCom key `plan`, the validated spec to key `spec` (every later task reads it
    instead of parsing the conf again). Names and settings only, never credentials.
    """

    def execute(self, context: Any) -> list[str]:
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
    """One readable account of the run, for operators reading run history in the UI."""

    template_fields = ("results",)

    def __init__(self, *, results: dict, **kwargs):
        super().__init__(**kwargs)
        self.results = results

    def execute(self, context: Any) -> dict:
        lines = ["AntDB deploy summary"]
        self.results = {k: _plain(v) for k, v in (self.results or {}).items()}
        for step, result in self.results.items():
            lines.append(f"  {step}: {_short(result)}")
        unread = [item for result in self.results.values()
                  for entry in (result if isinstance(result, list) else [result]) if isinstance(entry, dict)
                  for item in entry.get("unread", [])]
        if unread:
            lines.append("  live facts this dry run could not read:")
            lines += [f"    - {item}" for item in unread]
        self.log.info("%s", "\n".join(lines))
        return {"steps": self.results, "unread": unread}


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
