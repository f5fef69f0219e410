"""What Kubernetes says about one namespace's AntDB cluster, read in one place and one pass.

Every task that needs the cluster's shape (deploy's topology, verification, repair,
scaling, the restart check, teardown, the UI) calls `discover` instead of listing
Pgclusters, Services and pods itself, so "which nodes exist, where they listen and which
are Ready" means the same everywhere. The judgements stay in `core` (`members_from_pgclusters`,
`topology_from_services`, `assess_readiness`); this module only reads and pairs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Iterable, Mapping

from antdb_k8s.core.bootstrap import abandoned_creation_line
from antdb_k8s.core.readiness import ReadinessReport, assess_readiness, format_timeout_report
from antdb_k8s.core.topology import CRUNCHY_API, NodeRole, Topology, TopologyError, members_from_pgclusters, topology_from_services
from antdb_k8s.services.nodes import abandoned_by_operator

if TYPE_CHECKING:  # the hook module loads the Kubernetes client: not at import time
    from antdb_k8s.hooks.kube import AntDBKubeHook

# Crunchy labels every pod that runs a node's database (primary and replicas) with this.
DATABASE_POD_SELECTOR = "pgo-pg-database=true"


def _usable_address(service: Mapping | None) -> bool:
    cluster_ip = ((service or {}).get("spec") or {}).get("clusterIP")
    return bool(cluster_ip) and cluster_ip != "None"


@dataclass(frozen=True)
class ClusterFacts:
    """Pgclusters (as members), Services and database pods of one namespace, as read together.

    Pure data once read: every derived view (topology, readiness, what is missing) is
    computed from the same listing, so two questions asked of one `ClusterFacts` never
    see two different clusters.
    """

    namespace: str
    members: dict[str, NodeRole]
    services: dict[str, dict] = field(default_factory=dict)
    pods: tuple[dict, ...] = ()
    states: dict[str, str] = field(default_factory=dict)    # each member's Pgcluster status.state

    @cached_property
    def addressed(self) -> dict[str, NodeRole]:
        """Members whose Service has a ClusterIP (the address pgxc_node uses, ADR 0003)."""
        return {n: r for n, r in self.members.items() if _usable_address(self.services.get(n))}

    @property
    def unaddressed(self) -> list[str]:
        """Members without a usable Service address, in member order."""
        return [n for n in self.members if n not in self.addressed]

    @property
    def complete(self) -> bool:
        """Some member exists and every member has an address: pgxc_node can be planned without guessing."""
        return bool(self.members) and not self.unaddressed

    @cached_property
    def partial_topology(self) -> Topology | None:
        """The addressed members as a topology; None when no member has an address."""
        addressed = self.addressed
        return topology_from_services(addressed, self.services.values()) if addressed else None

    def topology(self, members: Mapping[str, NodeRole] | None = None) -> Topology:
        """The complete topology of `members` (default: every member); TopologyError names what is missing."""
        chosen = dict(self.members if members is None else members)
        if not chosen:
            raise TopologyError(f"no AntDB Pgclusters in namespace {self.namespace}")
        return topology_from_services(chosen, self.services.values())

    def readiness(self, nodes: Iterable[str] | None = None) -> ReadinessReport:
        """Which of `nodes` (default: every member) have exactly one Ready primary database pod."""
        return assess_readiness(list(self.members) if nodes is None else list(nodes), self.pods)


def discover(kube: "AntDBKubeHook", namespace: str, *, pods: bool = True, services: bool = True) -> ClusterFacts:
    """List the namespace's Pgclusters, Services and database pods once and pair them.

    `pods`/`services` off skip a listing a caller does not need (e.g. a plan that only
    counts members). A missing Pgcluster CRD is the API's 404 and is raised as such
    (`KubeError`): whether that means "no cluster" is the caller's decision.
    """
    pgclusters = kube.list(CRUNCHY_API, "Pgcluster", namespace)
    members = members_from_pgclusters(pgclusters)
    states = {p["metadata"]["name"]: (p.get("status") or {}).get("state", "") for p in pgclusters
              if p["metadata"]["name"] in members}
    listed = {s["metadata"]["name"]: s for s in kube.list("v1", "Service", namespace)} if services else {}
    found = tuple(kube.list("v1", "Pod", namespace, label_selector=DATABASE_POD_SELECTOR)) if pods else ()
    return ClusterFacts(namespace, members, listed, found, states)


def deployed_namespaces(kube: "AntDBKubeHook") -> list[str]:
    """Namespaces the package deployed into: they carry its managed-by labels (core.manifests)."""
    from antdb_k8s.core.manifests import MANAGED_SELECTOR

    return sorted(n["metadata"]["name"] for n in kube.list("v1", "Namespace", label_selector=MANAGED_SELECTOR))


def read_readiness(kube: "AntDBKubeHook", namespace: str, nodes: Iterable[str]) -> ReadinessReport:
    """One look at the namespace's database pods only (the sensor's and the waits' question)."""
    return assess_readiness(list(nodes), kube.list("v1", "Pod", namespace, label_selector=DATABASE_POD_SELECTOR))


def describe_timeout(kube: "AntDBKubeHook", namespace: str, report: ReadinessReport, waited: float) -> str:
    """The readiness timeout message: every node not Ready, its pod and that pod's last events."""
    events = {n.pod: kube.events_for(namespace, n.pod) for n in report.not_ready if n.pod}
    return "\n".join([format_timeout_report(report, events, waited), *abandoned_lines(kube, namespace, report, waited)])


def abandoned_lines(kube: "AntDBKubeHook", namespace: str, report: ReadinessReport, waited: float) -> list[str]:
    """For the nodes with no pod: those whose creation the operator abandoned, and what to do.

    Read only when a wait has timed out (one Pgcluster and one Deployment read per podless node).
    """
    lines = []
    for node in (n.node for n in report.not_ready if not n.pod):
        pgcluster = kube.get(CRUNCHY_API, "Pgcluster", node, namespace)
        if pgcluster is not None and abandoned_by_operator(kube, pgcluster, grace=waited):
            lines.append(f"  {abandoned_creation_line(node)}")
    return lines
