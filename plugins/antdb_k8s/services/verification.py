"""Verify a deployed AntDB cluster against Kubernetes: the facts, gathered; the judgement is core.verify.

`verify_cluster` is the one verification every day-2 DAG (nightly verification, restart
check, scaling) and the UI run, so they ask the same questions the same way; the
operator around it only adds params, the task-log table, XCom and the failure decision.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Sequence

from antdb_k8s.core.bootstrap import INITIALIZED, bootstrap_states, bootstrap_verdict
from antdb_k8s.core.manifests import CUSTOM_CONFIG_NAME, agtm_from_dcs, agtm_from_postgres_ha, dcs_config_name
from antdb_k8s.core.pgxc import plan_pgxc_changes, validate_topology
from antdb_k8s.core.smoke import scratch_table_name
from antdb_k8s.core.topology import NodeAddress, Topology
from antdb_k8s.core.verify import (
    CLUSTER,
    Finding,
    VerificationReport,
    agtm_finding,
    config_map_finding,
    data_finding,
    dcs_agtm_finding,
    first_line,
    pgxc_findings,
    pod_findings,
    reachable_finding,
    service_finding,
    sorted_findings,
    version_finding,
)
from antdb_k8s.services.discovery import ClusterFacts, discover

if TYPE_CHECKING:  # hook modules load the Kubernetes and PostgreSQL clients
    from antdb_k8s.hooks.antdb import AntDBHook, NodeIdentity
    from antdb_k8s.hooks.kube import AntDBKubeHook

log = logging.getLogger(__name__)
DATA_CHECK_ROWS = 100


def discovery_findings(facts: ClusterFacts) -> list[Finding]:
    """Per member: its pod Ready, its Service addressed; or one finding that there is no cluster."""
    if not facts.members:
        return [Finding(CLUSTER, "topology", False, f"no AntDB Pgclusters in namespace {facts.namespace}")]
    findings = pod_findings(facts.readiness())
    return findings + [service_finding(name, facts.services.get(name)) for name in facts.members]


def probe_identities(antdb: AntDBHook, nodes: Sequence[NodeAddress], workers: int = 8
                     ) -> dict[str, NodeIdentity | Exception]:
    """`identity()` of every node, in parallel; a failure is returned in place of the identity.

    Parallel because a node that cannot reach its GTM takes AntDB's GTM connect timeout
    (seconds) to refuse each query, and after gc moved every other node does that.
    """
    if not nodes:
        return {}
    try:
        antdb.credentials  # noqa: B018 - read once here, not concurrently from the workers
    except Exception:  # noqa: BLE001 - each probe reports the missing connection itself
        pass

    def probe(address: NodeAddress) -> NodeIdentity | Exception:
        try:
            return antdb.identity(address)
        except Exception as exc:  # noqa: BLE001 - returned: the caller decides what it means
            return exc

    with ThreadPoolExecutor(max_workers=min(workers, len(nodes)), thread_name_prefix="antdb-probe") as pool:
        return dict(zip((n.name for n in nodes), pool.map(probe, nodes)))


def _identities(antdb: AntDBHook, topology: Topology, findings: list[Finding]) -> dict[str, NodeIdentity]:
    """Ask every node who it is; an unreachable node becomes a finding, not an exception."""
    found: dict[str, NodeIdentity] = {}
    probed = probe_identities(antdb, topology.nodes)
    for address in topology.nodes:
        identity = probed[address.name]
        if isinstance(identity, Exception):
            findings.append(reachable_finding(address, _scrub(antdb, first_line(identity))))
            continue
        found[address.name] = identity
        findings.append(reachable_finding(address, None))
        findings.append(version_finding(address, identity.version, identity.node_name))
    return found


def _scrub(antdb: AntDBHook, text: str) -> str:
    """Mask the superuser password should a driver message ever echo it."""
    try:
        password = antdb.credentials.password
    except Exception:  # noqa: BLE001 - no connection, nothing to mask
        return text
    return text.replace(password, "******") if password else text


def _agtm_checks(kube: AntDBKubeHook, facts: ClusterFacts, identities: dict[str, NodeIdentity]) -> list[Finding]:
    """Every node's agtm_host (running, else its Patroni config) and the custom ConfigMap's vs gc's Service."""
    gc = facts.partial_topology.gtm_coord if facts.partial_topology else None
    if gc is None:
        return [Finding("gc", "agtm_host", False, "gc has no Service address: agtm_host cannot be checked")]
    findings = [agtm_finding(i.address, i.agtm_host, i.agtm_port, gc) for i in identities.values()]
    for node in (n for n in facts.partial_topology.nodes if n.name not in identities):
        dcs = kube.get("v1", "ConfigMap", dcs_config_name(node.name), facts.namespace) or {}
        host, port = agtm_from_dcs(((dcs.get("metadata") or {}).get("annotations") or {}).get("config"))
        finding = dcs_agtm_finding(node, dcs_config_name(node.name), host, port, gc)
        findings += [finding] if finding else []
    config = kube.get("v1", "ConfigMap", CUSTOM_CONFIG_NAME, facts.namespace)
    text = ((config or {}).get("data") or {}).get("postgres-ha.yaml")
    host, port = agtm_from_postgres_ha(text) if text is not None else (None, None)
    findings.append(config_map_finding(CUSTOM_CONFIG_NAME, text, host, port, gc))
    return findings


def _pgxc_checks(antdb: AntDBHook, facts: ClusterFacts, identities: dict[str, NodeIdentity]) -> list[Finding]:
    """Plan every reachable holder's catalog against Kubernetes; each change is drift."""
    topology = facts.partial_topology
    if not facts.complete:
        missing = sorted(set(facts.members) - set(topology.names() if topology else []))
        return [Finding(CLUSTER, "pgxc_node", False,
                        f"not checked: {', '.join(missing)} have no Service address, so the topology is incomplete")]
    try:
        validate_topology(topology)
    except ValueError as exc:
        return [Finding(CLUSTER, "pgxc_node", False, f"not checked: {exc}")]
    findings: list[Finding] = []
    for holder in topology.catalog_holders:
        if holder.name not in identities:
            findings.append(Finding(holder.name, "pgxc_node", False, "not checked: node unreachable"))
            continue
        try:
            rows = antdb.read_pgxc_nodes(holder)
        except Exception as exc:  # noqa: BLE001 - reported as the finding
            findings.append(Finding(holder.name, "pgxc_node", False, f"cannot read: {_scrub(antdb, first_line(exc))}"))
            continue
        findings += pgxc_findings(plan_pgxc_changes(topology, rows, holder.name), len(rows))
    return findings


def _data_check(antdb: AntDBHook, facts: ClusterFacts, identities: dict[str, NodeIdentity], table: str,
                rows: int) -> Finding:
    """A scratch table filled from gc and counted from every coordinator: touches every datanode."""
    topology = facts.partial_topology
    if not facts.complete or topology.gtm_coord is None or not topology.datanodes:
        return Finding(CLUSTER, "data", False, "not run: the topology is incomplete")
    unreachable = [n for n in topology.names() if n not in identities]
    if unreachable:
        return Finding(CLUSTER, "data", False, f"not run: {', '.join(unreachable)} unreachable")
    # Enough rows that every datanode gets some (hash distribution): 50 per datanode at least.
    rows = max(rows, 50 * len(topology.datanodes))
    try:
        result = antdb.run_smoke_test(topology, table, rows)
    except Exception as exc:  # noqa: BLE001 - a failed round trip is the finding
        return Finding(CLUSTER, "data", False, f"data round trip failed: {_scrub(antdb, first_line(exc))}")
    return data_finding(result)


def bootstrap_checks(kube: AntDBKubeHook, facts: ClusterFacts, grace: float) -> list[Finding]:
    """A finding per node the operator has not marked Initialized (none when all are: a clean
    cluster costs no request); stuck means nothing of its bootstrap moved for `grace` seconds."""
    pending = {node: state for node, state in facts.states.items() if state != INITIALIZED}
    if not pending:
        return []
    jobs = kube.list("batch/v1", "Job", facts.namespace)
    now = time.time()
    return [Finding(s.node, "bootstrap", *bootstrap_verdict(s, now, grace))
            for s in bootstrap_states(pending, facts.pods, jobs)]


def verify_cluster(kube: AntDBKubeHook, antdb: AntDBHook, namespace: str, *, data_check: bool = True,
                   data_rows: int = DATA_CHECK_ROWS, table: str | None = None,
                   bootstrap_grace: float | None = None) -> VerificationReport:
    """Every check of the issue, on every node of `namespace`; never raises for drift.

    Per node: pod Ready, Service ClusterIP, reachable, version; on gc and every
    coordinator: pgxc_node against Kubernetes; every node's agtm_host and the custom
    ConfigMap's against gc's Service; then (data_check) a write/read touching every datanode.
    With `bootstrap_grace` (the nightly verification), also whether the operator finished
    bootstrapping every node (core.bootstrap).
    """
    facts = discover(kube, namespace)
    findings = discovery_findings(facts)
    if bootstrap_grace is not None:
        findings += bootstrap_checks(kube, facts, bootstrap_grace)
    if facts.partial_topology is not None:
        identities = _identities(antdb, facts.partial_topology, findings)
        findings += _agtm_checks(kube, facts, identities)
        findings += _pgxc_checks(antdb, facts, identities)
        if data_check:
            name = table or scratch_table_name("antdb_verify", f"{namespace}-{time.time_ns()}")
            findings.append(_data_check(antdb, facts, identities, name, data_rows))
        else:
            findings.append(Finding(CLUSTER, "data", True, "skipped: data_check is off"))
    order = facts.partial_topology.names() if facts.partial_topology else []
    order += [m for m in facts.members if m not in order]
    return VerificationReport(namespace, sorted_findings(findings, order))
