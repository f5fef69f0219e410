"""Teardown planning: the confirmation, which objects are the cluster's, what is kept, and the order."""

from __future__ import annotations

import json
import re

import pytest

from antdb_k8s.core.manifests import MANAGED_BY
from antdb_k8s.core.teardown import (
    CONFIGMAP,
    DEPLOYMENT,
    JOB,
    PGCLUSTER,
    POD,
    PVC,
    SECRET,
    SERVICE,
    ConfirmationError,
    Inventory,
    TeardownPlan,
    check_confirmation,
    cluster_nodes,
    plan_teardown,
    remaining,
    render_table,
)

NS = "pgouser1"
NODES = ("gc", "cn1", "dn1")
ROLES = {"gc": "gtm_coord", "cn1": "coordinator", "dn1": "datanode"}


def obj(name: str, labels: dict | None = None, **extra) -> dict:
    return {"metadata": {"name": name, "namespace": NS, "labels": dict(labels or {})}, **extra}


def crunchy(node: str, **more) -> dict:
    return {"vendor": "crunchydata", "pg-cluster": node, **more}


def deployed(nodes=NODES, *, managed_namespace: bool = True) -> dict:
    """What deploy_antdb and the operator leave in a namespace, per kind."""
    objects: dict = {k: [] for k in (PGCLUSTER, DEPLOYMENT, JOB, POD, SERVICE, CONFIGMAP, PVC, SECRET)}
    for n in nodes:
        objects[PGCLUSTER].append(obj(n, {"antdb.io/role": ROLES[n], "pg-cluster": n, **MANAGED_BY}))
        repo = crunchy(n, **{"pgo-backrest-repo": "true"})
        objects[DEPLOYMENT] += [obj(n, crunchy(n)), obj(f"{n}-backrest-shared-repo", repo)]
        objects[JOB] += [obj(f"{n}-stanza-create", crunchy(n)), obj(f"backrest-backup-{n}", crunchy(n))]
        objects[POD] += [obj(f"{n}-abc-xyz", crunchy(n, **{"pgo-pg-database": "true"})),
                         obj(f"{n}-stanza-create-q", crunchy(n))]
        objects[SERVICE] += [obj(n, crunchy(n)), obj(f"{n}-replica", crunchy(n))]
        objects[CONFIGMAP] += [obj(f"{n}-pgha-default-config", crunchy(n)),
                               obj(f"{n}-config", {"vendor": "crunchydata", "crunchy-pgha-scope": n}),
                               obj(f"{n}-leader", {"vendor": "crunchydata", "crunchy-pgha-scope": n})]
        objects[PVC] += [obj(n, crunchy(n)), obj(f"{n}-pgbr-repo", crunchy(n))]
        objects[SECRET] += [obj(f"{n}-{u}-secret", crunchy(n, **MANAGED_BY), type="Opaque")
                            for u in ("postgres", "antdb")]
    objects[CONFIGMAP].append(obj("pgo-custom-antdb-config", {"vendor": "crunchydata", **MANAGED_BY}))
    objects[CONFIGMAP].append(obj("kube-root-ca.crt"))
    pv_labels = {"pg-cluster": "dn1", "antdb.io/namespace": NS, **MANAGED_BY}
    volumes = [{"metadata": {"name": f"antdb-{NS}-dn1", "labels": pv_labels}}]
    ns_labels = {"vendor": "crunchydata", **(MANAGED_BY if managed_namespace else {})}
    namespace = {"metadata": {"name": NS, "labels": ns_labels}}
    return {"objects": objects, "volumes": volumes, "namespace": namespace}


def inventory(state: dict) -> Inventory:
    return Inventory(NS, state["namespace"], state["objects"], state["volumes"])


def keys(refs) -> list[str]:
    return [r.key for r in refs]


# --- confirmation ------------------------------------------------------------------------

def test_matching_confirmation_is_accepted():
    assert check_confirmation(NS, NS, False) == NS


@pytest.mark.parametrize("confirm", [None, "", "pgouser2", "PGOUSER1", " pgouser1"])
def test_anything_but_the_exact_namespace_is_refused_naming_what_to_type(confirm):
    with pytest.raises(ConfirmationError, match=f"refusing to tear down namespace {NS}.*{NS}"):
        check_confirmation(NS, confirm, False)


def test_a_dry_run_needs_no_confirmation_but_a_valid_namespace():
    assert check_confirmation(NS, "", True) == NS
    with pytest.raises(ConfirmationError, match="not a Kubernetes namespace name"):
        check_confirmation("Bad_NS", "Bad_NS", True)


# --- what belongs to the cluster -----------------------------------------------------------

def test_a_deployed_cluster_is_deleted_in_order_and_its_data_kept():
    plan = plan_teardown(inventory(deployed()), delete_data=False)
    assert plan.nodes == ("cn1", "dn1", "gc")
    kinds = [r.kind for r in plan.delete]
    order = ["Pgcluster", "Deployment", "Job", "Pod", "Service", "ConfigMap", "Secret"]
    assert kinds == sorted(kinds, key=order.index)
    assert {"ConfigMap/gc-config", "ConfigMap/gc-leader", "ConfigMap/pgo-custom-antdb-config",
            "Job/backrest-backup-dn1", "Deployment/cn1-backrest-shared-repo",
            "Secret/dn1-antdb-secret"} <= set(keys(plan.delete))
    assert "ConfigMap/kube-root-ca.crt" not in keys(plan.delete)
    assert sorted(keys(plan.keep)) == sorted([f"PersistentVolumeClaim/{n}" for n in NODES]
                                             + [f"PersistentVolumeClaim/{n}-pgbr-repo" for n in NODES]
                                             + [f"PersistentVolume/antdb-{NS}-dn1", f"Namespace/{NS}"])
    assert all("delete_data is false" in r.reason for r in plan.keep)


def test_delete_data_adds_claims_volumes_and_the_namespace_last():
    plan = plan_teardown(inventory(deployed()), delete_data=True)
    order = keys(plan.delete)
    assert plan.keep == ()
    assert order[-1] == f"Namespace/{NS}"
    assert order.index("PersistentVolumeClaim/dn1") < order.index(f"PersistentVolume/antdb-{NS}-dn1") \
        < order.index("Secret/dn1-postgres-secret")
    first, second = plan.phases()
    assert {r.kind for r in first} == {"Pgcluster", "Deployment", "Job", "Pod", "Service", "ConfigMap"}
    assert {r.kind for r in second} == {"PersistentVolumeClaim", "PersistentVolume", "Secret", "Namespace"}
    assert any("hostPath" in note for note in plan.notes)


def test_objects_of_others_are_untouched_and_keep_the_namespace():
    state = deployed()
    state["objects"][PGCLUSTER].append(obj("hippo", {"pg-cluster": "hippo"}, spec={"ccpimage": "crunchy-postgres-ha"}))
    state["objects"][SERVICE].append(obj("hippo", crunchy("hippo")))
    state["objects"][CONFIGMAP].append(obj("my-app-settings"))
    plan = plan_teardown(inventory(state), delete_data=True)
    others = {"Pgcluster/hippo", "Service/hippo", "ConfigMap/my-app-settings"}
    assert not others & set(keys(plan.delete) + keys(plan.keep))
    namespace = next(r for r in plan.keep if r.kind == "Namespace")
    assert "Pgcluster/hippo" in namespace.reason and "ConfigMap/my-app-settings" in namespace.reason


def test_a_namespace_the_package_did_not_create_is_never_deleted():
    plan = plan_teardown(inventory(deployed(managed_namespace=False)), delete_data=True)
    assert f"Namespace/{NS}" not in keys(plan.delete)
    namespace = next(r for r in plan.keep if r.kind == "Namespace")
    assert "not labelled app.kubernetes.io/managed-by=antdb-airflow" in namespace.reason


def test_no_antdb_objects_means_no_cluster():
    state = deployed()
    state["objects"] = {PVC: [obj("other", crunchy("other"))], SERVICE: [obj("web")]}
    state["volumes"] = []
    state["namespace"]["metadata"]["labels"] = {}
    plan = plan_teardown(inventory(state), delete_data=True)
    assert not plan.has_cluster and plan.delete == () and plan.keep == ()


def test_a_retry_after_the_pgclusters_are_gone_still_finds_the_rest():
    state = deployed()
    for kind in (PGCLUSTER, DEPLOYMENT, JOB, POD):
        state["objects"][kind] = []
    plan = plan_teardown(inventory(state), delete_data=False)
    assert plan.nodes == ("cn1", "dn1", "gc")
    assert "Service/gc" in keys(plan.delete) and "Secret/gc-postgres-secret" in keys(plan.delete)


def test_data_kept_by_an_earlier_teardown_can_be_deleted_later():
    state = deployed()
    state["objects"] = {PVC: state["objects"][PVC]}
    kept = plan_teardown(inventory(state), delete_data=False)
    assert kept.has_cluster and kept.delete == ()
    deleted = plan_teardown(inventory(state), delete_data=True)
    assert sorted(k.split("/")[0] for k in keys(deleted.delete)) == \
        ["Namespace", "PersistentVolume"] + ["PersistentVolumeClaim"] * 6


def test_claims_alone_in_a_namespace_the_package_did_not_create_are_not_claimed():
    state = deployed(managed_namespace=False)
    state["objects"], state["volumes"] = {PVC: state["objects"][PVC]}, []
    assert cluster_nodes(inventory(state)) == ()


# --- reporting -----------------------------------------------------------------------------

def test_table_lists_every_deletion_and_kept_object_and_results():
    plan = plan_teardown(inventory(deployed()), delete_data=False)
    table = render_table(plan)
    assert "Pgcluster" in table and "kept" in table and f"{len(plan.delete)} to delete, {len(plan.keep)} kept" in table
    results = {r.key: "deleted" for r in plan.delete} | {"Pgcluster/gc": "already gone"}
    done = render_table(plan, results)
    assert re.search(r"^gone +Pgcluster +gc ", done, re.MULTILINE)
    assert re.search(r"^deleted +Pgcluster +cn1 ", done, re.MULTILINE)
    assert f"{len(plan.delete) - 1} deleted, 1 already gone, {len(plan.keep)} kept" in done


def test_plan_round_trips_through_json_and_names_leftovers():
    plan = plan_teardown(inventory(deployed()), delete_data=True)
    assert TeardownPlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan
    assert remaining(plan, inventory(deployed()), [SERVICE]) == sorted(
        f"Service/{n}" for n in ("cn1", "cn1-replica", "dn1", "dn1-replica", "gc", "gc-replica"))
