"""Every manifest shipped in include/ is valid for the Kubernetes API it targets."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

INCLUDE = Path(__file__).resolve().parents[2] / "include"
DOCUMENTS = [(path.relative_to(INCLUDE).as_posix(), i, doc)
             for path in sorted(INCLUDE.rglob("*.yaml")) if path.parent.name != "templates"
             for i, doc in enumerate(yaml.safe_load_all(path.read_text())) if doc]


@pytest.mark.parametrize("where,index,document", DOCUMENTS, ids=[f"{w}#{i}" for w, i, _ in DOCUMENTS])
def test_manifest_validates_strictly(where, index, document):
    kubernetes_validate.validate(document, "1.30", strict=True)


def test_rbac_lets_airflow_do_what_the_hook_does():
    """Each kind the package creates or deletes is granted in the Airflow ClusterRole."""
    role = next(d for w, _, d in DOCUMENTS if w == "rbac/airflow-antdb.yaml" and d["metadata"]["name"] == "antdb-airflow")
    granted = {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    needed = {("", "pods", "create"), ("", "pods/log", "get"), ("", "secrets", "create"), ("", "configmaps", "patch"),
              ("", "namespaces", "create"), ("crunchydata.com", "pgclusters", "create"), ("", "nodes", "list"),
              ("", "events", "list"), ("", "persistentvolumes", "create")}
    assert needed <= granted
