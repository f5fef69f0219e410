"""Registers the AntDB page with Airflow 3: the FastAPI app under /antdb and its navigation entry.

The only AirflowPlugin of the package; it lives alone here so that Airflow's plugin loader,
which imports each file of the plugins folder by file name, registers it exactly once
(plugins/.airflowignore keeps the loader out of the antdb_k8s package itself).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from antdb_k8s.ui.app import URL_PREFIX, app


class AntDBUIPlugin(AirflowPlugin):
    name = "antdb_k8s"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "AntDB clusters"}]
    external_views = [{
        "name": "AntDB clusters",
        "href": URL_PREFIX.lstrip("/") + "/",  # relative to Airflow's base URL
        "destination": "nav",
        "category": "browse",
        "url_route": "antdb",  # shown inside Airflow's UI at /plugin/antdb
    }]
