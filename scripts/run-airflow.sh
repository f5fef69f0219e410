#!/usr/bin/env bash
# `make run`: Airflow standalone (scheduler, dag-processor, api-server, triggerer) on SQLite,
# with this package's DAGs and plugins, UI on http://localhost:8080.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
export PATH="$here/.venv/bin:$PATH"            # standalone starts its components as `airflow ...`
export AIRFLOW_HOME="${AIRFLOW_HOME:-$here/.airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$here/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$here/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="${AIRFLOW_ADMIN_USER:-admin}:admin"
export AIRFLOW__API__PORT="${AIRFLOW_PORT:-8080}"
export AIRFLOW__API__HOST="${AIRFLOW_HOST:-127.0.0.1}"   # the UI is for this machine unless you say otherwise
# Task processes report to the api-server's execution API: follow the port and host chosen above.
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="${AIRFLOW__CORE__EXECUTION_API_SERVER_URL:-http://${AIRFLOW__API__HOST}:${AIRFLOW__API__PORT}/execution/}"
mkdir -p "$AIRFLOW_HOME"

# kubernetes_default: the user's kubeconfig, else in-cluster credentials, else the local sandbox
# (simulated Kubernetes with the real postgres-operator and real AntDB nodes; see README).
if [ -z "${AIRFLOW_CONN_KUBERNETES_DEFAULT:-}" ]; then
  kubeconfig="${KUBECONFIG:-$HOME/.kube/config}"
  if [ -f "$kubeconfig" ]; then
    export AIRFLOW_CONN_KUBERNETES_DEFAULT="{\"conn_type\": \"kubernetes\", \"extra\": {\"kube_config_path\": \"$kubeconfig\"}}"
    echo "kubernetes_default -> $kubeconfig"
  elif [ -n "${KUBERNETES_SERVICE_HOST:-}" ]; then
    export AIRFLOW_CONN_KUBERNETES_DEFAULT='{"conn_type": "kubernetes", "extra": {"in_cluster": true}}'
    echo "kubernetes_default -> in-cluster service account"
  else
    echo "No kubeconfig at $kubeconfig and not in a cluster: starting the local sandbox."
    "$here/scripts/sandbox.sh" start
    trap '"$here/scripts/sandbox.sh" stop' EXIT
    # Show where each AntDB node answers once deploy_antdb has created it.
    ( tail -n 0 -F "${ANTDB_SANDBOX_DIR:-$here/.sandbox}/sandbox.log" 2>/dev/null | grep --line-buffered "^sandbox: node" ) &
    set -a; source "${ANTDB_SANDBOX_DIR:-$here/.sandbox}/connections.env"; set +a
    export AIRFLOW__API__INSTANCE_NAME="AntDB sandbox: Kubernetes simulated on this machine, operator and AntDB real"
    echo "kubernetes_default -> the sandbox; antdb_default -> the sandbox's AntDB superuser"
  fi
fi
# antdb_default: the AntDB superuser. Set AIRFLOW_CONN_ANTDB_DEFAULT yourself, or create the
# connection in the UI (Admin -> Connections); see README "Connections".
if [ -z "${AIRFLOW_CONN_ANTDB_DEFAULT:-}" ]; then
  echo "antdb_default is not set: create it in the UI or export AIRFLOW_CONN_ANTDB_DEFAULT (see README)"
fi

pwfile="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
( for _ in $(seq 1 180); do
    if [ -s "$pwfile" ]; then
      echo "================================================================"
      echo " Airflow UI: http://localhost:${AIRFLOW__API__PORT}"
      echo " login: $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); u=next(iter(d)); print(u, "/ password:", d[u])' "$pwfile")"
      echo " (the password is kept in $pwfile)"
      echo "================================================================"
      break
    fi
    sleep 1
  done ) &
airflow standalone
