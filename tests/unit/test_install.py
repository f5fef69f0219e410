"""What `operator.install: true` applies: what the real 4.2.1 operator needs to start and work."""

from __future__ import annotations

import yaml

from antdb_k8s.core.install import CRD_NAMES, install_manifests, pgo_config_problems, target_namespace_manifests
from antdb_k8s.core.spec import parse_spec
from tests.unit.test_manifests import crd_errors, crd_schema  # noqa: F401 - the fixture is used below

SPEC = parse_spec({"namespace": "team-a", "image_prefix": "registry.local/antdb",
                   "operator": {"namespace": "pgo-ops", "install": True, "installation_name": "prod"}})


def by_kind(manifests: list[dict], kind: str) -> list[dict]:
    return [m for m in manifests if m["kind"] == kind]


def test_install_has_every_crd_the_operator_watches_without_a_status_subresource():
    crds = by_kind(install_manifests(SPEC), "CustomResourceDefinition")
    assert [c["metadata"]["name"] for c in crds] == list(CRD_NAMES)
    for crd in crds:
        (version,) = crd["spec"]["versions"]
        assert crd["apiVersion"] == "apiextensions.k8s.io/v1" and version["served"] and version["storage"]
        assert "subresources" not in version, crd["metadata"]["name"]


def test_pgo_yaml_is_complete_and_carries_the_conf_prefix():
    (config,) = by_kind(install_manifests(SPEC), "ConfigMap")
    assert config["metadata"] == {**config["metadata"], "name": "pgo-config", "namespace": "pgo-ops"}
    text = config["data"]["pgo.yaml"]
    assert pgo_config_problems(text, "registry.local/antdb") == []
    document = yaml.safe_load(text)
    assert document["Cluster"]["CCPImagePrefix"] == "registry.local/antdb"
    assert document["Pgo"]["PGOImageTag"] and document["Cluster"]["BackrestPort"] == 2022
    assert document["Storage"][document["PrimaryStorage"]]["StorageType"] in ("create", "dynamic")


def test_pgo_config_problems_name_what_the_operator_would_exit_on():
    assert pgo_config_problems(None, "crunchydata") == ["ConfigMap pgo-config has no pgo.yaml"]
    problems = pgo_config_problems("Cluster:\n  CCPImagePrefix: other\nPrimaryStorage: nfs\n", "crunchydata")
    assert "pgo-config pgo.yaml: PrimaryStorage must name an entry of Storage (the operator exits without it)" \
        in problems
    assert any("BackrestStorage" in p for p in problems)
    assert problems[-1].startswith("pgo-config pgo.yaml has CCPImagePrefix 'other' but the conf's image_prefix")


def test_operator_container_has_its_namespaces_and_event_address():
    (deployment,) = by_kind(install_manifests(SPEC), "Deployment")
    containers = {c["name"]: {e["name"]: e.get("value") for e in c.get("env") or []}
                  for c in deployment["spec"]["template"]["spec"]["containers"]}
    assert containers["operator"] == {"PGO_INSTALLATION_NAME": "prod", "PGO_OPERATOR_NAMESPACE": "pgo-ops",
                                      "NAMESPACE": "team-a", "EVENT_ADDR": "localhost:4150",
                                      "DISABLE_EVENTING": "true"}
    assert deployment["metadata"]["namespace"] == "pgo-ops"
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "postgres-operator"


def test_operator_cluster_role_manages_target_namespace_rbac():
    (role,) = by_kind(install_manifests(SPEC), "ClusterRole")
    granted = {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    for group, resource in (("", "namespaces"), ("", "serviceaccounts"), ("rbac.authorization.k8s.io", "roles"),
                            ("rbac.authorization.k8s.io", "rolebindings")):
        assert (group, resource, "*") in granted, resource
    (binding,) = by_kind(install_manifests(SPEC), "ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "postgres-operator", "namespace": "pgo-ops"}]


def test_target_namespace_accounts_and_roles():
    manifests = target_namespace_manifests(SPEC)
    assert {m["metadata"]["namespace"] for m in manifests} == {"team-a"}
    assert {m["metadata"]["name"] for m in by_kind(manifests, "ServiceAccount")} == \
        {"pgo-pg", "pgo-backrest", "pgo-default", "pgo-target"}
    bindings = {m["metadata"]["name"]: m for m in by_kind(manifests, "RoleBinding")}
    assert {"kind": "ServiceAccount", "name": "postgres-operator", "namespace": "pgo-ops"} in \
        bindings["pgo-target-role-binding"]["subjects"]
    assert bindings["pgo-pg-role-binding"]["subjects"] == [{"kind": "ServiceAccount", "name": "pgo-pg",
                                                            "namespace": "team-a"}]
    roles = {m["metadata"]["name"] for m in by_kind(manifests, "Role")}
    assert roles == {"pgo-pg-role", "pgo-backrest-role", "pgo-target-role"}


def test_pgcluster_crd_accepts_the_empty_storage_blocks_the_go_client_sends(crd_schema):  # noqa: F811
    from antdb_k8s.core.manifests import pgcluster_manifest

    manifest = pgcluster_manifest(parse_spec({}), "cn1")
    empty = {k: "" for k in ("name", "storageclass", "accessmode", "size", "storagetype", "fsgroup",
                             "supplementalgroups", "matchLabels")}
    manifest["spec"]["ArchiveStorage"] = dict(empty)
    manifest["spec"]["ReplicaStorage"] = dict(empty)
    assert crd_errors(crd_schema, manifest) == []
    manifest["spec"]["PrimaryStorage"] = dict(empty)
    assert crd_errors(crd_schema, manifest), "PrimaryStorage still needs a storage type"
