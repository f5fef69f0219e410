"""Which Kubernetes objects make up one deployed AntDB cluster, and in what order they go.

Teardown is planned from a listing, never from the conf that deployed the cluster: the
conf may be lost or differ, while the labels that deploy_antdb and the operator put on
every object are still there. The plan is pure (no I/O), so a dry run shows exactly what
a real run deletes, and the rules that decide what is kept are unit-tested without a cluster.

What belongs to the cluster: every Pgcluster with an AntDB role; every object labelled
`pg-cluster=<node>` (Crunchy's Deployments, Services, Jobs, pods, PVCs, ConfigMaps and the
package's Secrets); Patroni's `<node>-config` / `<node>-leader` ConfigMaps (labelled
`crunchy-pgha-scope=<node>`); `pgo-custom-antdb-config`; the package's hostPath PVs. Data
(PVCs, PVs) and the namespace are kept unless `delete_data` is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from antdb_k8s.core.manifests import CUSTOM_CONFIG_NAME, MANAGED_BY
from antdb_k8s.core.names import DNS1123_LABEL_MAX, is_dns1123_label
from antdb_k8s.core.topology import CRUNCHY_API, role_from_pgcluster

Gvk = tuple[str, str]
PGCLUSTER: Gvk = (CRUNCHY_API, "Pgcluster")
PGTASK: Gvk = (CRUNCHY_API, "Pgtask")
DEPLOYMENT: Gvk = ("apps/v1", "Deployment")
JOB: Gvk = ("batch/v1", "Job")
POD: Gvk = ("v1", "Pod")
SERVICE: Gvk = ("v1", "Service")
CONFIGMAP: Gvk = ("v1", "ConfigMap")
PVC: Gvk = ("v1", "PersistentVolumeClaim")
SECRET: Gvk = ("v1", "Secret")
PV: Gvk = ("v1", "PersistentVolume")
NAMESPACE: Gvk = ("v1", "Namespace")

# Deletion order. Pgclusters first, so no controller rebuilds what follows; workloads before
# the Services, ConfigMaps and claims their pods use; Secrets last among the namespaced
# kinds because they carry the package's label, which is how a retried teardown still
# recognises what is left of the cluster.
NAMESPACED_KINDS: tuple[Gvk, ...] = (PGCLUSTER, PGTASK, DEPLOYMENT, JOB, POD, SERVICE, CONFIGMAP, PVC, SECRET)
DATA_KINDS = frozenset({PVC, PV})
MANAGED_BY_KEY, MANAGED_BY_VALUE = next(iter(MANAGED_BY.items()))
PV_NAMESPACE_LABEL = "antdb.io/namespace"
# Objects every namespace has that say nothing about who else uses it.
_NAMESPACE_DEFAULTS = {CONFIGMAP: {"kube-root-ca.crt"}}
_MAX_FOREIGN_SHOWN = 10


class ConfirmationError(ValueError):
    """The teardown was not confirmed; the message says exactly what to type."""


def check_confirmation(namespace: object, confirm_namespace: object, dry_run: bool) -> str:
    """The namespace to tear down, once the confirmation matches it; ConfirmationError if not.

    A dry run changes nothing, so it needs no confirmation; a mismatch is still reported
    by the caller so the user learns before the real run.
    """
    if not isinstance(namespace, str) or not is_dns1123_label(namespace):
        raise ConfirmationError(f"namespace {namespace!r} is not a Kubernetes namespace name "
                                f"(DNS-1123 label, at most {DNS1123_LABEL_MAX} characters)")
    if dry_run:
        return namespace
    if not confirm_namespace:
        raise ConfirmationError(f"refusing to tear down namespace {namespace}: confirm_namespace is empty; "
                                f"type the namespace again ({namespace}) to confirm")
    if confirm_namespace != namespace:
        raise ConfirmationError(f"refusing to tear down namespace {namespace}: confirm_namespace is "
                                f"{confirm_namespace!r}, which does not match; type {namespace} exactly to confirm")
    return namespace


@dataclass(frozen=True)
class ObjectRef:
    """One object of the plan: what it is, which node it belongs to, and why it goes or stays."""

    api_version: str
    kind: str
    name: str
    namespace: str | None
    node: str
    reason: str

    @property
    def gvk(self) -> Gvk:
        return (self.api_version, self.kind)

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.name}"

    def to_dict(self) -> dict:
        return {"api_version": self.api_version, "kind": self.kind, "name": self.name,
                "namespace": self.namespace, "node": self.node, "reason": self.reason}

    @classmethod
    def from_dict(cls, data: Mapping) -> "ObjectRef":
        return cls(str(data["api_version"]), str(data["kind"]), str(data["name"]), data.get("namespace"),
                   str(data.get("node") or ""), str(data.get("reason") or ""))


@dataclass(frozen=True)
class Inventory:
    """Everything listed in (and for) one namespace: the planner's only input."""

    namespace: str
    namespace_object: Mapping | None
    objects: Mapping[Gvk, Sequence[Mapping]]
    volumes: Sequence[Mapping] = ()

    def of(self, gvk: Gvk) -> Sequence[Mapping]:
        return self.objects.get(gvk) or ()


@dataclass(frozen=True)
class TeardownPlan:
    """Objects to delete (in order) and objects kept, with the nodes they belong to."""

    namespace: str
    nodes: tuple[str, ...]
    delete: tuple[ObjectRef, ...]
    keep: tuple[ObjectRef, ...]
    delete_data: bool
    notes: tuple[str, ...] = field(default=())

    @property
    def has_cluster(self) -> bool:
        return bool(self.nodes)

    def phases(self) -> tuple[tuple[ObjectRef, ...], tuple[ObjectRef, ...]]:
        """(everything that runs or configures a node, then data/credentials/namespace).

        The caller waits for the nodes' pods to be gone between the two, so no data
        volume is released while a database still has it open.
        """
        first = tuple(r for r in self.delete
                      if r.gvk in (PGCLUSTER, PGTASK, DEPLOYMENT, JOB, POD, SERVICE, CONFIGMAP))
        return first, tuple(r for r in self.delete if r not in first)

    def to_dict(self) -> dict:
        return {"namespace": self.namespace, "nodes": list(self.nodes), "delete_data": self.delete_data,
                "delete": [r.to_dict() for r in self.delete], "keep": [r.to_dict() for r in self.keep],
                "notes": list(self.notes)}

    @classmethod
    def from_dict(cls, data: Mapping) -> "TeardownPlan":
        return cls(str(data["namespace"]), tuple(data.get("nodes") or ()),
                   tuple(ObjectRef.from_dict(r) for r in data.get("delete") or ()),
                   tuple(ObjectRef.from_dict(r) for r in data.get("keep") or ()),
                   bool(data.get("delete_data")), tuple(data.get("notes") or ()))


def _meta(obj: Mapping) -> Mapping:
    return obj.get("metadata") or {}


def _labels(obj: Mapping) -> Mapping[str, str]:
    return _meta(obj).get("labels") or {}


def _name(obj: Mapping) -> str:
    return str(_meta(obj).get("name") or "")


def _managed(obj: Mapping | None) -> bool:
    return bool(obj) and _labels(obj).get(MANAGED_BY_KEY) == MANAGED_BY_VALUE


def cluster_nodes(inventory: Inventory) -> tuple[str, ...]:
    """The AntDB node names that still have anything in the namespace.

    AntDB Pgclusters name them; so do the package's own objects (Secrets, PVs), which
    matters when a teardown is retried after the Pgclusters are already gone; and, in a
    namespace the package created, so do the claims an earlier teardown kept.
    """
    names = {_name(p) for p in inventory.of(PGCLUSTER) if role_from_pgcluster(p) is not None}
    for gvk in NAMESPACED_KINDS:
        names |= {_labels(o).get("pg-cluster", "") for o in inventory.of(gvk) if _managed(o)}
    names |= {_labels(v).get("pg-cluster", "") for v in inventory.volumes}
    if _managed(inventory.namespace_object):
        names |= {_labels(c).get("pg-cluster", "") for c in inventory.of(PVC)
                  if _labels(c).get("vendor") == "crunchydata"}
    return tuple(sorted(n for n in names if is_dns1123_label(n)))


def _owner_node(gvk: Gvk, obj: Mapping, nodes: frozenset[str]) -> str | None:
    """The node `obj` belongs to ('' for cluster-wide objects), or None if it is not the cluster's."""
    labels = _labels(obj)
    if gvk == PGCLUSTER:
        return _name(obj) if role_from_pgcluster(obj) is not None else None
    if labels.get("pg-cluster") in nodes:
        return labels["pg-cluster"]
    if gvk == CONFIGMAP and labels.get("crunchy-pgha-scope") in nodes:
        return labels["crunchy-pgha-scope"]
    if gvk == CONFIGMAP and _name(obj) == CUSTOM_CONFIG_NAME:
        return ""
    return None


def _why_delete(gvk: Gvk) -> str:
    return {PGCLUSTER: "AntDB node definition", PGTASK: "operator task (clone)", DEPLOYMENT: "runs the node",
            JOB: "pgBackRest job",
            POD: "node pod", SERVICE: "node address", CONFIGMAP: "node configuration",
            SECRET: "node credentials", PVC: "node data (delete_data)", PV: "hostPath volume (delete_data)"}[gvk]


def _ref(gvk: Gvk, obj: Mapping, namespace: str | None, node: str, reason: str) -> ObjectRef:
    return ObjectRef(gvk[0], gvk[1], _name(obj), namespace, node, reason)


def _is_namespace_default(gvk: Gvk, obj: Mapping) -> bool:
    if _name(obj) in _NAMESPACE_DEFAULTS.get(gvk, set()):
        return True
    return gvk == SECRET and obj.get("type") == "kubernetes.io/service-account-token"


def _classify(inventory: Inventory, nodes: frozenset[str], delete_data: bool):
    """(delete, keep, foreign) over the namespaced objects, delete in NAMESPACED_KINDS order."""
    delete: list[ObjectRef] = []
    keep: list[ObjectRef] = []
    foreign: list[str] = []
    for gvk in NAMESPACED_KINDS:
        for obj in sorted(inventory.of(gvk), key=_name):
            node = _owner_node(gvk, obj, nodes)
            if node is None:
                if not _is_namespace_default(gvk, obj):
                    foreign.append(f"{gvk[1]}/{_name(obj)}")
            elif gvk in DATA_KINDS and not delete_data:
                keep.append(_ref(gvk, obj, inventory.namespace, node, "data kept (delete_data is false)"))
            else:
                delete.append(_ref(gvk, obj, inventory.namespace, node, _why_delete(gvk)))
    return delete, keep, foreign


def _volumes(inventory: Inventory, delete_data: bool) -> tuple[list[ObjectRef], list[ObjectRef], list[str]]:
    """The package's hostPath PVs for this namespace: deleted only with delete_data."""
    refs = [_ref(PV, v, None, _labels(v).get("pg-cluster", ""),
                 _why_delete(PV) if delete_data else "data kept (delete_data is false)")
            for v in sorted(inventory.volumes, key=_name)]
    notes = []
    if delete_data and refs:
        notes.append("hostPath PVs use reclaimPolicy Retain: deleting them does not empty their directories "
                     "on the hosts; remove those by hand if the disk space is needed")
    return (refs, [], notes) if delete_data else ([], refs, notes)


def _namespace_decision(inventory: Inventory, delete_data: bool, foreign: list[str]) -> tuple[ObjectRef | None, str]:
    """Delete the namespace only with delete_data, only if the package made it, only if nothing else lives there."""
    ns = inventory.namespace_object
    ref = ObjectRef(NAMESPACE[0], NAMESPACE[1], inventory.namespace, None, "", "")
    if not delete_data:
        return None, "namespace kept (delete_data is false)"
    if not _managed(ns):
        return None, (f"namespace kept: it is not labelled {MANAGED_BY_KEY}={MANAGED_BY_VALUE} "
                      "(the package did not create it)")
    if foreign:
        shown = ", ".join(foreign[:_MAX_FOREIGN_SHOWN]) + (" ..." if len(foreign) > _MAX_FOREIGN_SHOWN else "")
        return None, f"namespace kept: it also holds objects that are not part of the AntDB cluster ({shown})"
    return ObjectRef(ref.api_version, ref.kind, ref.name, None, "", "created by the package (delete_data)"), ""


def plan_teardown(inventory: Inventory, *, delete_data: bool) -> TeardownPlan:
    """Pure: the ordered deletions and the kept objects for one namespace's AntDB cluster.

    An empty `nodes` means the namespace holds no AntDB cluster: callers refuse.
    """
    nodes = cluster_nodes(inventory)
    if not nodes:
        return TeardownPlan(inventory.namespace, (), (), (), delete_data)
    delete, keep, foreign = _classify(inventory, frozenset(nodes), delete_data)
    volumes_delete, volumes_keep, notes = _volumes(inventory, delete_data)
    secrets = [r for r in delete if r.gvk == SECRET]
    ordered = [r for r in delete if r.gvk != SECRET] + volumes_delete + secrets
    namespace_ref, why_kept = _namespace_decision(inventory, delete_data, foreign)
    if namespace_ref is not None:
        ordered.append(namespace_ref)
    elif inventory.namespace_object is not None:
        keep.append(ObjectRef(NAMESPACE[0], NAMESPACE[1], inventory.namespace, None, "", why_kept))
    return TeardownPlan(inventory.namespace, nodes, tuple(ordered), tuple(keep + volumes_keep), delete_data,
                        tuple(notes))


def render_table(plan: TeardownPlan, results: Mapping[str, str] | None = None) -> str:
    """A fixed-width table for the task log: ACTION, KIND, NAME, NODE, and why.

    `results` maps `ObjectRef.key` to what happened ('deleted', 'already gone'); without it
    the table is the plan itself (a dry run: ACTION 'delete').
    """
    def action(ref: ObjectRef) -> str:
        if results is None:
            return "delete"
        return {"deleted": "deleted", "already gone": "gone"}.get(results.get(ref.key, ""), "not done")

    rows = [(action(r), r, r.reason) for r in plan.delete] + [("kept", r, r.reason) for r in plan.keep]
    head = f"{'ACTION':<8} {'KIND':<22} {'NAME':<42} {'NODE':<6} DETAIL"
    lines = [f"teardown of namespace {plan.namespace} (nodes: {', '.join(plan.nodes) or '-'})", head,
             "-" * len(head)]
    for verb, ref, detail in rows:
        lines.append(f"{verb:<8} {ref.kind:<22} {ref.name:<42} {ref.node or '-':<6} {detail}".rstrip())
    lines.append("-" * len(head))
    if results is None:
        lines.append(f"{len(plan.delete)} to delete, {len(plan.keep)} kept")
    else:
        gone = sum(1 for r in plan.delete if results.get(r.key) == "already gone")
        lines.append(f"{len(plan.delete) - gone} deleted, {gone} already gone, {len(plan.keep)} kept")
    lines.extend(f"note: {n}" for n in plan.notes)
    return "\n".join(lines)


def remaining(plan: TeardownPlan, inventory: Inventory, kinds: Iterable[Gvk]) -> list[str]:
    """Planned deletions of `kinds` still present in a fresh listing (for the final check)."""
    wanted = {(r.gvk, r.name) for r in plan.delete if r.gvk in set(kinds)}
    present = {(gvk, _name(o)) for gvk in NAMESPACED_KINDS for o in inventory.of(gvk)}
    present |= {(PV, _name(v)) for v in inventory.volumes}
    return sorted(f"{gvk[1]}/{name}" for gvk, name in wanted & present)
