"""The cluster as Kubernetes describes it: which AntDB nodes exist and where they listen.

Kubernetes is the source of truth for topology (ADR 0001). Everything downstream
(`pgxc_node` planning, verification, smoke tests) consumes this shape, so it is
deliberately small, immutable and free of any Kubernetes or Airflow import.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass
from typing import Iterable

from antdb_k8s.core.names import InvalidName, require_dns1123_label, require_host, require_port

# The postgres-operator 4.2.1 API every Pgcluster and Pgtask is read and written through (one home).
CRUNCHY_API = "crunchydata.com/v1"


class NodeRole(str, enum.Enum):
    """An AntDB node's role; the value is the word the runbook's tooling uses."""

    GTM_COORD = "gtm_coord"
    COORDINATOR = "coordinator"
    DATANODE = "datanode"

    @property
    def pgxc_type(self) -> str:
        """The `pgxc_node.node_type` letter this role is registered with."""
        return "D" if self is NodeRole.DATANODE else "C"

    @property
    def short(self) -> str:
        """The key used for per-role settings in the conf (`gc`, `cn`, `dn`)."""
        return {"gtm_coord": "gc", "coordinator": "cn", "datanode": "dn"}[self.value]


@dataclass(frozen=True)
class NodeAddress:
    """One AntDB node: its name (== Pgcluster name == `pgxc_node_name`) and Service address."""

    name: str
    role: NodeRole
    host: str
    port: int = 5432

    def to_dict(self) -> dict:
        return {"name": self.name, "role": self.role.value, "host": self.host, "port": self.port}

    @classmethod
    def from_dict(cls, data: dict) -> "NodeAddress":
        return cls(name=data["name"], role=NodeRole(data["role"]), host=data["host"], port=int(data["port"]))


def _node_sort_key(node: NodeAddress) -> tuple:
    """gc first, then coordinators, then datanodes, each in numeric order (cn2 before cn10)."""
    order = {NodeRole.GTM_COORD: 0, NodeRole.COORDINATOR: 1, NodeRole.DATANODE: 2}[node.role]
    digits = "".join(ch for ch in node.name if ch.isdigit())
    return (order, int(digits) if digits else 0, node.name)


@dataclass(frozen=True)
class Topology:
    """Every node of one cluster, in a canonical order (gc, cn1..cnN, dn1..dnM)."""

    nodes: tuple[NodeAddress, ...]

    @classmethod
    def of(cls, nodes: Iterable[NodeAddress]) -> "Topology":
        return cls(tuple(sorted(nodes, key=_node_sort_key)))

    @property
    def gtm_coord(self) -> NodeAddress | None:
        return next((n for n in self.nodes if n.role is NodeRole.GTM_COORD), None)

    @property
    def coordinators(self) -> tuple[NodeAddress, ...]:
        return tuple(n for n in self.nodes if n.role is NodeRole.COORDINATOR)

    @property
    def datanodes(self) -> tuple[NodeAddress, ...]:
        return tuple(n for n in self.nodes if n.role is NodeRole.DATANODE)

    @property
    def catalog_holders(self) -> tuple[NodeAddress, ...]:
        """gc and every coordinator: the nodes whose `pgxc_node` must list the whole cluster."""
        return tuple(n for n in self.nodes if n.role is not NodeRole.DATANODE)

    def by_name(self, name: str) -> NodeAddress | None:
        return next((n for n in self.nodes if n.name == name), None)

    def names(self) -> list[str]:
        return [n.name for n in self.nodes]

    def to_list(self) -> list[dict]:
        return [n.to_dict() for n in self.nodes]

    @classmethod
    def from_list(cls, data: Iterable[dict]) -> "Topology":
        return cls.of(NodeAddress.from_dict(d) for d in data)


class TopologyError(ValueError):
    """Kubernetes does not (yet) describe a complete cluster: names every missing piece."""


class UnsafeTopologyError(TopologyError):
    """Kubernetes holds a name, host or port that must never reach SQL. Not transient: a refusal."""


def _service_port(service: dict) -> object:
    """The Service's postgres port as Kubernetes holds it (None when malformed; checked by the caller)."""
    ports = (service.get("spec") or {}).get("ports") or []
    if not isinstance(ports, list) or not all(isinstance(port, dict) for port in ports):
        return None
    named = [port for port in ports if port.get("name") == "postgres"]
    if named or ports:
        return (named or ports)[0].get("port")
    return 5432


def _checked_address(name: str, role: NodeRole, service: dict) -> NodeAddress:
    """The node's address, each part checked as node DDL will need it (InvalidName says which)."""
    field = f"Service {name} spec.clusterIP"
    host = require_host((service.get("spec") or {}).get("clusterIP"), field)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise InvalidName(f"{field}: {host[:80]!r} is not an IP address (a ClusterIP always is)") from None
    port = require_port(_service_port(service), f"Service {name} postgres port")
    return NodeAddress(name, role, host, port)


def topology_from_services(members: dict[str, NodeRole], services: Iterable[dict]) -> Topology:
    """Pair each member node with its Service's ClusterIP and postgres port.

    The Service, not the pod, is the address: a pod restart keeps the ClusterIP, so
    `pgxc_node` never has to change when a pod moves (ADR 0003). A garbage address is
    refused here, before any SQL, with the Service and field named.
    """
    by_name = {(s.get("metadata") or {}).get("name"): s for s in services if isinstance(s, dict)}
    nodes, missing, unsafe = [], [], []
    for name, role in members.items():
        service = by_name.get(name)
        cluster_ip = ((service or {}).get("spec") or {}).get("clusterIP")
        if service is None:
            missing.append(f"{name}: Service {name} not found")
        elif not cluster_ip or cluster_ip == "None":
            missing.append(f"{name}: Service {name} has no ClusterIP")
        else:
            try:
                nodes.append(_checked_address(name, role, service))
            except InvalidName as bad:
                unsafe.append(f"{name}: {bad}")
    if unsafe:
        raise UnsafeTopologyError("refusing Kubernetes addresses unsafe for node DDL: " + "; ".join(unsafe + missing))
    if missing:
        raise TopologyError("incomplete topology: " + "; ".join(missing))
    return Topology.of(nodes)


ROLE_LABEL = "antdb.io/role"


def role_from_pgcluster(pgcluster: dict) -> NodeRole | None:
    """A Pgcluster's AntDB role: the package's label, else the image name (gc-ha/cn-ha/db-ha)."""
    labels = (pgcluster.get("metadata") or {}).get("labels") or {}
    if labels.get(ROLE_LABEL) in {r.value for r in NodeRole}:
        return NodeRole(labels[ROLE_LABEL])
    image = ((pgcluster.get("spec") or {}).get("ccpimage") or "").lower()
    for marker, role in ((".gc", NodeRole.GTM_COORD), (".cn", NodeRole.COORDINATOR), (".db", NodeRole.DATANODE)):
        if marker in image:
            return role
    return None


def members_from_pgclusters(pgclusters: Iterable[dict]) -> dict[str, NodeRole]:
    """The cluster's members as Kubernetes holds them (the truth for day-2 operations).

    A member's name becomes a `pgxc_node` identifier, so a Pgcluster whose name is not a
    DNS-1123 label (Kubernetes admits dots and 253 characters in custom resource names) is
    refused here, before any SQL, rather than quoted into node DDL.
    """
    members, unsafe = {}, []
    for item in pgclusters:
        role = role_from_pgcluster(item)
        if role is None:
            continue
        name = (item.get("metadata") or {}).get("name")
        try:
            members[require_dns1123_label(name, "Pgcluster metadata.name")] = role
        except InvalidName as bad:
            unsafe.append(str(bad))
    if unsafe:
        raise UnsafeTopologyError("refusing Pgcluster names that are not valid AntDB node names: " + "; ".join(unsafe))
    return members
