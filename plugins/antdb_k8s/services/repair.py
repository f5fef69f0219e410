"""Repair what verification found, with the package's one planner and one applier.

`safe`: each catalog holder's `pgxc_node` is planned against Kubernetes and applied with
`AntDBHook.apply_plan` (which refuses a blocked plan whole and never drops a datanode).
`full`: first the nodes are moved to gc's current address (a re-created gc Service), the
way a DBA would on Crunchy/Patroni: the custom ConfigMap and every node's Patroni DCS
ConfigMap get the new agtm_host, then the nodes still running with the old one are
restarted one at a time, each proven healthy before the next; then every node whose
bootstrap the operator never finished gets it re-run (core.bootstrap); then the `safe` repair.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from antdb_k8s.core.bootstrap import rerun_steps
from antdb_k8s.core.bounds import REPAIR_LEVELS
from antdb_k8s.core.manifests import (
    CUSTOM_CONFIG_NAME,
    agtm_from_postgres_ha,
    custom_config_manifest,
    dcs_config_name,
    dcs_with_agtm,
    postgres_ha_with_agtm,
)
from antdb_k8s.core.pgxc import PlanBlockedError, validate_topology
from antdb_k8s.core.spec import parse_spec
from antdb_k8s.core.topology import NodeAddress, NodeRole, Topology
from antdb_k8s.core.verify import VerificationReport, agtm_finding, first_line, role_order
from antdb_k8s.services.catalog import reconcile_catalog
from antdb_k8s.services.discovery import discover
from antdb_k8s.services.pods import replace_pod
from antdb_k8s.services.verification import probe_identities
from antdb_k8s.services.wait import WaitTimeout

if TYPE_CHECKING:
    from antdb_k8s.hooks.antdb import AntDBHook
    from antdb_k8s.hooks.kube import AntDBKubeHook

log = logging.getLogger(__name__)
GC_MOVE_CHECKS = ("agtm_host", "config_map", "reachable")


class RepairError(RuntimeError):
    """A repair step could not be completed (the message names the node and what it waited for)."""


class RepairRefused(RepairError):
    """Nothing can be repaired safely from what Kubernetes shows (e.g. a node has no Service)."""


@dataclass
class RepairOutcome:
    """What a repair did (`actions`) and what it left alone on purpose (`refused`)."""

    actions: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.actions)

    def to_dict(self) -> dict:
        return {"actions": list(self.actions), "refused": list(self.refused), "changed": self.changed}


def _complete_topology(kube: AntDBKubeHook, namespace: str) -> Topology:
    """The topology to repair towards; refuses to plan against a partial one."""
    facts = discover(kube, namespace, pods=False)
    if not facts.complete:
        missing = sorted(facts.unaddressed)
        raise RepairRefused(f"cannot repair {namespace}: no Service address for {', '.join(missing) or 'any node'}")
    try:
        validate_topology(facts.partial_topology)
    except ValueError as exc:
        raise RepairRefused(f"cannot repair {namespace}: {exc}") from None
    return facts.partial_topology


def repair_catalogs(kube: AntDBKubeHook, antdb: AntDBHook, namespace: str) -> RepairOutcome:
    """`repair: safe`: plan and apply every holder's pgxc_node (gc first); blocked plans are refused."""
    topology = _complete_topology(kube, namespace)
    outcome = RepairOutcome()
    for holder in topology.catalog_holders:
        try:
            result = reconcile_catalog(antdb, topology, holder)
            if not result.plan.is_noop:
                outcome.actions.append(f"{holder.name}: pgxc_node: {result.applied} change(s) applied, pool reloaded")
        except PlanBlockedError as exc:
            outcome.refused.append(str(exc))
            log.error("%s", exc)
        except Exception as exc:  # noqa: BLE001 - one holder's failure must not stop the others' repair
            outcome.refused.append(f"{holder.name}: pgxc_node repair failed: {first_line(exc)}")
            log.exception("pgxc_node repair on %s failed", holder.name)
    return outcome


def rewrite_custom_config(kube: AntDBKubeHook, namespace: str, gc: NodeAddress) -> str | None:
    """Point pgo-custom-antdb-config at gc, changing nothing else in it; None if already right."""
    current = kube.get("v1", "ConfigMap", CUSTOM_CONFIG_NAME, namespace)
    text = ((current or {}).get("data") or {}).get("postgres-ha.yaml")
    if text is None:
        kube.apply(custom_config_manifest(parse_spec({"namespace": namespace}), gc.host, gc.port))
        return f"ConfigMap {CUSTOM_CONFIG_NAME}: re-created with agtm_host {gc.host}:{gc.port} (package defaults)"
    host, port = agtm_from_postgres_ha(text)
    if host == gc.host and port in (None, gc.port):
        return None
    patch = {"data": {"postgres-ha.yaml": postgres_ha_with_agtm(text, gc.host, gc.port)}}
    kube.patch("v1", "ConfigMap", CUSTOM_CONFIG_NAME, patch, namespace)
    return f"ConfigMap {CUSTOM_CONFIG_NAME}: agtm_host {host}:{port} -> {gc.host}:{gc.port}"


def patch_dcs_configs(kube: AntDBKubeHook, namespace: str, topology: Topology) -> list[str]:
    """Each node's Patroni `<c>-config` annotation: where a restarted node really reads agtm_host."""
    gc, actions = topology.gtm_coord, []
    for node in topology.nodes:
        name = dcs_config_name(node.name)
        current = kube.get("v1", "ConfigMap", name, namespace)
        if current is None:
            continue
        raw = ((current.get("metadata") or {}).get("annotations") or {}).get("config")
        updated = dcs_with_agtm(raw, gc.host, gc.port, required=node.role is not NodeRole.GTM_COORD)
        if updated is None:
            continue
        kube.patch("v1", "ConfigMap", name, {"metadata": {"annotations": {"config": updated}}}, namespace)
        actions.append(f"ConfigMap {name}: agtm_host -> {gc.host}:{gc.port}")
    return actions


def stale_agtm_nodes(antdb: AntDBHook, topology: Topology) -> list[NodeAddress]:
    """Nodes running with another agtm_host than gc's Service, or not answering: restart order."""
    gc, stale = topology.gtm_coord, []
    for node, identity in zip(topology.nodes, probe_identities(antdb, topology.nodes).values()):
        if isinstance(identity, Exception):
            log.warning("%s does not answer (%s): it will be restarted", node.name, first_line(identity))
            stale.append(node)
        elif not agtm_finding(node, identity.agtm_host, identity.agtm_port, gc).ok:
            stale.append(node)
    return sorted(stale, key=lambda n: role_order(n.role))


def restart_node_pod(kube: AntDBKubeHook, namespace: str, node: str, healthy: Callable[[], bool], *,
                     timeout: float = 300.0, poll: float = 2.0) -> str:
    """Delete `node`'s database pod, then wait for a new Ready pod for which `healthy()` holds.

    Bounded by `timeout`; raises RepairError naming the node and the state it was stuck in.
    Returns the new pod's name.
    """
    def describe(old: str | None, report, state: str, waited: float) -> str:
        return f"{node}: no healthy replacement for pod {old} within {timeout:.0f}s ({state})"

    try:
        _, new = replace_pod(kube, namespace, node, healthy, deadline=time.monotonic() + timeout,
                                  interval=poll, describe=describe)
    except WaitTimeout as exc:
        raise RepairError(str(exc)) from None
    return new


def move_to_gc_address(kube: AntDBKubeHook, antdb: AntDBHook, namespace: str, *, timeout: float = 300.0,
                       poll: float = 2.0) -> RepairOutcome:
    """The gc-address half of `repair: full` (ConfigMaps, then one restart at a time)."""
    topology = _complete_topology(kube, namespace)
    gc, outcome = topology.gtm_coord, RepairOutcome()
    config = rewrite_custom_config(kube, namespace, gc)
    outcome.actions += [config] if config else []
    outcome.actions += patch_dcs_configs(kube, namespace, topology)
    for node in stale_agtm_nodes(antdb, topology):
        def healthy(node: NodeAddress = node) -> bool:
            identity = antdb.identity(node)
            return agtm_finding(node, identity.agtm_host, identity.agtm_port, gc).ok
        pod = restart_node_pod(kube, namespace, node.name, healthy, timeout=timeout, poll=poll)
        outcome.actions.append(f"{node.name}: restarted (pod {pod}) with agtm_host {gc.host}:{gc.port}")
    return outcome


def rerun_bootstraps(kube: AntDBKubeHook, antdb: AntDBHook, namespace: str, nodes: list[str], *,
                     timeout: float = 300.0, poll: float = 2.0) -> list[str]:
    """The bootstrap half of `repair: full`: per node, its stanza and first-backup Pgtasks and Jobs deleted, then its
    pod restarted; seeing the new pod turn Ready with no stanza Pgtask, the operator runs
    stanza-create, the first backup and Initialized again. One node at a time, each answering
    before the next; the backup itself goes on after this returns (the final check sees it)."""
    topology = _complete_topology(kube, namespace)
    actions = []
    for name in nodes:
        steps = rerun_steps(name)
        for api_version, kind, obj in steps:
            kube.delete(api_version, kind, obj, namespace)
        address = topology.by_name(name)
        pod = restart_node_pod(kube, namespace, name, lambda a=address: bool(antdb.identity(a)), timeout=timeout,
                               poll=poll)
        records = ", ".join(dict.fromkeys(obj for _, _, obj in steps))
        actions.append(f"{name}: bootstrap re-run: Pgtasks and Jobs {records} deleted, pod restarted ({pod}); "
                       "the operator now creates its stanza and first backup")
    return actions


def _full_repairs(kube: AntDBKubeHook, antdb: AntDBHook, namespace: str, report: VerificationReport,
                  timeout: float, poll: float) -> list[str]:
    """What only `repair: full` does (it restarts pods): move to gc's address, re-run bootstraps."""
    actions = []
    if any(f.check in GC_MOVE_CHECKS for f in report.problems):
        actions += move_to_gc_address(kube, antdb, namespace, timeout=timeout, poll=poll).actions
    stuck = report.failed_nodes("bootstrap")
    if stuck:
        actions += rerun_bootstraps(kube, antdb, namespace, stuck, timeout=timeout, poll=poll)
    return actions


def repair_cluster(kube: AntDBKubeHook, antdb: AntDBHook, namespace: str, level: str,
                   report: VerificationReport, *, timeout: float = 300.0, poll: float = 2.0) -> RepairOutcome:
    """Run the repair `level` asks for; nothing when off or when the report is clean."""
    if level not in REPAIR_LEVELS:
        raise ValueError(f"repair must be one of {', '.join(REPAIR_LEVELS)}, not {level!r}")
    outcome = RepairOutcome()
    if level == "off" or report.clean:
        return outcome
    try:
        if level == "full":
            outcome.actions += _full_repairs(kube, antdb, namespace, report, timeout, poll)
        else:
            outcome.refused += [f"{node}: bootstrap not re-run: that restarts its pod, which only repair=full does"
                                for node in report.failed_nodes("bootstrap")]
        catalogs = repair_catalogs(kube, antdb, namespace)
    except RepairRefused as exc:
        outcome.refused.append(str(exc))
        return outcome
    outcome.actions += catalogs.actions
    outcome.refused += catalogs.refused
    return outcome
