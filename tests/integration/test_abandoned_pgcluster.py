"""services.nodes.ensure_pgcluster against the test API, through the real hook: the deploy's one
way to create a node, and the Pgcluster a stopped postgres-operator left Processed with no Deployment."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from antdb_k8s.core.manifests import pgcluster_manifest
from antdb_k8s.core.spec import parse_spec
from antdb_k8s.hooks.kube import AntDBKubeHook
from antdb_k8s.services.nodes import ensure_pgcluster
from tests.integration.test_kube_hook import api  # noqa: F401 - the fixture: a test API server and its connection

pytestmark = pytest.mark.integration
CRD = Path(__file__).resolve().parents[2] / "include" / "crd" / "pgclusters.crunchydata.com.yaml"
NS = "default"
GRACE = 30.0


@pytest.fixture
def kube(api):
    """The hook on test_kube_hook's API server, with the package's Pgcluster CRD installed."""
    api.store.create(yaml.safe_load(CRD.read_text()))
    return AntDBKubeHook("kube_test")


def manifest(name: str = "dn1", tag: str = "5.0") -> dict:
    """The deploy's own Pgcluster for `name` (core.manifests), in namespace NS."""
    spec = parse_spec({"namespace": NS, "images": {role: {"tag": tag} for role in ("gc", "cn", "dn")}})
    return pgcluster_manifest(spec, name)


def mark_processed(api, name: str) -> str:
    """What 4.2.1 does first when it picks a Pgcluster up (then it dies, in these tests)."""
    status = {"state": "pgcluster Processed", "message": "Successfully processed Pgcluster by controller"}
    return api.store.update_status("crunchydata.com/v1", "Pgcluster", NS, name, status)["metadata"]["uid"]


def test_a_processed_pgcluster_with_no_deployment_is_created_again_after_the_grace(kube, api):
    assert ensure_pgcluster(kube, manifest(), abandoned_after=GRACE)[0] == "created"
    uid = mark_processed(api, "dn1")
    later = lambda: time.time() + GRACE + 1  # noqa: E731 - the clock after the grace

    action, live = ensure_pgcluster(kube, manifest(), abandoned_after=GRACE, now=later)

    assert action == "re-created"
    stored = api.store.get("crunchydata.com/v1", "Pgcluster", NS, "dn1")
    assert stored["metadata"]["uid"] != uid and live["metadata"]["uid"] == stored["metadata"]["uid"]
    assert stored["status"]["state"] == "pgcluster Created", "not Processed: a new operator process builds it"


def test_a_young_processed_pgcluster_or_one_with_its_deployment_is_left_alone(kube, api):
    ensure_pgcluster(kube, manifest(), abandoned_after=GRACE)
    uid = mark_processed(api, "dn1")
    assert ensure_pgcluster(kube, manifest(tag="6.0"), abandoned_after=GRACE)[0] == "exists", "still being made"
    api.store.create({"apiVersion": "apps/v1", "kind": "Deployment",
                      "metadata": {"name": "dn1", "namespace": NS},
                      "spec": {"selector": {"matchLabels": {"pg-cluster": "dn1"}},
                               "template": {"metadata": {"labels": {"pg-cluster": "dn1"}},
                                            "spec": {"containers": [{"name": "database", "image": "antdb:5.0"}]}}}})
    later = lambda: time.time() + GRACE + 1  # noqa: E731 - the clock after the grace
    action, live = ensure_pgcluster(kube, manifest(tag="6.0"), abandoned_after=GRACE, now=later)
    assert action == "exists" and live["metadata"]["uid"] == uid
    assert api.store.get("crunchydata.com/v1", "Pgcluster", NS, "dn1")["spec"]["ccpimagetag"] == "5.0", "never patched"
