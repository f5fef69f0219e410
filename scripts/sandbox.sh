#!/usr/bin/env bash
# The local sandbox (see sandbox/launcher.py): simulated Kubernetes, real postgres-operator 4.2.1
# and real AntDB nodes, state kept in .sandbox/ of the checkout.
#   scripts/sandbox.sh start   build what it needs (once), start it in the background, wait until
#                              its API answers, print where; connections in .sandbox/connections.env
#   scripts/sandbox.sh stop    stop it (state kept)
#   scripts/sandbox.sh reset   stop it and forget its cluster (objects and node data)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
state="${ANTDB_SANDBOX_DIR:-$here/.sandbox}"
pidfile="$state/pid"

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

stop() {
  if running; then
    kill "$(cat "$pidfile")"
    for _ in $(seq 1 120); do running || break; sleep 0.5; done
    running && { echo "sandbox: did not stop in 60 s; killing it" >&2; kill -9 "$(cat "$pidfile")"; }
  fi
  rm -f "$pidfile"
}

case "${1:-}" in
  start)
    if running; then echo "sandbox: already running (pid $(cat "$pidfile"))"; exit 0; fi
    "$here/scripts/ensure-postgres.sh"
    echo "sandbox: making sure AntDB and the postgres-operator are built (first time: several minutes)"
    ANTDB_HOME="$("$here/scripts/ensure-antdb.sh")"
    export ANTDB_HOME
    "$here/scripts/ensure-operator.sh" > /dev/null
    mkdir -p "$state"
    rm -f "$state/ready"
    PYTHONPATH="$here/plugins:$here" nohup "$here/.venv/bin/python" -m sandbox --state-dir "$state" \
      >> "$state/sandbox.log" 2>&1 &
    echo $! > "$pidfile"
    for _ in $(seq 1 240); do
      [ -s "$state/ready" ] && break
      running || { echo "sandbox: failed to start; its log:" >&2; tail -30 "$state/sandbox.log" >&2; exit 1; }
      sleep 0.5
    done
    [ -s "$state/ready" ] || { echo "sandbox: no API after 120 s; see $state/sandbox.log" >&2; exit 1; }
    echo "sandbox: Kubernetes API (simulated locally) on $(cat "$state/ready"); operator and AntDB are real"
    echo "sandbox: log $state/sandbox.log; state $state (make sandbox-reset empties it)"
    ;;
  stop) stop ;;
  reset)
    stop
    # Node data dirs belong to the `postgres` OS user; we own the folder, so this works as root.
    rm -rf "$state"
    echo "sandbox: reset ($state removed)"
    ;;
  *) echo "usage: $0 start|stop|reset" >&2; exit 2 ;;
esac
