#!/usr/bin/env bash
# `make run`: Airflow (api-server, scheduler with the LocalExecutor, dag-processor, triggerer) on SQLite,
# with this package's DAGs and plugins, UI on http://127.0.0.1:8080.
#
# Everything it starts listens on 127.0.0.1 only, unless you say otherwise:
#   AIRFLOW_HOST=0.0.0.0       the api-server (UI, REST and task execution API) on every interface
#   AIRFLOW_SERVE_LOGS=1       also start Airflow's log servers ([logging] worker_log_server_port 8793 and
#                              trigger_log_server_port 8794). Airflow 3.3 has no host setting for them: they
#                              listen on every interface, so they are off by default. They are not needed
#                              here: every component shares $AIRFLOW_HOME/logs and the UI reads the files.
# Sizing: AIRFLOW_PARALLELISM (default: nproc) task processes at once; AIRFLOW_API_WORKERS (default 1).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
export PATH="$here/.venv/bin:$PATH"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$here/.airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$here/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$here/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__EXECUTOR=LocalExecutor
export AIRFLOW__CORE__AUTH_MANAGER=airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="${AIRFLOW_ADMIN_USER:-admin}:admin"
host="${AIRFLOW_HOST:-127.0.0.1}"
port="${AIRFLOW_PORT:-8080}"
export AIRFLOW__API__HOST="$host" AIRFLOW__API__PORT="$port"
client_host="$host"; [ "$host" = "0.0.0.0" ] && client_host=127.0.0.1
export AIRFLOW__API__BASE_URL="${AIRFLOW__API__BASE_URL:-http://$client_host:$port}"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="${AIRFLOW__CORE__EXECUTION_API_SERVER_URL:-http://$client_host:$port/execution/}"
cores="$(nproc 2>/dev/null || echo 2)"
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW_PARALLELISM:-$(( cores > 2 ? cores : 2 ))}"
export AIRFLOW__API__WORKERS="${AIRFLOW_API_WORKERS:-1}"
export AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES="${AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES:-$(( cores < 2 ? 1 : 2 ))}"
serve_logs=(--skip-serve-logs); [ "${AIRFLOW_SERVE_LOGS:-0}" = "1" ] && serve_logs=()
mkdir -p "$AIRFLOW_HOME"

# kubernetes_default: the user's kubeconfig, else in-cluster credentials, else the local sandbox
# (Kubernetes simulated on this machine, with the real postgres-operator and real AntDB nodes).
sandbox=""
if [ -z "${AIRFLOW_CONN_KUBERNETES_DEFAULT:-}" ]; then
  kubeconfig="${KUBECONFIG:-$HOME/.kube/config}"
  if [ -f "$kubeconfig" ]; then
    export AIRFLOW_CONN_KUBERNETES_DEFAULT="{\"conn_type\": \"kubernetes\", \"extra\": {\"kube_config_path\": \"$kubeconfig\"}}"
    echo "kubernetes_default -> $kubeconfig"
  elif [ -n "${KUBERNETES_SERVICE_HOST:-}" ]; then
    export AIRFLOW_CONN_KUBERNETES_DEFAULT='{"conn_type": "kubernetes", "extra": {"in_cluster": true}}'
    echo "kubernetes_default -> in-cluster service account"
  else
    echo "No kubeconfig at $kubeconfig and not inside a cluster: starting the local sandbox"
    echo "  (Kubernetes simulated on this machine; the postgres-operator 4.2.1 and AntDB are real)."
    "$here/scripts/sandbox.sh" start
    sandbox="${ANTDB_SANDBOX_DIR:-$here/.sandbox}"
    set -a; source "$sandbox/connections.env"; set +a
    export AIRFLOW__API__INSTANCE_NAME="AntDB sandbox: Kubernetes simulated here, operator and AntDB real"
    echo "kubernetes_default -> the sandbox's API; antdb_default -> the sandbox's AntDB superuser"
  fi
fi
# antdb_default: the AntDB superuser. Set AIRFLOW_CONN_ANTDB_DEFAULT yourself, or create the
# connection in the UI (Admin -> Connections); see README "Connections".
if [ -z "${AIRFLOW_CONN_ANTDB_DEFAULT:-}" ]; then
  echo "antdb_default is not set: create it in the UI or export AIRFLOW_CONN_ANTDB_DEFAULT (see README)"
fi

airflow db migrate >/dev/null

pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -z "$sandbox" ] || "$here/scripts/sandbox.sh" stop   # state kept: the next make run finds the cluster
}
trap stop INT TERM EXIT
start() {  # start NAME ARGS...: one component, its output prefixed with its name
  local name="$1"; shift
  airflow "$@" > >(sed -u "s/^/[$name] /") 2>&1 &
  pids+=("$!")
}
start api-server api-server --host "$host" --port "$port" --workers "$AIRFLOW__API__WORKERS"
start scheduler scheduler "${serve_logs[@]}"
start dag-processor dag-processor
start triggerer triggerer "${serve_logs[@]}"
echo "started: api-server on $host:$port, scheduler (LocalExecutor, parallelism $AIRFLOW__CORE__PARALLELISM), dag-processor, triggerer"

if [ -n "$sandbox" ]; then   # where each AntDB node answers, once deploy_antdb has created it
  ( tail -n 0 -F "$sandbox/sandbox.log" 2>/dev/null | grep --line-buffered "^sandbox: node" ) &
  pids+=("$!")
fi

pwfile="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
( for _ in $(seq 1 180); do
    if [ -s "$pwfile" ] && python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
         "http://$client_host:$port/api/v2/monitor/health" 2>/dev/null; then
      echo "================================================================"
      echo " Airflow UI: http://$client_host:$port"
      echo " login: $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); u=next(iter(d)); print(u, "/ password:", d[u])' "$pwfile")"
      echo " (the password is kept in $pwfile)"
      echo "================================================================"
      break
    fi
    sleep 1
  done ) &
pids+=("$!")

wait -n "${pids[@]:0:4}" || true
echo "an Airflow component stopped; stopping the others"
