"""parse_spec: the runbook's defaults, and every bad conf refused with the field named."""

from __future__ import annotations

import copy
import dataclasses

import pytest

from antdb_k8s.core.spec import (
    DEFAULTS,
    MAX_COORDINATORS,
    MAX_DATANODES,
    RoleStorage,
    SpecError,
    parse_spec,
    role_from_node_name,
)
from antdb_k8s.core.topology import NodeRole


def problems_of(conf: dict) -> list[str]:
    with pytest.raises(SpecError) as err:
        parse_spec(conf)
    return err.value.problems


def assert_field_refused(conf: dict, field: str) -> list[str]:
    """The conf is refused and one problem is about exactly `field` (`field: ...`)."""
    problems = problems_of(conf)
    assert any(p.startswith(f"{field}:") for p in problems), problems
    return problems


# --- defaults (runbook 2.10, 2.11) -------------------------------------------------------


def test_defaults_are_the_runbooks():
    spec = parse_spec(None)
    assert spec.namespace == "pgouser1"
    assert (spec.coordinators, spec.datanodes) == (2, 3)
    assert spec.image_prefix == "crunchydata"
    assert spec.images == {
        "gc": {"name": "antdb.cluster.gc-ha", "tag": "21.0"},
        "cn": {"name": "antdb.cluster.cn-ha", "tag": "21.0"},
        "dn": {"name": "antdb.cluster.db-ha", "tag": "21.0"},
    }
    assert spec.node_names() == ["gc", "cn1", "cn2", "dn1", "dn2", "dn3"]
    assert spec.warnings == ()
    assert spec.dry_run is False and spec.prepare_hosts == "check"
    assert (spec.operator_namespace, spec.operator_install, spec.installation_name) == ("pgo", False, "devtest")


def test_empty_conf_equals_no_conf():
    assert parse_spec({}) == parse_spec(None)


def test_default_parameters_carry_the_runbooks_required_settings():
    params = parse_spec({}).merged_parameters()
    assert params["max_prepared_transactions"] == 1000
    # runbook 2.11: pg_audit.so must be removed from shared_preload_libraries
    assert params["shared_preload_libraries"] == "pg_stat_statements.so"
    assert "agtm_host" not in params and "agtm_port" not in params


def test_default_pg_hba_trusts_nobody_over_tcp():
    spec = parse_spec({})
    assert not [line for line in spec.pg_hba if "trust" in line.split()]
    assert "host all all 0.0.0.0/0 md5" in spec.pg_hba


def test_user_parameters_override_defaults_without_changing_them():
    spec = parse_spec({"postgres_parameters": {"max_prepared_transactions": 2000, "work_mem": "64MB"}})
    merged = spec.merged_parameters()
    assert merged["max_prepared_transactions"] == 2000 and merged["work_mem"] == "64MB"
    assert merged["max_wal_senders"] == 6
    assert parse_spec({}).merged_parameters()["max_prepared_transactions"] == 1000


def test_partial_nested_override_keeps_the_other_defaults():
    spec = parse_spec({"images": {"cn": {"tag": "21.1"}}, "timeouts": {"gc_ready": 60}})
    assert spec.images["cn"] == {"name": "antdb.cluster.cn-ha", "tag": "21.1"}
    assert spec.images["gc"]["tag"] == "21.0" and spec.images["dn"]["tag"] == "21.0"
    assert spec.timeouts == {"gc_ready": 60, "nodes_ready": 1800, "poke_interval": 10}


def test_parse_spec_shares_no_state_with_defaults_or_conf():
    conf = {"images": {"gc": {"tag": "22.0"}}, "storage": {"dn": {"size": "1Ti"}}}
    before_conf, before_defaults = copy.deepcopy(conf), copy.deepcopy(DEFAULTS)
    spec = parse_spec(conf)
    spec.images["gc"]["tag"] = "mutated"
    spec.postgres_parameters["x"] = 1
    assert conf == before_conf
    assert DEFAULTS == before_defaults
    assert parse_spec({}).images["gc"]["tag"] == "21.0"


def test_spec_is_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        parse_spec({}).namespace = "other"  # type: ignore[misc]


# --- storage per role (the runbook's open problem: every PV the same size) ---------------


def test_default_storage_differs_per_role():
    storage = parse_spec({}).storage
    assert storage["gc"].size == "10Gi" and storage["cn"].size == "10Gi"
    assert storage["dn"].size == "100Gi"


def test_per_role_storage_survives_into_the_spec():
    spec = parse_spec({"storage": {
        "gc": {"size": "5Gi"},
        "cn": {"size": "20Gi", "storage_class": "standard"},
        "dn": {"size": "500Gi", "storage_class": "fast-ssd", "access_mode": "ReadWriteMany"},
    }})
    assert spec.storage["gc"] == RoleStorage("5Gi", "", "ReadWriteOnce", "")
    assert spec.storage["cn"] == RoleStorage("20Gi", "standard", "ReadWriteOnce", "")
    assert spec.storage["dn"] == RoleStorage("500Gi", "fast-ssd", "ReadWriteMany", "")


def test_host_path_storage_is_accepted():
    spec = parse_spec({"storage": {"dn": {"host_path": "/data/antdb", "size": "50Gi"}}})
    assert spec.storage["dn"] == RoleStorage("50Gi", "", "ReadWriteOnce", "/data/antdb")
    assert spec.storage["gc"].host_path == ""


@pytest.mark.parametrize("size", ["10Gi", "500Mi", "1Ti", "1.5Gi", "1000", "100G", "512k"])
def test_kubernetes_quantities_accepted(size):
    assert parse_spec({"storage": {"gc": {"size": size}}}).storage["gc"].size == size


# --- node names --------------------------------------------------------------------------


def test_node_names_order_gc_then_coordinators_then_datanodes():
    spec = parse_spec({"coordinators": 3, "datanodes": 11})
    assert spec.coordinator_names() == ["cn1", "cn2", "cn3"]
    assert spec.datanode_names() == [f"dn{i}" for i in range(1, 12)]
    assert spec.node_names() == ["gc", "cn1", "cn2", "cn3"] + [f"dn{i}" for i in range(1, 12)]


def test_maximum_counts_are_accepted():
    spec = parse_spec({"coordinators": MAX_COORDINATORS, "datanodes": MAX_DATANODES})
    assert len(spec.node_names()) == 1 + MAX_COORDINATORS + MAX_DATANODES
    assert spec.node_names()[-1] == f"dn{MAX_DATANODES}"


@pytest.mark.parametrize(
    ("name", "role"),
    [("gc", NodeRole.GTM_COORD), ("cn1", NodeRole.COORDINATOR), ("cn10", NodeRole.COORDINATOR),
     ("cn16", NodeRole.COORDINATOR), ("dn1", NodeRole.DATANODE), ("dn32", NodeRole.DATANODE)],
)
def test_role_from_node_name(name, role):
    assert role_from_node_name(name) is role
    assert parse_spec({}).role_of(name) is role


@pytest.mark.parametrize(
    "name", ["", "gc1", "GC", "cn", "cn0", "cn01", "CN1", "cn1 ", "cn1\n", "dn-1", "dnx", "db1", "gtm"]
)
def test_role_from_node_name_rejects(name):
    with pytest.raises(ValueError, match="not an AntDB node name"):
        role_from_node_name(name)


# --- every bad conf names its field ------------------------------------------------------

BAD_CONFS = [
    ({"coordinators": 0}, "coordinators"),
    ({"coordinators": -1}, "coordinators"),
    ({"coordinators": MAX_COORDINATORS + 1}, "coordinators"),
    ({"coordinators": True}, "coordinators"),
    ({"coordinators": "2"}, "coordinators"),
    ({"coordinators": 2.0}, "coordinators"),
    ({"datanodes": 0}, "datanodes"),
    ({"datanodes": -3}, "datanodes"),
    ({"datanodes": MAX_DATANODES + 1}, "datanodes"),
    ({"datanodes": False}, "datanodes"),
    ({"datanodes": None}, "datanodes"),
    ({"namespace": "PgoUser1"}, "namespace"),
    ({"namespace": "pgo_user1"}, "namespace"),
    ({"namespace": "a" * 64}, "namespace"),
    ({"namespace": ""}, "namespace"),
    ({"namespace": "-pgo"}, "namespace"),
    ({"namespace": "pgo.user1"}, "namespace"),
    ({"namespace": 1}, "namespace"),
    ({"bogus": 1}, "bogus"),
    ({"images": {"xx": {"name": "antdb.cluster.xx-ha", "tag": "21.0"}}}, "images.xx"),
    ({"images": {"gc": {"digest": "sha256:0"}}}, "images.gc.digest"),
    ({"images": {"gc": {"tag": "21.0 beta"}}}, "images.gc.tag"),
    ({"images": {"dn": {"tag": ""}}}, "images.dn.tag"),
    ({"images": {"dn": {"tag": 21.0}}}, "images.dn.tag"),
    ({"images": {"cn": {"name": "AntDB Cluster"}}}, "images.cn.name"),
    ({"images": {"cn": None}}, "images.cn"),
    ({"images": []}, "images"),
    ({"image_prefix": "Crunchy Data"}, "image_prefix"),
    ({"image_prefix": ""}, "image_prefix"),
    ({"storage": {"gc": {"foo": 1}}}, "storage.gc.foo"),
    ({"storage": {"xx": {}}}, "storage.xx"),
    ({"storage": {"dn": {"size": "10 GB"}}}, "storage.dn.size"),
    ({"storage": {"dn": {"size": "ten"}}}, "storage.dn.size"),
    ({"storage": {"dn": {"size": "10gi"}}}, "storage.dn.size"),
    ({"storage": {"dn": {"size": ""}}}, "storage.dn.size"),
    ({"storage": {"dn": {"size": 10}}}, "storage.dn.size"),
    ({"storage": {"cn": {"storage_class": "Fast_SSD"}}}, "storage.cn.storage_class"),
    ({"storage": {"cn": {"storage_class": None}}}, "storage.cn.storage_class"),
    ({"storage": {"cn": {"storage_class": 5}}}, "storage.cn.storage_class"),
    ({"storage": {"dn": {"access_mode": "ReadOnlyMany"}}}, "storage.dn.access_mode"),
    # the package's Pgcluster CRD only allows ReadWriteOnce/ReadWriteMany (test_manifests)
    ({"storage": {"dn": {"access_mode": "ReadWriteOncePod"}}}, "storage.dn.access_mode"),
    ({"storage": {"dn": {"host_path": "/data/../etc"}}}, "storage.dn.host_path"),
    ({"storage": {"dn": {"host_path": "/data/.."}}}, "storage.dn.host_path"),
    ({"storage": {"dn": {"host_path": "data/antdb"}}}, "storage.dn.host_path"),
    ({"storage": {"dn": {"host_path": "/data/antdb db"}}}, "storage.dn.host_path"),
    ({"storage": {"dn": {"host_path": None}}}, "storage.dn.host_path"),
    ({"storage": {"gc": {"host_path": "/data/antdb", "storage_class": "standard"}}}, "storage.gc"),
    ({"storage": "big"}, "storage"),
    ({"postgres_parameters": {"agtm_host": "127.0.0.1"}}, "postgres_parameters.agtm_host"),
    ({"postgres_parameters": {"agtm_port": 5432}}, "postgres_parameters.agtm_port"),
    ({"postgres_parameters": {"max_prepared_transactions": 0}}, "postgres_parameters.max_prepared_transactions"),
    ({"postgres_parameters": {"max_prepared_transactions": -1}}, "postgres_parameters.max_prepared_transactions"),
    ({"postgres_parameters": {"max_prepared_transactions": True}}, "postgres_parameters.max_prepared_transactions"),
    ({"postgres_parameters": {"Work-Mem": "4MB"}}, "postgres_parameters.Work-Mem"),
    ({"postgres_parameters": {"work_mem": {"value": "4MB"}}}, "postgres_parameters.work_mem"),
    ({"postgres_parameters": {"work_mem": None}}, "postgres_parameters.work_mem"),
    ({"postgres_parameters": {"log_line_prefix": "%m\nlisten_addresses='*'"}}, "postgres_parameters.log_line_prefix"),
    ({"postgres_parameters": ["work_mem=4MB"]}, "postgres_parameters"),
    ({"pg_hba": []}, "pg_hba"),
    ({"pg_hba": "host all all 127.0.0.1/32 md5"}, "pg_hba"),
    ({"pg_hba": ["hots all all 127.0.0.1/32 md5"]}, "pg_hba[0]"),
    ({"pg_hba": ["local all all peer", ""]}, "pg_hba[1]"),
    ({"pg_hba": ["local all all peer\nhost all all 0.0.0.0/0 trust"]}, "pg_hba[0]"),
    ({"pg_hba": ["local all all peer", 7]}, "pg_hba[1]"),
    ({"operator": {"bar": 1}}, "operator.bar"),
    ({"operator": {"namespace": "PGO"}}, "operator.namespace"),
    ({"operator": {"install": "yes"}}, "operator.install"),
    ({"operator": {"installation_name": "dev_test"}}, "operator.installation_name"),
    ({"operator": None}, "operator"),
    ({"timeouts": {"baz": 1}}, "timeouts.baz"),
    ({"timeouts": {"gc_ready": 5}}, "timeouts.gc_ready"),
    ({"timeouts": {"nodes_ready": 86401}}, "timeouts.nodes_ready"),
    ({"timeouts": {"poke_interval": True}}, "timeouts.poke_interval"),
    ({"timeouts": {"poke_interval": 0}}, "timeouts.poke_interval"),
    ({"timeouts": 30}, "timeouts"),
    ({"prepare_hosts": "yes"}, "prepare_hosts"),
    ({"dry_run": "false"}, "dry_run"),
]


@pytest.mark.parametrize(("conf", "field"), BAD_CONFS, ids=[f"{f}-{i}" for i, (_, f) in enumerate(BAD_CONFS)])
def test_bad_conf_names_its_field(conf, field):
    assert_field_refused(conf, field)


def test_spec_error_is_a_value_error_listing_every_problem():
    with pytest.raises(ValueError) as err:
        parse_spec({"coordinators": 0})
    assert isinstance(err.value, SpecError)
    assert str(err.value).startswith("invalid deploy_antdb conf:")
    assert "coordinators: must be at least 1, got 0" in str(err.value)


def test_count_messages_say_what_is_wrong():
    assert problems_of({"coordinators": True}) == ["coordinators: must be a whole number, got True"]
    assert problems_of({"datanodes": MAX_DATANODES + 1}) == [
        f"datanodes: at most {MAX_DATANODES} are supported, got {MAX_DATANODES + 1}"
    ]


def test_unknown_nested_key_lists_allowed_keys():
    (problem,) = problems_of({"timeouts": {"baz": 1}})
    assert problem == "timeouts.baz: unknown key (allowed: gc_ready, nodes_ready, poke_interval)"


def test_host_path_and_storage_class_are_exclusive():
    problems = problems_of({"storage": {"gc": {"host_path": "/data/antdb", "storage_class": "standard"}}})
    assert problems == ["storage.gc: host_path and storage_class are exclusive (host_path pre-creates PVs)"]


def test_all_problems_are_reported_at_once():
    problems = problems_of({
        "coordinators": 0,
        "namespace": "Bad_NS",
        "images": {"gc": {"tag": "a b"}},
        "storage": {"dn": {"size": "ten"}},
        "postgres_parameters": {"agtm_host": "127.0.0.1", "max_prepared_transactions": 0},
        "pg_hba": ["host all all 0.0.0.0/0 trust"],
        "bogus": True,
    })
    fields = sorted(p.split(":", 1)[0] for p in problems)
    assert fields == sorted([
        "bogus", "namespace", "coordinators", "images.gc.tag", "storage.dn.size",
        "postgres_parameters.agtm_host", "postgres_parameters.max_prepared_transactions", "pg_hba[0]",
    ])


# --- pg_hba: no `trust` for the whole network ---------------------------------------------

OPEN_TRUST_LINES = [
    "host all all 0.0.0.0/0 trust",
    "host all postgres 0.0.0.0/0 trust",  # the runbook's line (2.11)
    "hostssl all all ::/0 trust",
    "hostnossl all all all trust",
    "host all all samenet trust",
    "host all all 0.0.0.0 0.0.0.0 trust",
    "host all all ::0/0 trust",
    "host all all 127.0.0.1/0 trust",
    "host all all 127.0.0.1 0.0.0.0 trust",
    "host all all ::1 :: trust",
]


@pytest.mark.parametrize("line", OPEN_TRUST_LINES)
def test_trust_for_every_address_is_refused(line):
    problems = assert_field_refused({"pg_hba": ["local all postgres peer", line]}, "pg_hba[1]")
    assert "without a password" in problems[0]


@pytest.mark.parametrize("line", ["host all all 127.0.0.0/8 trust", "host all all 127.0.0.1 255.255.255.255 trust",
                                  "hostssl all all ::1/128 trust"])
def test_trust_on_a_narrow_range_is_accepted_with_a_warning(line):
    hba = list(DEFAULTS["pg_hba"]) + [line]
    spec = parse_spec({"pg_hba": hba})
    assert spec.pg_hba == tuple(hba)
    (warning,) = spec.warnings
    assert warning.startswith(f"pg_hba[{len(hba) - 1}]:") and line.split()[3] in warning


def test_local_trust_is_accepted_without_warning():
    spec = parse_spec({"pg_hba": ["local all all trust", "host all all 0.0.0.0/0 scram-sha-256"]})
    assert spec.warnings == ()
    assert spec.pg_hba == ("local all all trust", "host all all 0.0.0.0/0 scram-sha-256")


def test_md5_for_the_whole_network_is_fine():
    assert parse_spec({"pg_hba": ["host all all 0.0.0.0/0 md5", "host all all ::/0 md5"]}).warnings == ()
