"""Coordinator scaling decisions (core.scale): what is added or removed, what is refused, the
clone request the operator receives, the removal list, and the catalog parity check."""

from __future__ import annotations

import jsonschema
import pytest
import yaml

from antdb_k8s.core.manifests import include_path
from antdb_k8s.core.params import SCALE_PARAM_DEFAULTS as PARAM_DEFAULTS
from antdb_k8s.core.params import SCALE_PARAMS as PARAM_SCHEMAS
from antdb_k8s.core.scale import (
    CLONE_STEP1,
    DEFAULT_TIMEOUTS,
    ScalePlan,
    ScaleRefused,
    catalog_differences,
    clone_progress,
    clone_request,
    plan_scale,
    removal_steps,
    target_topology,
    timeouts_from,
)
from antdb_k8s.core.topology import NodeAddress, NodeRole, Topology
from sandbox.kubeapi.validation import to_jsonschema

GC, CN, DN = NodeRole.GTM_COORD, NodeRole.COORDINATOR, NodeRole.DATANODE


def members(coordinators=("cn1", "cn2"), datanodes=("dn1", "dn2")) -> dict[str, NodeRole]:
    return {"gc": GC, **{c: CN for c in coordinators}, **{d: DN for d in datanodes}}


# ------------------------------------------------------------------ planning

def test_scale_out_adds_the_next_names_and_clones_from_cn1():
    plan = plan_scale("pgouser1", members(), 4)
    assert plan.action == "scale-out"
    assert plan.add == ("cn3", "cn4") and plan.remove == ()
    assert plan.source == "cn1"
    assert plan.target == ("cn1", "cn2", "cn3", "cn4")
    assert plan.datanodes == 2
    assert "clone cn3, cn4 from cn1" in plan.summary()


def test_scale_out_fills_a_gap_before_appending():
    plan = plan_scale("ns", members(("cn1", "cn3")), 3)
    assert plan.add == ("cn2",)
    assert plan.target == ("cn1", "cn2", "cn3")


def test_scale_out_without_cn1_clones_from_the_lowest_numbered_coordinator():
    plan = plan_scale("ns", members(("cn4", "cn2")), 3)
    assert plan.source == "cn2"
    assert plan.add == ("cn1",)


def test_scale_in_removes_the_highest_numbered_in_numeric_order():
    plan = plan_scale("ns", members(("cn1", "cn2", "cn10", "cn3")), 2, delete_data=True)
    assert plan.action == "scale-in"
    assert plan.remove == ("cn3", "cn10")
    assert plan.target == ("cn1", "cn2")
    assert plan.source is None and plan.add == ()
    assert plan.delete_data is True
    assert "their PVCs are deleted" in plan.summary()


def test_target_already_reached_plans_nothing():
    plan = plan_scale("ns", members(), 2, datanodes=2)
    assert plan.action == "none" and plan.add == () and plan.remove == ()
    assert "nothing to change" in plan.summary()


def test_plan_survives_xcom_round_trip():
    plan = plan_scale("ns", members(), 3)
    data = plan.to_dict()
    assert data["action"] == "scale-out"
    assert ScalePlan.from_dict(data) == plan


@pytest.mark.parametrize("count", [0, -1])
def test_fewer_than_one_coordinator_is_refused_with_the_reason(count):
    with pytest.raises(ScaleRefused, match=rf"coordinators must be at least 1, got {count}"):
        plan_scale("ns", members(), count)


@pytest.mark.parametrize("count", [True, "2", 2.0, None])
def test_a_count_that_is_not_a_whole_number_is_refused(count):
    with pytest.raises(ScaleRefused, match="coordinators must be a whole number"):
        plan_scale("ns", members(), count)


def test_more_than_the_supported_maximum_is_refused():
    with pytest.raises(ScaleRefused, match="at most 16"):
        plan_scale("ns", members(), 17)


@pytest.mark.parametrize("datanodes", [1, 3])
def test_any_datanode_change_is_refused_naming_antdb5(datanodes):
    with pytest.raises(ScaleRefused) as err:
        plan_scale("ns", members(), 2, datanodes=datanodes)
    message = str(err.value)
    assert "AntDB 5 does not support datanode scaling here" in message
    assert f"{datanodes} requested but the cluster has 2 (dn1, dn2)" in message


def test_datanode_refusal_comes_before_any_coordinator_change():
    with pytest.raises(ScaleRefused, match="datanode scaling"):
        plan_scale("ns", members(), 3, datanodes=5)


def test_a_namespace_without_gc_or_coordinators_is_refused():
    with pytest.raises(ScaleRefused, match="no gc Pgcluster"):
        plan_scale("ns", {"cn1": CN, "dn1": DN}, 2)
    with pytest.raises(ScaleRefused, match="no coordinator to clone"):
        plan_scale("ns", {"gc": GC, "dn1": DN}, 2)


def test_bad_namespace_is_refused():
    with pytest.raises(ValueError, match="DNS-1123"):
        plan_scale("Bad_NS", members(), 2)


def test_target_topology_leaves_departing_coordinators_out():
    topology = Topology.of([NodeAddress("gc", GC, "127.0.9.1"), NodeAddress("cn1", CN, "127.0.9.2"),
                            NodeAddress("cn2", CN, "127.0.9.3"), NodeAddress("dn1", DN, "127.0.9.4")])
    assert target_topology(topology, ["cn2"]).names() == ["gc", "cn1", "dn1"]


# ------------------------------------------------------------------ the clone request

@pytest.fixture(scope="module")
def pgtask_schema():
    with include_path("crd", "pgtasks.crunchydata.com.yaml").open(encoding="utf-8") as handle:
        crd = yaml.safe_load(handle)
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    (version,) = crd["spec"]["versions"]
    # No status subresource, as upstream's deploy/crd.yaml: the operator completes a Pgtask by
    # patching the main resource.
    assert version["served"] and version["storage"] and "subresources" not in version
    return jsonschema.Draft4Validator(to_jsonschema(version["schema"]["openAPIV3Schema"], root=True))


def test_clone_request_is_what_pgo_clone_creates(pgtask_schema):
    workflow, step1 = clone_request("pgouser1", "cn1", "cn3", suffix="ab12", workflow_id="wf-1",
                                    timestamp="2026-01-01T00:00:00Z")
    assert step1["metadata"]["name"] == "clone-step1-cn3-ab12"
    assert step1["metadata"]["labels"] == {"pg-cluster": "cn3", "pgouser": "antdb-airflow", "pgo-clone": "true",
                                           "pgo-clone-step-1": "true"}
    assert step1["spec"]["tasktype"] == CLONE_STEP1
    assert step1["spec"]["parameters"] == {
        "sourceClusterName": "cn1", "targetClusterName": "cn3", "taskName": "clone-step1-cn3-ab12",
        "timestamp": "2026-01-01T00:00:00Z", "workflowid": "wf-1", "backrestStorageType": ""}
    assert workflow["metadata"]["name"] == "cn3-ab12-cloneworkflow"
    assert workflow["spec"]["tasktype"] == "workflow"
    assert workflow["metadata"]["labels"]["workflowid"] == "wf-1"
    for task in (workflow, step1):
        assert list(pgtask_schema.iter_errors(task)) == []


def test_pgtask_crd_rejects_unknown_fields(pgtask_schema):
    _, step1 = clone_request("ns", "cn1", "cn2", suffix="x", workflow_id="w", timestamp="t")
    step1["spec"]["tasktyp"] = "typo"
    assert [e.message for e in pgtask_schema.iter_errors(step1)]


def test_clone_request_refuses_unsafe_names():
    with pytest.raises(ValueError, match="clone target"):
        clone_request("ns", "cn1", "CN3;drop", suffix="x", workflow_id="w", timestamp="t")


def test_operator_install_manifests_include_every_crd_the_operator_watches():
    from antdb_k8s.core.spec import parse_spec
    from antdb_k8s.operators.platform import EnsurePgoOperator

    names = [m["metadata"]["name"] for m in EnsurePgoOperator.manifests(parse_spec({}))
             if m["kind"] == "CustomResourceDefinition"]
    assert names == [f"{p}.crunchydata.com" for p in ("pgclusters", "pgtasks", "pgpolicies", "pgreplicas",
                                                       "pgbackups")]


def _task(target, tasktype, status="", workflow="wf"):
    return {"metadata": {"name": f"{tasktype}-{target}", "labels": {"pg-cluster": target, "pgo-clone": "true"}},
            "spec": {"tasktype": tasktype, "status": status, "parameters": {"workflowid": workflow}}}


def _job(name, target, step_label, condition=None, workflow="wf"):
    status = {"conditions": [{"type": condition, "status": "True"}]} if condition else {}
    return {"metadata": {"name": name, "labels": {"pg-cluster": target, step_label: "true", "workflowid": workflow}},
            "status": status}


def test_clone_progress_is_ongoing_until_tasks_complete_and_jobs_finish():
    assert clone_progress("cn3", [], []).ongoing is False
    assert clone_progress("cn3", [_task("cn3", "clone-step1")], []).ongoing is True
    done = [_task("cn3", "clone-step1", "completed")]
    assert clone_progress("cn3", done, [_job("sync", "cn3", "pgo-clone-step-1")]).ongoing is True
    finished = clone_progress("cn3", done, [_job("sync", "cn3", "pgo-clone-step-1", "Complete")])
    assert finished.ongoing is False and finished.steps_done == ("clone-step1",)
    other = clone_progress("cn3", [_task("cn4", "clone-step1")], [_job("x", "cn4", "pgo-clone-step-2")])
    assert other.ongoing is False


def test_clone_progress_counts_failed_jobs_of_the_given_attempt_only():
    jobs = [_job("restore-old", "cn3", "pgo-clone-step-2", "Failed", workflow="old"),
            _job("restore-new", "cn3", "pgo-clone-step-2", "Failed", workflow="new")]
    assert clone_progress("cn3", [], jobs, "new").failed_jobs == ("restore-new",)
    assert clone_progress("cn3", [], jobs).failed_jobs == ("restore-new", "restore-old")
    assert "failed Jobs: restore-new" in clone_progress("cn3", [], jobs, "new").describe()


# ------------------------------------------------------------------ removal and parity

def test_removal_deletes_the_pgcluster_first_and_keeps_data_by_default():
    steps = removal_steps("pgouser1", "cn3")
    assert (steps[0].kind, steps[0].name) == ("Pgcluster", "cn3")
    kinds = [s.kind for s in steps]
    assert kinds.index("Deployment") < kinds.index("Pod")
    assert {"Pgtask", "Deployment", "Job", "Service", "Pod", "ConfigMap", "Secret"} <= set(kinds)
    assert "PersistentVolumeClaim" not in kinds and "PersistentVolume" not in kinds
    assert all(s.selector in ("pg-cluster=cn3", "crunchy-pgha-scope=cn3") for s in steps[1:])


def test_removal_with_delete_data_ends_with_the_volumes():
    steps = removal_steps("pgouser1", "cn3", delete_data=True)
    assert [s.kind for s in steps[-2:]] == ["PersistentVolumeClaim", "PersistentVolume"]
    assert steps[-1].selector == "pg-cluster=cn3,antdb.io/namespace=pgouser1"
    assert steps[-1].describe() == "PersistentVolumes with pg-cluster=cn3,antdb.io/namespace=pgouser1"


@pytest.mark.parametrize("name", ["gc", "dn1", "cn0"])
def test_removal_is_only_for_coordinators(name):
    with pytest.raises(ValueError, match="not a coordinator name"):
        removal_steps("ns", name)


def test_catalog_differences_names_missing_and_extra_relations():
    assert catalog_differences("cn1", ["public.t"], "cn3", ["public.t"]) == []
    problems = catalog_differences("cn1", ["public.t", "public.u"], "cn3", ["public.t", "public.old"])
    assert problems == ["cn3 lacks public.u which cn1 has (DDL ran while it was cloned)",
                        "cn3 has public.old which cn1 no longer has (dropped while it was cloned)"]


# ------------------------------------------------------------------ params

def test_param_defaults_satisfy_their_schemas_and_document_themselves():
    assert set(PARAM_SCHEMAS) == set(PARAM_DEFAULTS)
    for key, schema in PARAM_SCHEMAS.items():
        assert schema["section"] and schema["title"] and schema["description"], key
        jsonschema.validate(PARAM_DEFAULTS[key], {k: v for k, v in schema.items()
                                                  if k not in ("section", "title", "description")})
    assert "minimum" not in PARAM_SCHEMAS["coordinators"], "0 must reach the plan task, which explains the refusal"
    assert "AntDB 5 does not support datanode scaling" in PARAM_SCHEMAS["datanodes"]["description"]


def test_timeouts_fill_in_defaults():
    assert timeouts_from({}) == DEFAULT_TIMEOUTS
    assert timeouts_from({"timeouts": {"clone_ready": 60}})["clone_ready"] == 60
    assert timeouts_from({"timeouts": {"clone_ready": 60}})["poke_interval"] == DEFAULT_TIMEOUTS["poke_interval"]
