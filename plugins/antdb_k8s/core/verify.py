"""Topology verification as data: findings, the report they make, and the pure judgements.

`operators.verify.verify_cluster` gathers facts (pods, Services, what each node says about
itself, each catalog holder's `pgxc_node`, the custom ConfigMap, a data round trip) and
turns each into `Finding`s with the functions below. Keeping the judgement here, free of
Airflow and Kubernetes imports, means the same rules serve the nightly verification, the
restart check and the scaling DAG, and are unit-tested without a cluster.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Iterable, Mapping

from antdb_k8s.core.pgxc import ChangeKind, PgxcPlan
from antdb_k8s.core.readiness import ReadinessReport
from antdb_k8s.core.smoke import SmokeResult
from antdb_k8s.core.topology import NodeAddress, NodeRole

CHECKS = ("topology", "pod", "bootstrap", "service", "reachable", "version", "pgxc_node", "agtm_host", "config_map",
          "data")
CLUSTER = "cluster"  # Finding.node of checks about the whole cluster (ConfigMap, data, topology)
# What gc's own agtm_host may say besides its ClusterIP: the AntDB gc image points it at itself.
SELF_REFERENCES = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass(frozen=True)
class Finding:
    """One check of one node (or of the whole cluster): passed or not, and what was seen."""

    node: str
    check: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{self.node} {self.check}: {self.detail}"

    def to_dict(self) -> dict:
        return {"node": self.node, "check": self.check, "ok": self.ok, "detail": self.detail}

    @classmethod
    def from_dict(cls, data: Mapping) -> "Finding":
        return cls(node=str(data["node"]), check=str(data["check"]), ok=bool(data["ok"]), detail=str(data["detail"]))


def _check_rank(check: str) -> int:
    return CHECKS.index(check) if check in CHECKS else len(CHECKS)


@dataclass(frozen=True)
class VerificationReport:
    """Every finding of one verification of one namespace, in the order they were made."""

    namespace: str
    findings: tuple[Finding, ...]

    @property
    def clean(self) -> bool:
        """True when every check passed (an empty report is not clean: nothing was verified)."""
        return bool(self.findings) and all(f.ok for f in self.findings)

    @property
    def problems(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if not f.ok)

    @property
    def drift(self) -> list[str]:
        """One human line per failed check: what the run history and notifiers show."""
        if not self.findings:
            return [f"{CLUSTER} topology: nothing was verified in namespace {self.namespace}"]
        return [f.line() for f in self.problems]

    def nodes(self) -> list[str]:
        return list(dict.fromkeys(f.node for f in self.findings))

    def for_node(self, node: str) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.node == node)

    def of_check(self, check: str) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.check == check)

    def failed_nodes(self, check: str) -> list[str]:
        """Nodes with at least one failed finding of `check`, in report order."""
        return list(dict.fromkeys(f.node for f in self.findings if f.check == check and not f.ok))

    def summary(self) -> str:
        """One line: `clean: 6 nodes, 41 checks` or `3 drift finding(s) on cn1, cn2: ...`."""
        if self.clean:
            return f"{self.namespace}: clean: {len(self.nodes())} nodes, {len(self.findings)} checks"
        drift = self.drift
        where = ", ".join(dict.fromkeys(f.node for f in self.problems)) or CLUSTER
        return f"{self.namespace}: {len(drift)} drift finding(s) on {where}: " + "; ".join(drift)

    def table(self, width: int = 100) -> str:
        """A fixed-width table for task logs: NODE, CHECK, RESULT, DETAIL (wrapped)."""
        head = f"{'NODE':<10} {'CHECK':<11} {'RESULT':<6} DETAIL"
        lines = [f"verification of namespace {self.namespace}", head, "-" * max(len(head), width)]
        indent = " " * 30
        for f in self.findings:
            wrapped = textwrap.wrap(f.detail, width=max(width - 30, 30)) or [""]
            lines.append(f"{f.node:<10} {f.check:<11} {'ok' if f.ok else 'DRIFT':<6} {wrapped[0]}".rstrip())
            lines.extend(indent + more for more in wrapped[1:])
        lines.append("-" * max(len(head), width))
        lines.append("result: " + ("clean" if self.clean else f"{len(self.drift)} drift finding(s)"))
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"namespace": self.namespace, "clean": self.clean, "drift": self.drift,
                "findings": [f.to_dict() for f in self.findings]}

    @classmethod
    def from_dict(cls, data: Mapping) -> "VerificationReport":
        return cls(namespace=str(data["namespace"]),
                   findings=tuple(Finding.from_dict(f) for f in data.get("findings") or ()))


def sorted_findings(findings: Iterable[Finding], node_order: Iterable[str]) -> tuple[Finding, ...]:
    """Findings grouped per node in `node_order` (cluster-wide last), checks in CHECKS order."""
    order = {name: i for i, name in enumerate(node_order)}
    items = list(findings)
    return tuple(sorted(items, key=lambda f: (order.get(f.node, len(order)), _check_rank(f.check))))


# --------------------------------------------------------------------------- judgements

def pod_findings(readiness: ReadinessReport) -> list[Finding]:
    """Pod Ready per node, from the one readiness decision the sensors use."""
    return [Finding(n.node, "pod", n.ready, f"pod {n.pod} Ready" if n.ready else f"pod {n.pod or '-'}: {n.reason}")
            for n in readiness.nodes]


def service_finding(name: str, service: Mapping | None) -> Finding:
    """A node's Service must exist and carry a ClusterIP: it is the node's address (ADR 0003)."""
    if service is None:
        return Finding(name, "service", False, f"Service {name} not found")
    cluster_ip = (service.get("spec") or {}).get("clusterIP")
    if not cluster_ip or cluster_ip == "None":
        return Finding(name, "service", False, f"Service {name} has no ClusterIP")
    return Finding(name, "service", True, f"ClusterIP {cluster_ip}")


def first_line(error: BaseException | str, limit: int = 300) -> str:
    """The first line of an error, typed and bounded, for findings and logs."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if isinstance(error, BaseException):
        text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def reachable_finding(address: NodeAddress, error: str | None) -> Finding:
    where = f"{address.host}:{address.port}"
    if error:
        return Finding(address.name, "reachable", False, f"cannot query {where}: {error}")
    return Finding(address.name, "reachable", True, f"answers on {where}")


def version_finding(address: NodeAddress, version: str, node_name: str | None) -> Finding:
    """The version is reported, not judged (test nodes are vanilla PostgreSQL); the name is judged.

    A node whose `pgxc_node_name` differs from its Pgcluster name would be registered under
    a name it does not answer to, which AntDB rejects at the first distributed query.
    """
    if node_name not in (None, "", address.name):
        return Finding(address.name, "version", False,
                       f"node calls itself {node_name!r} (pgxc_node_name), Kubernetes calls it {address.name!r}; "
                       f"{version}")
    return Finding(address.name, "version", True, version)


def pgxc_findings(plan: PgxcPlan, rows: int) -> list[Finding]:
    """Every planned change and every blocker of one catalog holder is a drift finding."""
    if plan.is_noop:
        return [Finding(plan.target, "pgxc_node", True, f"{rows} rows match Kubernetes")]
    findings = []
    for change in plan.changes:
        what = change.kind.value.upper() + " " + change.row.node_name
        if change.kind is ChangeKind.ALTER:
            what += f" [{', '.join(change.fields)}]"
        findings.append(Finding(plan.target, "pgxc_node", False, f"{what} needed: {change.reason}"))
    findings.extend(Finding(plan.target, "pgxc_node", False, f"BLOCKER: {b}") for b in plan.blockers)
    return findings


def agtm_finding(address: NodeAddress, agtm_host: str | None, agtm_port: int | None, gc: NodeAddress) -> Finding:
    """A node's running agtm_host/agtm_port must be gc's current Service address.

    gc itself may also name itself by a loopback alias: the AntDB gc image does that.
    """
    have = f"{agtm_host}:{agtm_port}" if agtm_host else "unset"
    want = f"{gc.host}:{gc.port}"
    self_ref = address.name == gc.name and agtm_host in SELF_REFERENCES
    host_ok = agtm_host == gc.host or self_ref
    port_ok = agtm_port in (None, gc.port)
    if host_ok and port_ok:
        return Finding(address.name, "agtm_host", True, f"{have} (gc)")
    return Finding(address.name, "agtm_host", False,
                   f"agtm_host is {have} but gc's Service is at {want}: this node cannot reach the GTM "
                   f"until it restarts with the new address (repair: full)")


def dcs_agtm_finding(address: NodeAddress, config_name: str, host: str | None, port: int | None,
                     gc: NodeAddress) -> Finding | None:
    """For a node that does not answer: the agtm_host its Patroni config starts it with.

    AntDB refuses every query, even `SHOW`, while a node cannot reach its GTM, so the
    running value cannot be read; a stale value in `<c>-config` explains the silence.
    None when the config is absent or already points at gc (nothing more to say).
    """
    if host is None or agtm_finding(address, host, port, gc).ok:
        return None
    return Finding(address.name, "agtm_host", False,
                   f"node does not answer; {config_name} starts it with agtm_host {host}:{port or gc.port} but "
                   f"gc's Service is at {gc.host}:{gc.port} (repair: full)")


def config_map_finding(name: str, text: str | None, host: str | None, port: int | None, gc: NodeAddress) -> Finding:
    """The custom ConfigMap's agtm_host: what a restarted or new node will start with."""
    if text is None:
        return Finding(CLUSTER, "config_map", False, f"ConfigMap {name} (key postgres-ha.yaml) not found")
    if host == gc.host and port in (None, gc.port):
        return Finding(CLUSTER, "config_map", True, f"{name} agtm_host {host}:{port or gc.port} (gc)")
    return Finding(CLUSTER, "config_map", False,
                   f"{name} has agtm_host {host}:{port} but gc's Service is at {gc.host}:{gc.port}; "
                   f"nodes (re)started from it cannot reach the GTM (repair: full rewrites it)")


def data_finding(result: SmokeResult) -> Finding:
    spread = ", ".join(f"{k}={v}" for k, v in sorted(result.per_datanode.items())) or "none"
    counted = ", ".join(f"{k}={v}" for k, v in sorted(result.counts.items())) or "none"
    if result.ok:
        return Finding(CLUSTER, "data", True, f"{result.rows} scratch rows over {spread}; counted by {counted}")
    return Finding(CLUSTER, "data", False, "data round trip failed: " + "; ".join(result.problems))


def agtm_drift_nodes(report: VerificationReport) -> list[str]:
    """Nodes whose running agtm_host is wrong or unknown (unreachable): what repair: full restarts."""
    wrong = set(report.failed_nodes("agtm_host"))
    unreachable = set(report.failed_nodes("reachable"))
    return [n for n in report.nodes() if n in wrong or n in unreachable]


def role_order(role: NodeRole) -> int:
    """Start order of AntDB roles: gc, datanodes, coordinators (runbook and antdb.md)."""
    return {NodeRole.GTM_COORD: 0, NodeRole.DATANODE: 1, NodeRole.COORDINATOR: 2}[role]
