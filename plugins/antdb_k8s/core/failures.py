"""What a failure means and what to do about it, as text: pure, so every task says it the same way.

The hooks decide which exception is which (`hooks/errors.py`); this module only words the
verdict. Each message names the connection or object involved, says what to change, and
points at the README section that explains it, because the reader is often someone who
has just cloned the repository and triggered their first run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

README_SECTION = 'README "When something fails"'
RBAC_MANIFEST = "include/rbac/airflow-antdb.yaml"
FAILURE_KEY = "failure"  # XCom key a failed task leaves its message under (summary and run note read it)
MESSAGE_LIMIT = 1500
RETRIED = " (this can heal: the task is retried if it has retries left)"

_FORBIDDEN = re.compile(
    r'User "(?P<user>[^"]*)" cannot (?P<verb>\S+) resource "(?P<resource>[^"]*)"'
    r'(?: in API group "(?P<group>[^"]*)")?(?: in the namespace "(?P<namespace>[^"]*)")?')


@dataclass(frozen=True)
class Verdict:
    """A classified failure: the sentence to show, and whether retrying could ever help."""

    message: str
    permanent: bool


@dataclass(frozen=True)
class Forbidden:
    user: str
    verb: str
    resource: str
    group: str
    namespace: str | None

    def permission(self) -> str:
        group = f" (API group {self.group!r})" if self.group else " (core API group)"
        where = f" in namespace {self.namespace}" if self.namespace else " cluster-wide"
        return f"{self.verb} {self.resource}{group}{where}"


def parse_forbidden(message: str) -> Forbidden | None:
    """The identity and permission in a Kubernetes 403 message, when the API server says them."""
    match = _FORBIDDEN.search(message or "")
    if not match:
        return None
    return Forbidden(match["user"], match["verb"], match["resource"], match["group"] or "", match["namespace"])


def kube_config_failed(conn_id: str, reason: str, tried: list[str]) -> Verdict:
    env = "AIRFLOW_CONN_" + conn_id.upper()
    lines = [f"the Kubernetes connection {conn_id} cannot be configured: {reason}", "looked for credentials in:"]
    lines += [f"  - {source}" for source in tried]
    lines += [
        "fix one of:",
        "  - put a kubeconfig at ~/.kube/config, or export KUBECONFIG=/path/to/kubeconfig, then restart `make run`;",
        f"  - export {env}='{{\"conn_type\": \"kubernetes\", "
        f"\"extra\": {{\"kube_config_path\": \"/path/to/kubeconfig\"}}}}';",
        f"  - edit connection {conn_id} in the UI (Admin -> Connections);",
        f"see {README_SECTION}.",
    ]
    return Verdict("\n".join(lines), permanent=True)


def kube_unreachable(conn_id: str, server: str, reason: str, permanent: bool) -> Verdict:
    then = " Nothing was changed: fix the address or start the cluster, then trigger again." if permanent else ""
    return Verdict(f"cannot reach the Kubernetes API at {server} (connection {conn_id}): {reason}. Is the cluster "
                   f"running, and is this its address (kubeconfig `server:`)?{then} See {README_SECTION}.",
                   permanent)


def kube_unauthorized(conn_id: str, identity: str) -> Verdict:
    return Verdict(f"the Kubernetes API refused the credentials of connection {conn_id} (401 Unauthorized; "
                   f"{identity}): the token or client certificate is not valid for this cluster (expired, "
                   f"revoked, or for another cluster). Get fresh credentials into the kubeconfig the connection "
                   f"uses; see {README_SECTION}.", permanent=True)


def kube_forbidden(conn_id: str, api_message: str, identity: str) -> Verdict:
    refused = parse_forbidden(api_message)
    who = f"identity {refused.user!r}" if refused else identity
    what = f"may not {refused.permission()}" if refused else f"was refused: {api_message}"
    return Verdict(f"the Kubernetes API refused connection {conn_id} (403 Forbidden): {who} {what}. Grant it with "
                   f"the role in {RBAC_MANIFEST} (it lists every permission the DAGs use) bound to that identity, "
                   f"e.g. `kubectl apply -f {RBAC_MANIFEST}`; see {README_SECTION}.", permanent=True)


def kube_status(conn_id: str, status: int, api_message: str) -> Verdict:
    """Any other API answer: 404/400/422 cannot heal; 429 and 5xx can."""
    if status == 429 or status >= 500:
        return Verdict(f"the Kubernetes API is unavailable ({status}): {api_message}", permanent=False)
    hint = (" A required object or API is missing: is the postgres-operator installed (or trigger with "
            "operator.install: true)?" if status == 404 else "")
    return Verdict(f"the Kubernetes API (connection {conn_id}) answered {status}: {api_message}.{hint} "
                   f"Retrying would not change this; see {README_SECTION}.", permanent=True)


def antdb_connection_missing(conn_id: str) -> Verdict:
    env = "AIRFLOW_CONN_" + conn_id.upper()
    return Verdict(f"connection {conn_id} is not defined. It holds the AntDB superuser login and password that every "
                   f"node is created with and that every task logs in with. Create it in the UI (Admin -> Connections, "
                   f"type Postgres, login postgres, a password of your choice) or export "
                   f"{env}='postgres://postgres:<password>@/postgres' before `make run`; see {README_SECTION}.",
                   permanent=True)


def antdb_no_password(conn_id: str) -> Verdict:
    return Verdict(f"connection {conn_id} has no password. It becomes the AntDB superuser password of the nodes, so "
                   f"set one (Admin -> Connections -> {conn_id}); see {README_SECTION}.", permanent=True)


def antdb_login_refused(conn_id: str, detail: str) -> Verdict:
    return Verdict(f"AntDB refused the login of connection {conn_id}: {detail}. The connection's password must be the "
                   f"one the nodes were created with (Secret <node>-postgres-secret); fix the connection, not the "
                   f"Secret; see {README_SECTION}.", permanent=True)


def antdb_unreachable(detail: str) -> Verdict:
    return Verdict(f"cannot reach an AntDB node: {detail}", permanent=False)


def operator_missing(problems: list[str]) -> Verdict:
    return Verdict("the postgres-operator is not ready: " + "; ".join(problems) + ". Install it first (README "
                   "\"A cluster of your own\"), or trigger deploy_antdb with operator.install: true to let the run "
                   f"install it; see {README_SECTION}.", permanent=True)


def first_lines(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """A message short enough for XCom, a run note and a summary line."""
    text = (text or "").strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class TaskOutcome:
    """One task instance at the end of a run, as the summary reports it."""

    task: str  # task_id, or task_id[map_index] for a mapped instance
    state: str
    message: str | None = None
    permanent: bool = False


def outcome_lines(outcomes: list[TaskOutcome], dag_id: str, dry_run: bool) -> list[str]:
    """What was done, what failed, what to do next: the end of every summary."""
    done = [o.task for o in outcomes if o.state in ("success", "skipped")]
    failed = [o for o in outcomes if o.state == "failed"]
    not_run = [o.task for o in outcomes if o.state in ("upstream_failed", "removed", "none", "None")]
    lines = [f"  done: {', '.join(done) or 'nothing'}"]
    for outcome in failed:
        lines.append(f"  FAILED {outcome.task}: {outcome.message or 'see its log'}")
    if not_run:
        lines.append(f"  not run (an earlier task failed): {', '.join(not_run)}")
    lines.append("  next: " + next_step(failed, dag_id, dry_run))
    return lines


def next_step(failed: list[TaskOutcome], dag_id: str, dry_run: bool) -> str:
    if failed:
        first = failed[0]
        again = ("retrying without a change fails the same way, so fix that first" if first.permanent
                 else "it may have been transient")
        return (f"fix what {first.task} says ({again}), then trigger {dag_id} again with the same conf: steps "
                f"already done are not repeated; see {README_SECTION}.")
    if dry_run:
        return f"nothing was changed. Trigger {dag_id} again with dry_run: false to do it."
    if dag_id == "deploy_antdb":
        return ("the cluster is deployed. verify_antdb_topology checks it (nightly, or trigger it); connect to gc "
                "or any coordinator at the address above with the antdb_default login.")
    return "nothing to do."
