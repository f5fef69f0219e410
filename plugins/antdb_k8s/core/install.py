"""What `operator.install: true` applies, rendered from include/ for one conf (pure).

The postgres-operator 4.2.1 install as upstream's deploy/ scripts make it, restated in the
package's manifests: the five CRDs the operator watches, its namespace, RBAC, pgo-config
and Deployment (include/operator/postgres-operator.yaml), and, per target namespace, the
service accounts and roles its pods run as (include/operator/target-namespace.yaml).
"""

from __future__ import annotations

import yaml

from antdb_k8s.core.manifests import load_yaml_documents

# Every CRD the 4.2.1 operator watches (controller/*controller.go): it logs list errors without one.
CRD_NAMES = tuple(f"{plural}.crunchydata.com" for plural in ("pgclusters", "pgtasks", "pgpolicies", "pgreplicas",
                                                              "pgbackups"))
CRD_FILES = tuple(f"{name}.yaml" for name in CRD_NAMES)


def install_manifests(spec) -> list[dict]:
    """include/crd (all five) + include/operator with the conf's namespaces and prefix substituted."""
    documents = [doc for name in CRD_FILES for doc in load_yaml_documents("crd", name)]
    documents += load_yaml_documents("operator", "postgres-operator.yaml")
    return [_retarget(doc, spec) for doc in documents]


def target_namespace_manifests(spec) -> list[dict]:
    """include/operator/target-namespace.yaml for the conf's namespace and operator namespace."""
    documents = load_yaml_documents("operator", "target-namespace.yaml")
    for document in documents:
        document["metadata"]["namespace"] = spec.namespace
        for subject in document.get("subjects") or []:
            subject["namespace"] = spec.operator_namespace if subject["namespace"] == "pgo" else spec.namespace
    return documents


def _retarget(document: dict, spec) -> dict:
    """Point a manifest at the conf's operator namespace, installation name, target namespace and
    image prefix (pgo.yaml CCPImagePrefix: in 4.2.1 the Pgcluster has no prefix field)."""
    meta = document.setdefault("metadata", {})
    if meta.get("namespace") == "pgo":
        meta["namespace"] = spec.operator_namespace
    if document["kind"] == "Namespace" and meta.get("name") == "pgo":
        meta["name"] = spec.operator_namespace
    for subject in document.get("subjects") or []:
        if subject.get("namespace") == "pgo":
            subject["namespace"] = spec.operator_namespace
    if document["kind"] == "ConfigMap" and "pgo.yaml" in (document.get("data") or {}):
        document["data"]["pgo.yaml"] = _pgo_yaml_with_prefix(document["data"]["pgo.yaml"], spec.image_prefix)
    values = {"PGO_INSTALLATION_NAME": spec.installation_name, "PGO_OPERATOR_NAMESPACE": spec.operator_namespace,
              "NAMESPACE": spec.namespace}
    containers = ((document.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []
    for container in containers:
        for env in container.get("env") or []:
            env["value"] = values.get(env["name"], env["value"])
    return document


def _pgo_yaml_with_prefix(text: str, prefix: str) -> str:
    document = yaml.safe_load(text) or {}
    document.setdefault("Cluster", {})["CCPImagePrefix"] = prefix
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False)
