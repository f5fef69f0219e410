#!/usr/bin/env bash
# Everything the tests need beyond the virtualenv, installed or built once and then reused:
# Debian's PostgreSQL package (the unprivileged `postgres` OS user the node servers run as),
# AntDB and the Crunchy postgres-operator 4.2.1 built from their pinned sources into a cache
# outside the checkout. Says which AntDB the tests use, and how long a build took.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-postgres.sh
scripts/ensure-chromium.sh  # headless Chromium (UI test), docker-compose (offline compose check)

start=$(date +%s)
antdb_home="$(scripts/ensure-antdb.sh)"
antdb_secs=$(( $(date +%s) - start ))
start=$(date +%s)
operator_dir="$(scripts/ensure-operator.sh)"
operator_secs=$(( $(date +%s) - start ))

echo "== AntDB for the tests: $antdb_home"
echo "   $("$antdb_home/bin/postgres" --version) ($antdb_secs s to build or find)"
echo "== postgres-operator 4.2.1: $operator_dir/postgres-operator ($operator_secs s to build or find)"
