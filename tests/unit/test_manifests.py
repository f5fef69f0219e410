"""Rendered manifests: valid against the package's CRD and Kubernetes' own schemas, per-role storage."""

from __future__ import annotations

import base64
import re

import jsonschema
import kubernetes_validate
import pytest
import yaml

from antdb_k8s.core.manifests import (
    CUSTOM_CONFIG_NAME,
    ROLE_LABEL,
    agtm_from_postgres_ha,
    backrest_secret_name,
    custom_config_manifest,
    host_path_volume_manifest,
    include_path,
    namespace_manifest,
    pgcluster_manifest,
    render_postgres_ha,
    secret_manifest,
    user_secret_names,
)
from antdb_k8s.core.names import InvalidName
from antdb_k8s.core.spec import ACCESS_MODES, parse_spec
from antdb_k8s.core.topology import members_from_pgclusters, role_from_pgcluster

K8S_VERSION = "1.30"
LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
STORAGE_BLOCKS = ("PrimaryStorage", "ReplicaStorage", "BackrestStorage", "ArchiveStorage")
GC_HOST = "127.0.40.1"

SPECS = {
    "default": {},
    "per-role-classes": {"storage": {
        "gc": {"size": "5Gi"},
        "cn": {"size": "20Gi", "storage_class": "standard"},
        "dn": {"size": "500Gi", "storage_class": "fast-ssd", "access_mode": "ReadWriteMany"},
    }},
    "host-path": {"namespace": "antdb-hp", "coordinators": 1, "datanodes": 2,
                  "storage": {r: {"host_path": "/data/antdb/"} for r in ("gc", "cn", "dn")}},
    "wide": {"coordinators": 10, "datanodes": 12, "image_prefix": "registry.example.org:5000/antdb",
             "images": {"dn": {"tag": "21.0-rc.1"}}},
}


def _annotations_dropped(node):
    """The CRD's openAPIV3Schema as plain JSON Schema: `nullable` widens the type, x-kubernetes-* dropped."""
    if isinstance(node, list):
        return [_annotations_dropped(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: _annotations_dropped(v) for k, v in node.items() if k != "nullable" and not k.startswith("x-kubernetes-")}
    if node.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


@pytest.fixture(scope="module")
def crd_schema() -> dict:
    with include_path("crd", "pgclusters.crunchydata.com.yaml").open(encoding="utf-8") as handle:
        crd = yaml.safe_load(handle)
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = _annotations_dropped(version["schema"]["openAPIV3Schema"])
    jsonschema.Draft7Validator.check_schema(schema)
    return schema


def crd_errors(schema: dict, manifest: dict) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in jsonschema.Draft7Validator(schema).iter_errors(manifest)]


def all_pgclusters():
    for label, conf in SPECS.items():
        spec = parse_spec(conf)
        for name in spec.node_names():
            yield pytest.param(spec, name, id=f"{label}-{name}")


@pytest.mark.parametrize(("spec", "name"), list(all_pgclusters()))
def test_every_rendered_pgcluster_satisfies_the_crd(crd_schema, spec, name):
    manifest = pgcluster_manifest(spec, name)
    assert crd_errors(crd_schema, manifest) == []
    _assert_no_pruned_fields(crd_schema["properties"]["spec"], manifest["spec"], "spec")
    _assert_strings_where_crd_says_string(crd_schema["properties"]["spec"], manifest["spec"])


def _assert_no_pruned_fields(schema: dict, value: dict, where: str) -> None:
    """A structural CRD silently drops unknown fields: every rendered key must be declared."""
    properties = schema.get("properties") or {}
    for key, item in value.items():
        assert key in properties, f"{where}.{key} is not in the CRD and would be pruned"
        if isinstance(item, dict) and "properties" in properties[key]:
            _assert_no_pruned_fields(properties[key], item, f"{where}.{key}")


def _assert_strings_where_crd_says_string(schema: dict, value: dict) -> None:
    for key, prop in schema["properties"].items():
        if key in value and prop.get("type") == "string":
            assert isinstance(value[key], str), f"{key} must be a string, got {value[key]!r}"
        if key in value and prop.get("type") == "object" and "properties" in prop:
            _assert_strings_where_crd_says_string(prop, value[key])


def test_crd_validation_is_not_vacuous(crd_schema):
    manifest = pgcluster_manifest(parse_spec({}), "cn1")
    manifest["spec"]["port"] = 5432
    manifest["spec"]["replicas"] = 0
    manifest["spec"]["PrimaryStorage"]["accessmode"] = "ReadWriteOncePod"
    del manifest["spec"]["ccpimagetag"]
    errors = crd_errors(crd_schema, manifest)
    assert len(errors) == 4, errors


@pytest.mark.parametrize(("name", "image", "customconfig"), [
    ("gc", "antdb.cluster.gc-ha", ""),
    ("cn1", "antdb.cluster.cn-ha", CUSTOM_CONFIG_NAME),
    ("cn2", "antdb.cluster.cn-ha", CUSTOM_CONFIG_NAME),
    ("dn3", "antdb.cluster.db-ha", CUSTOM_CONFIG_NAME),
])
def test_pgcluster_identity_image_and_custom_config(name, image, customconfig):
    manifest = pgcluster_manifest(parse_spec({}), name)
    spec = manifest["spec"]
    assert manifest["apiVersion"] == "crunchydata.com/v1" and manifest["kind"] == "Pgcluster"
    assert manifest["metadata"]["name"] == name and manifest["metadata"]["namespace"] == "pgouser1"
    assert spec["name"] == spec["clustername"] == spec["primaryhost"] == name
    assert (spec["ccpimage"], spec["ccpimagetag"]) == (image, "21.0")
    assert "ccpimageprefix" not in spec, "4.2.1 has no per-cluster prefix: it comes from pgo.yaml"
    assert manifest["metadata"]["labels"]["pgo-backrest"] == "true"
    assert spec["userlabels"]["archive-timeout"] == "60"
    assert spec["port"] == "5432" and spec["replicas"] == "0"
    assert spec["customconfig"] == customconfig
    assert CUSTOM_CONFIG_NAME == "pgo-custom-antdb-config"  # runbook 1.6: the name is fixed


def test_pgcluster_names_the_secrets_the_package_creates():
    spec = pgcluster_manifest(parse_spec({}), "dn2")["spec"]
    names = user_secret_names("dn2")
    assert names == {"postgres": "dn2-postgres-secret", "primaryuser": "dn2-primaryuser-secret",
                     "antdb": "dn2-antdb-secret"}
    assert (spec["rootsecretname"], spec["primarysecretname"], spec["usersecretname"]) == (
        names["postgres"], names["primaryuser"], names[spec["user"]])
    assert backrest_secret_name("dn2") == "dn2-backrest-repo-config"


@pytest.mark.parametrize("name", ["gc", "cn1", "cn12", "dn1", "dn7"])
def test_pgcluster_labels(name):
    spec = parse_spec({"coordinators": 12, "datanodes": 7})
    manifest = pgcluster_manifest(spec, name)
    labels = manifest["metadata"]["labels"]
    role = spec.role_of(name)
    assert labels["pg-cluster"] == name and labels["name"] == name
    assert labels[ROLE_LABEL] == role.value
    assert manifest["spec"]["userlabels"][ROLE_LABEL] == role.value
    for value in list(labels.values()) + list(manifest["spec"]["userlabels"].values()):
        assert len(value) <= 63 and LABEL_VALUE_RE.match(value), value
    assert role_from_pgcluster(manifest) is role


def test_members_read_back_from_rendered_pgclusters():
    spec = parse_spec({"coordinators": 3, "datanodes": 4})
    members = members_from_pgclusters(pgcluster_manifest(spec, n) for n in spec.node_names())
    assert members == {n: spec.role_of(n) for n in spec.node_names()}


def test_per_role_sizes_and_storage_classes():
    spec = parse_spec(SPECS["per-role-classes"])
    gc, cn, dn = (pgcluster_manifest(spec, n)["spec"]["PrimaryStorage"] for n in ("gc", "cn2", "dn3"))
    assert (gc["size"], gc["storageclass"], gc["storagetype"], gc["accessmode"]) == (
        "5Gi", "", "create", "ReadWriteOnce")
    assert (cn["size"], cn["storageclass"], cn["storagetype"]) == ("20Gi", "standard", "dynamic")
    assert (dn["size"], dn["storageclass"], dn["storagetype"], dn["accessmode"]) == (
        "500Gi", "fast-ssd", "dynamic", "ReadWriteMany")
    assert (gc["name"], cn["name"], dn["name"]) == ("gc", "cn2", "dn3")  # the PVC the operator creates


@pytest.mark.parametrize(("spec", "name"), list(all_pgclusters()))
def test_storagetype_is_dynamic_iff_a_storage_class_is_set(spec, name):
    manifest = pgcluster_manifest(spec, name)["spec"]
    storage = spec.storage[spec.role_of(name).short]
    for block in STORAGE_BLOCKS:
        assert manifest[block]["storagetype"] == ("dynamic" if storage.storage_class else "create")
        assert manifest[block]["storageclass"] == storage.storage_class
    assert manifest["ArchiveStorage"]["size"] == ""


@pytest.mark.parametrize("bad", ["CN1", "cn0", "pg", "cn_1", "gc\n"])
def test_pgcluster_refuses_names_that_are_not_nodes(bad):
    with pytest.raises((InvalidName, ValueError)):
        pgcluster_manifest(parse_spec({}), bad)


# --- built-in kinds ----------------------------------------------------------------------


def test_namespace_is_watched_by_the_operator():
    spec = parse_spec({"namespace": "antdb-prod", "operator": {"installation_name": "prod"}})
    manifest = namespace_manifest(spec)
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    assert manifest["metadata"]["name"] == "antdb-prod"
    assert manifest["metadata"]["labels"]["vendor"] == "crunchydata"
    assert manifest["metadata"]["labels"]["pgo-installation-name"] == "prod"


def test_secret_data_is_base64_of_the_values():
    spec = parse_spec({})
    data = {"username": "postgres", "password": "fake-pw: 'quoted' ü\n"}
    manifest = secret_manifest(spec, "gc-postgres-secret", "gc", data)
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    assert {k: base64.b64decode(v).decode() for k, v in manifest["data"].items()} == data
    assert manifest["type"] == "Opaque" and manifest["metadata"]["namespace"] == "pgouser1"
    assert manifest["metadata"]["labels"]["pg-cluster"] == "gc"


def test_backrest_secret_carries_the_repo_label():
    spec = parse_spec({})
    manifest = secret_manifest(spec, backrest_secret_name("cn1"), "cn1", {"config": "Host *\n"},
                               extra_labels={"pgo-backrest-repo": "true"})
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    assert manifest["metadata"]["labels"]["pgo-backrest-repo"] == "true"
    assert manifest["metadata"]["labels"]["pg-cluster"] == "cn1"


def test_secret_name_is_checked():
    with pytest.raises(InvalidName, match="secret name"):
        secret_manifest(parse_spec({}), "GC_Secret", "gc", {})


def test_custom_config_map():
    spec = parse_spec({})
    manifest = custom_config_manifest(spec, GC_HOST, 5432)
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    assert (manifest["metadata"]["name"], manifest["metadata"]["namespace"]) == (CUSTOM_CONFIG_NAME, "pgouser1")
    assert manifest["data"] == {"postgres-ha.yaml": render_postgres_ha(spec, GC_HOST, 5432)}


# --- postgres-ha.yaml (runbook 2.11) -----------------------------------------------------


def test_postgres_ha_carries_agtm_and_merged_parameters():
    spec = parse_spec({"postgres_parameters": {"max_prepared_transactions": 2000, "work_mem": "64MB",
                                               "log_min_messages": "warning"},
                       "pg_hba": ["local all all peer", "host all all 127.0.0.0/8 scram-sha-256"]})
    document = yaml.safe_load(render_postgres_ha(spec, GC_HOST, 5432))
    parameters = document["bootstrap"]["dcs"]["postgresql"]["parameters"]
    assert parameters["agtm_host"] == GC_HOST and parameters["agtm_port"] == 5432
    assert parameters["max_prepared_transactions"] == 2000
    assert parameters["work_mem"] == "64MB" and parameters["log_min_messages"] == "warning"
    assert parameters["max_wal_senders"] == 6 and parameters["shared_preload_libraries"] == "pg_stat_statements.so"
    # YAML 1.1 would read a bare `on` as true: the value must survive as written
    assert parameters["logging_collector"] == "on"
    assert parameters == {**spec.merged_parameters(), "agtm_host": GC_HOST, "agtm_port": 5432}
    assert document["postgresql"]["pg_hba"] == list(spec.pg_hba)


def test_postgres_ha_defaults():
    spec = parse_spec({})
    document = yaml.safe_load(render_postgres_ha(spec, GC_HOST))
    assert document["bootstrap"]["dcs"]["postgresql"]["parameters"]["agtm_port"] == 5432
    assert document["postgresql"]["pg_hba"] == list(spec.pg_hba)


@pytest.mark.parametrize(("host", "port"), [(GC_HOST, 5432), ("127.0.0.2", 6543), ("::1", 5432),
                                            ("gc.pgouser1.svc.cluster.local", 5432)])
def test_agtm_round_trips(host, port):
    assert agtm_from_postgres_ha(render_postgres_ha(parse_spec({}), host, port)) == (host, port)


@pytest.mark.parametrize("text", ["", "---\n", "postgresql:\n  pg_hba: []\n", "bootstrap:\n  dcs:\n",
                                  "bootstrap:\n  dcs:\n    postgresql:\n",
                                  "bootstrap:\n  dcs:\n    postgresql:\n      parameters:\n"])
def test_agtm_absent(text):
    assert agtm_from_postgres_ha(text) == (None, None)


def test_agtm_read_from_a_hand_written_file():
    text = ("bootstrap:\n  dcs:\n    postgresql:\n      parameters:\n"
            "        agtm_host: '127.0.0.9'\n        agtm_port: '5432'\n")
    assert agtm_from_postgres_ha(text) == ("127.0.0.9", 5432)


# --- hostPath PVs: one per node, sized for its role, pre-bound to its claim --------------


def test_no_host_path_means_no_pv():
    spec = parse_spec({})
    assert all(host_path_volume_manifest(spec, n) is None for n in spec.node_names())


def test_host_path_only_for_the_roles_that_ask():
    spec = parse_spec({"storage": {"dn": {"host_path": "/data/antdb", "size": "200Gi"}}})
    assert host_path_volume_manifest(spec, "gc") is None and host_path_volume_manifest(spec, "cn1") is None
    assert host_path_volume_manifest(spec, "dn2")["spec"]["capacity"] == {"storage": "200Gi"}


def test_host_path_pv_is_prebound_to_the_nodes_claim_with_its_roles_size():
    spec = parse_spec({"namespace": "antdb-hp", "storage": {
        "gc": {"host_path": "/data/antdb/", "size": "5Gi"},
        "cn": {"host_path": "/data/antdb", "size": "20Gi"},
        "dn": {"host_path": "/mnt/disks/antdb", "size": "300Gi", "access_mode": "ReadWriteMany"},
    }})
    sizes = {"gc": "5Gi", "cn1": "20Gi", "cn2": "20Gi", "dn1": "300Gi", "dn3": "300Gi"}
    names = set()
    for node, size in sizes.items():
        pv = host_path_volume_manifest(spec, node)
        kubernetes_validate.validate(pv, K8S_VERSION, strict=True)
        primary = pgcluster_manifest(spec, node)["spec"]["PrimaryStorage"]
        assert pv["spec"]["capacity"] == {"storage": size} == {"storage": primary["size"]}
        assert pv["spec"]["claimRef"] == {"namespace": "antdb-hp", "name": primary["name"]}
        assert primary["name"] == node and primary["storagetype"] == "create"
        assert pv["spec"]["accessModes"] == [primary["accessmode"]]
        assert pv["spec"]["storageClassName"] == "" and pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
        assert pv["metadata"]["labels"]["pg-cluster"] == node
        assert pv["metadata"]["labels"][ROLE_LABEL] == spec.role_of(node).value
        names.add(pv["metadata"]["name"])
    assert host_path_volume_manifest(spec, "gc")["spec"]["hostPath"]["path"] == "/data/antdb/antdb-hp/gc"
    assert host_path_volume_manifest(spec, "dn3")["spec"]["hostPath"]["path"] == "/mnt/disks/antdb/antdb-hp/dn3"
    assert len(names) == len(sizes)  # one PV per node


def test_host_path_pv_names_differ_across_namespaces():
    storage = {"storage": {"dn": {"host_path": "/data/antdb"}}}
    first = host_path_volume_manifest(parse_spec({"namespace": "one", **storage}), "dn1")
    second = host_path_volume_manifest(parse_spec({"namespace": "two", **storage}), "dn1")
    assert first["metadata"]["name"] != second["metadata"]["name"]
    assert first["spec"]["hostPath"]["path"] != second["spec"]["hostPath"]["path"]


def test_crd_access_modes_match_the_spec():
    """Every access mode parse_spec admits renders a Pgcluster the CRD accepts."""
    with include_path("crd", "pgclusters.crunchydata.com.yaml").open(encoding="utf-8") as handle:
        crd = yaml.safe_load(handle)
    spec_schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    storage = spec_schema["properties"]["PrimaryStorage"]
    assert set(ACCESS_MODES) <= set(storage["properties"]["accessmode"]["enum"])
