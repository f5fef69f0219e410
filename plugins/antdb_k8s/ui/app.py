"""The AntDB page: a FastAPI app Airflow's api-server mounts under /antdb (see plugins/antdb_ui_plugin.py).

Every route requires an Airflow user allowed to read DAG runs (Airflow's own
`requires_access_dag` dependency: an anonymous request gets 401, a bad token 403). Routes
are plain functions, so FastAPI runs their blocking reads in its thread pool.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from antdb_k8s.core.names import is_dns1123_label
from antdb_k8s.ui import live, render, runs

log = logging.getLogger(__name__)
URL_PREFIX = "/antdb"


def _auth():
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag

    return Depends(requires_access_dag("GET", DagAccessEntity.RUN))


def _roots(request: Request) -> tuple[str, str]:
    """(this app's mount path, Airflow's root path) as the browser sees them."""
    base = (request.scope.get("root_path") or "").rstrip("/")
    airflow_root = base[: -len(URL_PREFIX)] if base.endswith(URL_PREFIX) else re.sub(r"/[^/]*$", "", base)
    return base, airflow_root


def _namespace(namespace: str) -> str:
    if not is_dns1123_label(namespace):
        raise HTTPException(status_code=404, detail=f"{namespace!r} is not a Kubernetes namespace name")
    return namespace


def _run_history(namespaces: list[str]) -> tuple[dict, dict, str | None]:
    """Last runs per namespace; the metadata DB being unreadable is shown, not raised."""
    try:
        return runs.last_deploys(namespaces), runs.last_verifications(namespaces), None
    except Exception as exc:  # noqa: BLE001 - the page must render without run history
        log.warning("AntDB page: cannot read run history", exc_info=True)
        return {}, {}, f"cannot read run history: {type(exc).__name__}"


def _overview(hooks: live.Hooks) -> tuple[list, dict, dict, str | None]:
    namespaces, problem = live.list_namespaces(hooks)
    views = [live.cluster_view(hooks, ns, probe=False) for ns in namespaces]
    deploys, verifications, history_problem = _run_history(namespaces)
    return views, deploys, verifications, problem or history_problem


def hooks() -> live.Hooks:
    """The page's hooks (short timeouts); a FastAPI dependency so tests could swap it."""
    return live.default_hooks()


HooksDep = Annotated[live.Hooks, Depends(hooks)]
router = APIRouter()


@router.get("/", response_class=HTMLResponse)
def clusters(request: Request, hooks: HooksDep) -> HTMLResponse:
    base, airflow_root = _roots(request)
    views, deploys, verifications, problem = _overview(hooks)
    return HTMLResponse(render.clusters_page(views, deploys, verifications, base, airflow_root, problem))


@router.get("/api/clusters")
def clusters_json(request: Request, hooks: HooksDep) -> JSONResponse:
    _, airflow_root = _roots(request)
    views, deploys, verifications, problem = _overview(hooks)
    items = []
    for view in views:
        deploy = deploys.get(view.namespace)
        items.append({**view.to_dict(), "last_deploy": deploy.to_dict(airflow_root) if deploy else None,
                      "last_verification": _verification_dict(verifications.get(view.namespace), airflow_root)})
    return JSONResponse({"clusters": items, "problem": problem})


@router.get("/clusters/{namespace}", response_class=HTMLResponse)
def cluster(request: Request, namespace: str, hooks: HooksDep) -> HTMLResponse:
    base, airflow_root = _roots(request)
    view = live.cluster_view(hooks, _namespace(namespace))
    _, verifications, problem = _run_history([namespace])
    if problem:
        view.problems.append(problem)
    return HTMLResponse(render.cluster_page(view, verifications.get(namespace), base, airflow_root))


@router.get("/api/clusters/{namespace}")
def cluster_json(request: Request, namespace: str, hooks: HooksDep) -> JSONResponse:
    _, airflow_root = _roots(request)
    view = live.cluster_view(hooks, _namespace(namespace))
    deploys, verifications, problem = _run_history([namespace])
    deploy = deploys.get(namespace)
    return JSONResponse({**view.to_dict(), "history_problem": problem,
                         "last_deploy": deploy.to_dict(airflow_root) if deploy else None,
                         "last_verification": _verification_dict(verifications.get(namespace), airflow_root)})


@router.get("/clusters/{namespace}/topology.svg")
def cluster_svg(namespace: str, hooks: HooksDep) -> Response:
    view = live.cluster_view(hooks, _namespace(namespace))
    return Response(render.topology_svg(view), media_type="image/svg+xml")


def create_app() -> FastAPI:
    """The app Airflow mounts; every route behind Airflow's authentication."""
    app = FastAPI(title="AntDB clusters", description="Live state of the AntDB clusters this package deployed.",
                  dependencies=[_auth()], docs_url=None, redoc_url=None)
    app.include_router(router)
    return app


def _verification_dict(last: runs.LastVerification | None, airflow_root: str) -> dict | None:
    if last is None:
        return None
    return {**last.run.to_dict(airflow_root), "report": last.report.to_dict() if last.report else None}


app = create_app()
