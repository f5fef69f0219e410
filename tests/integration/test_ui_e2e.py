"""The AntDB page in a real browser: headless Chromium logs into Airflow's UI and reads both pages
of a deployed test cluster, before and after an injected pgxc_node drift and a verification run.

Airflow's api-server app (with the plugin, SimpleAuthManager, the metadata DB the DAG runs
wrote) is served in this process on 127.0.0.1; screenshots go to SCREENSHOTS.
"""

from __future__ import annotations

import json
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.airflow_server import PASSWORD, USER, start_airflow_server
from tests.support.browser import Browser, chromium_path
from tests.support.drift import alter_row

pytestmark = pytest.mark.integration
NS = "pgouser1"
DEPLOY = {"namespace": NS, "coordinators": 2, "datanodes": 3, "prepare_hosts": "off",
          "timeouts": {"gc_ready": 300, "nodes_ready": 300, "poke_interval": 1}}
NODES = ["gc", "cn1", "cn2", "dn1", "dn2", "dn3"]
HOLDERS = ["gc", "cn1", "cn2"]
SCREENSHOTS = Path(os.environ.get("ANTDB_UI_SCREENSHOTS", Path(tempfile.gettempdir()) / "antdb-ui-screenshots"))
RED = "rgb(255, 215, 213)"  # .bad in ui/render.py


@pytest.fixture(scope="module")
def deployed(module_cluster):
    cluster = module_cluster
    run = cluster.run_dag("deploy_antdb", DEPLOY)
    assert run.state == "success"
    verify = cluster.run_dag("verify_antdb_topology", {"namespace": NS, "data_check": False})
    assert verify.state == "success"
    return cluster


@pytest.fixture(scope="module")
def airflow(deployed, tmp_path_factory):
    server = start_airflow_server(str(tmp_path_factory.mktemp("airflow-ui")))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser(airflow):
    binary = chromium_path()
    if binary is None:
        pytest.skip("Debian's chromium is not installed: scripts/ensure-chromium.sh installs it (make test runs it)")
    chrome = Browser(binary)
    chrome.open(f"{airflow.url}/auth/login?next={airflow.url}/antdb/")
    chrome.wait_for("!!document.querySelector('input[name=password]')", "the login form")
    chrome.type_into("input[name=username]", USER)
    chrome.type_into("input[name=password]", PASSWORD)
    chrome.wait_for("!document.querySelector('button[type=submit]').disabled", "the sign-in button")
    chrome.evaluate("document.querySelector('button[type=submit]').click()")
    chrome.wait_for(f"location.href === {json.dumps(airflow.url + '/antdb/')} && !!document.getElementById('clusters')",
                    "the AntDB page after login")
    yield chrome
    chrome.close()


def shot(browser: Browser, name: str) -> Path:
    path = browser.screenshot(SCREENSHOTS / f"{name}.png")
    assert path.stat().st_size > 10_000, f"{path} looks empty"
    return path


def cell(browser: Browser, holder: str, node: str) -> dict:
    return browser.evaluate(f"""(() => {{ const td = document.querySelector("[data-cell='{holder}/{node}']");
        return td ? {{text: td.innerText, background: getComputedStyle(td).backgroundColor}} : null; }})()""")


def test_anonymous_requests_are_refused(airflow):
    for path in ("/antdb/", "/antdb/api/clusters", f"/antdb/clusters/{NS}", f"/antdb/api/clusters/{NS}"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(airflow.url + path, timeout=10)
        assert refused.value.code in (401, 403), path


def test_clusters_page_lists_the_cluster_with_counts_and_last_runs(browser, airflow):
    row = browser.evaluate(f"document.querySelector(\"tr[data-namespace='{NS}']\").innerText")
    assert "6/6" in row, row
    assert row.count("success") == 2 and "clean" in row, row
    links = browser.evaluate("Array.from(document.querySelectorAll('#clusters a[target=_top]')).map(a => a.href)")
    assert any("/dags/deploy_antdb/runs/" in href for href in links), links
    assert any("/dags/verify_antdb_topology/runs/" in href for href in links), links
    shot(browser, "clusters")


def test_the_page_is_in_airflows_navigation(browser, airflow):
    browser.open(f"{airflow.url}/plugin/antdb")
    frame = "(document.querySelector('iframe') && document.querySelector('iframe').contentDocument)"
    browser.wait_for(f"!!{frame} && !!{frame}.querySelector(\"tr[data-namespace='{NS}']\")",
                     "the AntDB page inside Airflow's UI")
    shot(browser, "clusters-in-airflow")
    browser.evaluate("Array.from(document.querySelectorAll('button')).find(b => b.innerText.trim() === 'Browse').click()")
    browser.wait_for("document.body.innerText.includes('AntDB clusters')", "the AntDB entry in the Browse menu")


def test_cluster_page_shows_nodes_matrix_agtm_and_last_verification(browser, airflow, deployed):
    browser.open(f"{airflow.url}/antdb/clusters/{NS}")
    names = browser.evaluate("Array.from(document.querySelectorAll('#nodes tr[data-node]')).map(r => r.dataset.node)")
    assert names == NODES
    ips = deployed.cluster_ips(NS)
    table = browser.evaluate("document.getElementById('nodes').innerText")
    for node in NODES:
        assert f"{ips[node]}:5432" in table, node
    states = browser.evaluate("Array.from(document.querySelectorAll('#matrix td')).map(td => td.innerText)")
    assert states == ["ok"] * (len(HOLDERS) * len(NODES))
    agtm = browser.evaluate("document.getElementById('agtm').innerText")
    assert agtm.count("not gc") == 0 and f"{ips['gc']}:5432" in agtm
    assert browser.evaluate("document.getElementById('health').innerText") == "ok"
    assert browser.evaluate("document.querySelectorAll('#topology [data-health=ok]').length") == len(NODES)
    assert "clean" in browser.evaluate("document.body.innerText")
    shot(browser, "cluster")


def test_drift_shows_as_a_red_cell_and_in_the_findings_after_verification(browser, airflow, deployed):
    alter_row(deployed, NS, "cn1", "dn2", port=6543)
    run = deployed.run_dag("verify_antdb_topology", {"namespace": NS, "data_check": False})
    assert run.state == "failed"

    browser.open(f"{airflow.url}/antdb/clusters/{NS}")
    drifted = cell(browser, "cn1", "dn2")
    assert drifted == {"text": "wrong host or port", "background": RED}, drifted
    assert cell(browser, "gc", "dn2")["text"] == "ok" and cell(browser, "cn2", "dn2")["text"] == "ok"
    findings = browser.evaluate("document.getElementById('findings').innerText")
    assert "DRIFT" in findings and "dn2" in findings and "6543" in findings, findings
    assert browser.evaluate("document.querySelector(\"#topology [data-node='cn1']\").dataset.health") == "drift"
    shot(browser, "cluster-drift")

    data = json.loads(browser.evaluate(f"fetch('{airflow.url}/antdb/api/clusters/{NS}').then(r => r.text())"))
    cn1 = next(r for r in data["matrix"] if r["holder"] == "cn1")
    assert cn1["cells"]["dn2"]["state"] == "wrong host or port"
    assert data["last_verification"]["state"] == "failed" and not data["last_verification"]["report"]["clean"]

    browser.open(f"{airflow.url}/antdb/")
    assert "finding(s)" in browser.evaluate(f"document.querySelector(\"tr[data-namespace='{NS}']\").innerText")
    shot(browser, "clusters-drift")


def token(airflow) -> str:
    request = urllib.request.Request(f"{airflow.url}/auth/token", method="POST", headers={"Content-Type":
                                     "application/json"}, data=json.dumps({"username": USER, "password": PASSWORD}).encode())
    return json.load(urllib.request.urlopen(request, timeout=10))["access_token"]


def get(airflow, path: str, bearer: str) -> tuple[int, str]:
    request = urllib.request.Request(airflow.url + path, headers={"Authorization": f"Bearer {bearer}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, response.read().decode()


def test_unreachable_nodes_and_an_unreachable_api_are_shown_not_500(airflow, deployed, monkeypatch, tmp_path):
    bearer = token(airflow)
    wrong = json.loads(deployed.env["AIRFLOW_CONN_ANTDB_DEFAULT"]) | {"password": "not-the-password"}
    monkeypatch.setenv("AIRFLOW_CONN_ANTDB_DEFAULT", json.dumps(wrong))
    status, body = get(airflow, f"/antdb/api/clusters/{NS}", bearer)
    data = json.loads(body)
    assert status == 200 and data["health"] == "down"
    assert all(n["reachable"] is False and n["error"] for n in data["nodes"]), data["nodes"]
    assert "not-the-password" not in body

    kubeconfig = Path(deployed.kubeconfig).read_text()
    server = next(line.split("server:", 1)[1].strip() for line in kubeconfig.splitlines() if "server:" in line)
    closed = tmp_path / "kubeconfig"
    closed.write_text(kubeconfig.replace(server, "https://127.0.0.1:9"))  # discard port: nothing listens
    monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", json.dumps(
        {"conn_type": "kubernetes", "extra": {"kube_config_path": str(closed)}}))
    for path in ("/antdb/", f"/antdb/clusters/{NS}", "/antdb/api/clusters"):
        status, body = get(airflow, path, bearer)
        assert status == 200 and "cannot" in body, (path, body[:300])
