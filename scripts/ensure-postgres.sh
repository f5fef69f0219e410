#!/usr/bin/env bash
# The tests start their own PostgreSQL servers from Debian's packages (initdb/pg_ctl), as
# the unprivileged `postgres` user. Install the server package if it is not there yet.
set -euo pipefail
if compgen -G "/usr/lib/postgresql/*/bin/initdb" > /dev/null && id postgres > /dev/null 2>&1; then
  exit 0
fi
echo "Installing Debian's PostgreSQL server (needed by the integration tests)..."
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends postgresql > /dev/null
# The package starts a default cluster on port 5432 of 127.0.0.1/::1; the tests use other
# loopback addresses, but stop it anyway so nothing the tests do depends on it.
$SUDO service postgresql stop > /dev/null 2>&1 || true
